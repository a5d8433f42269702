"""pytest settings for running the notebooks as tests: ``pytest --nbval notebooks/`` (or ``--nbval-lax``).

The notebooks are committed with the outputs of a real run on the embedded sample. Under pytest
they always run in **quick mode** (``PETLIB_QUICK=1``: 16 images per split, two epochs, a
temporary folder), whatever the caller's environment says, so that a test can never start a
long run or write to ``saved_models/``. Cells whose output depends on the run are tagged
``nbval-ignore-output``; the others print what must hold in every mode and are compared.
"""
import os

# Set at import, before nbval starts any kernel: the kernels inherit this environment.
os.environ["PETLIB_QUICK"] = "1"


def pytest_configure(config):
    # A kernel imports torch before it answers; on a busy two-core machine that can take longer
    # than nbval's default 60 s, which fails the whole notebook without running a cell.
    # Raise the default only; an explicit --nbval-kernel-startup-timeout still wins.
    option = config.option
    if getattr(option, "nbval_kernel_startup_timeout", None) == 60:
        option.nbval_kernel_startup_timeout = 600
