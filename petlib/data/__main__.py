"""``python -m petlib.data download``: the same command as ``petlib-data`` (:mod:`petlib.cli.data`)."""
from petlib.cli.common import run_main
from petlib.cli.data import main

run_main(main)
