"""``python -m petlib.run``: the main job, what ``make run`` runs (:mod:`petlib.cli.run`)."""
from petlib.cli.common import run_main
from petlib.cli.run import main

if __name__ == "__main__":
    run_main(main)
