"""``python -m petlib.export``: the lab's spelling of ``petlib-export`` (:mod:`petlib.cli.export`)."""
from petlib.cli.common import run_main
from petlib.cli.export import main

if __name__ == "__main__":
    run_main(main)
