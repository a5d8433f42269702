"""Speed benchmarks: petlib's networks against their peers, the data loader, and a training epoch.

    python -m petlib.research.bench                 # every section at 128 and 256 px on the best device
    python -m petlib.research.bench --compile       # also: does torch.compile pay for itself?
    python -m petlib.research.bench --quick         # tiny sizes, one repeat: checks that everything runs

prints markdown tables:

* **What "auto" chose.** The speed options :func:`petlib.training.device.speed_options` resolves on this
  machine, its ``reason``, the CPU probe's figures (:func:`petlib.training.device.probe_cpu`), the CPU's
  name and its bf16 flags (``avx512_bf16``, ``amx_bf16``).
* **Peak arithmetic rate**, per precision (fp32, bf16; TF32 on CUDA): the best of several dense
  matmul sizes and repeats, beside NVIDIA's datasheet figure where one is known.
* **Networks.** For each network and size: training images/second (forward, backward and
  optimiser step after warm-up), inference images/second and peak memory, for petlib with its
  defaults on this device and, in the same process, for whom it is compared with. For the
  ResNet34-UNet: ``segmentation_models_pytorch.Unet("resnet34", encoder_weights=None, classes=1)``
  (the same architecture; ``pip install -e ".[bench]"``) **with the same speed options** as
  petlib -- the headline, code against code -- and the same as its users run it (float32,
  torch's defaults). For the UNet, which has no outside peer: petlib's UNet with every speed
  option off, an ablation of the options. Every rate shows the median and min-max of its
  repeats; every ratio petlib / that row, repeat by repeat, with its min-max, and "no
  difference" where that spread includes 1.0. % of peak: the FLOPs of a step, counted with
  :mod:`torch.utils.flop_counter`, per second, against the measured peak of the arithmetic the
  row runs (and the datasheet's, where known).
* **Speed options.** The ResNet34-UNet with each option of :class:`~petlib.training.config.TrainConfig`
  flipped, the evidence for what ``"auto"`` turns on on this device.
* **torch.compile** (``--compile``): compile time (every warm-up step until steps are steady,
  so CUDA-graph recording counts), steady-state speed-up, and how many training images it
  takes to win the compile time back.
* **Data loader**, at real scale: images/second at 256 px on the whole shipped sample and on a
  synthetic set of ``--synthetic_full`` full-size JPEGs (default 7,390, the full dataset's
  count), from JPEGs in process, with 4 worker processes and with one per core (pinned memory
  where there is a GPU), and from the decode-once cache; the GPU's data wait quoted from an
  earlier GPU report where one exists in ``benchmarks/results`` (never estimated).
* **Epoch.** Real epochs of :func:`~petlib.training.engine.fit` on the shipped sample, split into time
  waiting for the loader, augmenting, and the rest.

The package, by job: :mod:`~petlib.research.bench.harness` (what is timed and how),
:mod:`~petlib.research.bench.flops` (FLOPs, FLOP/s and the datasheet figures), :mod:`~petlib.research.bench.memory`,
one module per section (:mod:`~petlib.research.bench.machine`, :mod:`~petlib.research.bench.networks`,
:mod:`~petlib.research.bench.loader`, :mod:`~petlib.research.bench.epoch`), :mod:`~petlib.research.bench.cells` (how figures
and spreads print) and :mod:`~petlib.research.bench.report`, the command line.

Both contenders run the same training step (:func:`~petlib.training.engine.train_one_epoch` with
petlib's loss, AdamW and gradient clipping) on the same uint8 batch already on the device, so
the ratio measures the network and its speed options only. Figures are medians (min-max) over
``--repeats``, the rows compared alternating within each repeat so that a busy machine slows
them alike, and each built afresh for every repeat so that no ratio rests on one build.
"""
from __future__ import annotations

from petlib.research.bench.flops import count_flops, matmul_flops
from petlib.research.bench.harness import (
    Candidate,
    Runner,
    Throughput,
    measure,
    peer_candidate,
    peer_candidates,
    petlib_candidate,
    same_options_peer,
    smp_available,
)
from petlib.research.bench.memory import peak_memory_mib
from petlib.research.bench.settings import Settings

__all__ = [
    "Candidate", "petlib_candidate", "peer_candidate", "same_options_peer", "peer_candidates", "smp_available",
    "Runner", "Throughput", "measure",
    "count_flops", "matmul_flops", "peak_memory_mib", "Settings",
]
