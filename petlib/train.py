"""``python -m petlib.train``: the lab's spelling of ``petlib-train`` (:mod:`petlib.cli.train`)."""
from petlib.cli.common import run_main
from petlib.cli.train import main

if __name__ == "__main__":
    run_main(main)
