"""``python -m petlib.bench``: see :mod:`petlib.bench`."""
from ..cli import run_main
from .report import main

run_main(main)
