"""pytest settings for running the notebooks as tests: ``PETLIB_QUICK=1 pytest --nbval-lax notebooks/``."""


def pytest_configure(config):
    # A kernel imports torch before it answers; on a busy two-core machine that can take longer
    # than nbval's default 60 s, which fails the whole notebook without running a cell.
    # Raise the default only; an explicit --nbval-kernel-startup-timeout still wins.
    option = config.option
    if getattr(option, "nbval_kernel_startup_timeout", None) == 60:
        option.nbval_kernel_startup_timeout = 600
