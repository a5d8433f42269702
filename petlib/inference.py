"""``python -m petlib.inference``: the lab's spelling of ``petlib-eval`` (:mod:`petlib.cli.evaluate`)."""
from petlib.cli.common import run_main
from petlib.cli.evaluate import main

if __name__ == "__main__":
    run_main(main)
