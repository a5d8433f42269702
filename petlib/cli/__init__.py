"""The command layer: what a user types. Nothing below it imports it.

=================  =========================  =============================  =======================================
console command    ``python -m`` form         module                         does
=================  =========================  =============================  =======================================
``petlib-train``   ``petlib.train``           :mod:`petlib.cli.train`        train a network
``petlib-eval``    ``petlib.inference``       :mod:`petlib.cli.evaluate`     score a checkpoint on a split
``petlib-predict`` ``petlib.predict``         :mod:`petlib.cli.predict`      masks and overlays for your photos
``petlib-data``    ``petlib.data``            :mod:`petlib.cli.data`         download the dataset
``petlib-export``  ``petlib.export``          :mod:`petlib.cli.export`       ONNX, TorchScript or a model folder
(main job)         ``petlib.run``             :mod:`petlib.cli.run`          train both networks, compare on test
=================  =========================  =============================  =======================================

:mod:`petlib.cli.common` holds what they share: flag spellings, progress bars, one-line errors.
``pyproject.toml``'s ``[project.scripts]`` names each module's ``console`` function, which runs its
``main`` through :func:`~petlib.cli.common.run_main`, as the ``python -m`` form does: a command loads
only what it runs.
"""
