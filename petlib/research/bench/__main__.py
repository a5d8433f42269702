"""``python -m petlib.research.bench``: see :mod:`petlib.research.bench`."""
from petlib.cli.common import run_main
from petlib.research.bench.report import main

run_main(main)
