"""``python -m petlib.predict``: the lab's spelling of ``petlib-predict`` (:mod:`petlib.cli.predict`)."""
from petlib.cli.common import run_main
from petlib.cli.predict import main

if __name__ == "__main__":
    run_main(main)
