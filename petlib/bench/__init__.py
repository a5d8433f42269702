"""Speed benchmarks: petlib's networks against their peers, the data loader, and a training epoch.

    python -m petlib.bench                 # every section at 128 and 256 px on the best device
    python -m petlib.bench --compile       # also: does torch.compile pay for itself?
    python -m petlib.bench --quick         # tiny sizes, one repeat: checks that everything runs

prints markdown tables:

* **Networks.** For each network and size: training images/second (forward, backward and
  optimiser step after warm-up), inference images/second and peak memory, for petlib with its
  defaults on this device and, in the same process, for the peer:
  ``segmentation_models_pytorch.Unet("resnet34", encoder_weights=None, classes=1)`` (the same
  architecture as petlib's ResNet34-UNet; ``pip install -e ".[bench]"``) and, for the UNet,
  petlib's own UNet with every speed option off (plain float32, the lab's way). Each row has
  the ratio ours/peer and the share of the machine's peak reached: the FLOPs of a step, counted
  with :mod:`torch.utils.flop_counter`, per second, against a dense matmul timed in this run.
* **Speed options.** The ResNet34-UNet with each option of :class:`~petlib.config.TrainConfig`
  flipped, the evidence for what ``"auto"`` turns on on this device.
* **torch.compile** (``--compile``): compile time, steady-state speed-up, and how many training
  images it takes to win the compile time back.
* **Data loader.** Images/second at 256 px from JPEGs and from the decode-once cache, alone and
  followed by the default augmentation on the CPU.
* **Epoch.** Real epochs of :func:`~petlib.engine.fit` on the shipped sample, split into time
  waiting for the loader, augmenting, and the rest.

The package, by job: :mod:`~petlib.bench.harness` (what is timed and how),
:mod:`~petlib.bench.flops` (FLOPs, FLOP/s and the datasheet figures), :mod:`~petlib.bench.memory`,
one module per section (:mod:`~petlib.bench.networks`, :mod:`~petlib.bench.loader`,
:mod:`~petlib.bench.epoch`) and :mod:`~petlib.bench.report`, the command line.

Both contenders run the same training step (:func:`~petlib.engine.train_one_epoch` with
petlib's loss, AdamW and gradient clipping) on the same uint8 batch already on the device, so
the ratio measures the network and its speed options only. Figures are medians over
``--repeats``, ours and the peer alternating within each repeat so that a busy machine slows
both alike, and each built afresh for every repeat so that no ratio rests on one build.
"""
from __future__ import annotations

from .flops import count_flops, matmul_flops
from .harness import Candidate, Runner, Throughput, measure, peer_candidate, petlib_candidate, smp_available
from .memory import peak_memory_mib
from .report import build_parser, main
from .settings import Settings

__all__ = [
    "Candidate", "petlib_candidate", "peer_candidate", "smp_available", "Runner", "Throughput", "measure",
    "count_flops", "matmul_flops", "peak_memory_mib", "Settings", "build_parser", "main",
]
