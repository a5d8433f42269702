"""The benchmark: `--quick` prints every table with its ratio columns; the peer is optional;
the options resolved for CUDA are checked on the CPU (no GPU needed)."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from petlib import bench
from petlib.bench import harness
from petlib.config import TrainConfig


@pytest.mark.slow
def test_quick_run_prints_every_table_with_ratios(tmp_path, capsys):
    out = tmp_path / "report.md"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text().strip() == printed.strip()
    for heading in ("## Networks", "## Speed options", "## Data loader", "## Epochs of `fit`"):
        assert heading in printed
    assert "train ours/peer" in printed and "infer ours/peer" in printed
    assert "train % peak" in printed and "vs JPEG" in printed and "data share" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| unet | 32 | petlib |")]
    assert len(rows) == 1 and rows[0].count("x |") >= 2  # train and inference ratios
    if bench.smp_available():
        assert any(line.startswith("| resnet34_unet | 32 | smp |") for line in printed.splitlines())


def test_without_smp_the_peer_row_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(harness, "smp_available", lambda: False)
    bench.main(["--quick", "--models", "resnet34_unet", "--sections", "networks"])
    printed = capsys.readouterr().out
    assert "| resnet34_unet | 32 | petlib |" in printed and "not installed" in printed


def test_skip_peer_times_petlib_only(capsys):
    bench.main(["--quick", "--models", "unet", "--sections", "networks", "--skip-peer"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| unet |")]
    assert len(rows) == 1 and "petlib" in rows[0]


@pytest.mark.parametrize("bf16", [True, False])
def test_cuda_defaults_resolve_without_a_gpu(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    cuda = bench.petlib_candidate("resnet34_unet", torch.device("cuda"))
    assert cuda.amp_dtype == (torch.bfloat16 if bf16 else torch.float16)
    assert cuda.channels_last and cuda.cudnn_benchmark and cuda.fused_optimizer and not cuda.compile
    # A CPU without native bf16 (faked): float32, and channels-last only where the probe found it faster.
    from petlib import device
    emulated = device.CpuProbe(native_bf16=False, float32_s=1.0, bf16_s=None, channels_last_s=1.0,
                               use_bf16=False, use_channels_last=False)
    monkeypatch.setattr(device, "probe_cpu", lambda: emulated)
    cpu = bench.petlib_candidate("resnet34_unet", torch.device("cpu"))
    assert cpu.amp_dtype is None and not cpu.channels_last
    assert cpu.fused_optimizer  # measured faster for training on the CPU too
    off = bench.petlib_candidate("unet", torch.device("cuda"), TrainConfig(amp="off", channels_last="off"))
    assert off.amp_dtype is None and not off.channels_last
    assert bench.peer_candidate("unet").options == "float32"


def test_peers_count_the_same_flops_as_petlib():
    if not bench.smp_available():
        pytest.skip("segmentation_models_pytorch not installed")
    ours = bench.count_flops(bench.petlib_candidate("resnet34_unet", torch.device("cpu")), 64)
    peer = bench.count_flops(bench.peer_candidate("resnet34_unet"), 64)
    assert ours == pytest.approx(peer, rel=1e-3)  # the same architecture
    assert ours[0] > 2 * ours[1]  # a training step costs about three forward passes


def test_cpu_peak_memory_is_measured_in_a_fresh_process():
    candidate = bench.petlib_candidate("resnet34_unet", torch.device("cpu"))
    mib = bench.peak_memory_mib(candidate, torch.device("cpu"), 32, 2)
    # Weights, gradients and two AdamW moments of 24.4 M parameters alone are ~370 MiB.
    assert mib is not None and 300 < mib < 4000


# ----------------------------------------------------------------------------- the fast loader path


@pytest.mark.parametrize("cache", [False, True, "disk"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_batched_reads_equal_item_reads(tmp_path, cache, dtype):
    import shutil

    from petlib.data import SAMPLE_ROOT, OxfordPetSegmentation

    root = tmp_path / "sample"
    shutil.copytree(SAMPLE_ROOT, root)  # the disk cache writes beside the data
    dataset = OxfordPetSegmentation(root, "train", image_size=(24, 40), cache=cache, dtype=dtype)
    indices = [3, 0, 3, len(dataset) - 1]
    for batched, single in zip(dataset.__getitems__(indices), [dataset[i] for i in indices]):
        assert batched.keys() == single.keys() and batched["index"] == single["index"]
        for key in ("image", "mask", "trimap"):
            assert batched[key].dtype == single[key].dtype and torch.equal(batched[key], single[key]), key
    assert dataset[0]["image"].dtype == dtype and dataset[0]["mask"].dtype == dtype


def test_uint8_items_convert_on_the_device_to_the_float_items():
    from petlib.data import SAMPLE_ROOT
    from petlib.engine import make_loaders, to_device

    config = TrainConfig(data_path=str(SAMPLE_ROOT), image_size=32, batch_size=4, cache=True, num_workers=0)
    device = torch.device("cpu")
    as_float = next(iter(make_loaders(config, device, modes=("valid",))["valid"]))
    as_uint8 = next(iter(make_loaders(config, device, modes=("valid",), dtype=torch.uint8)["valid"]))
    assert as_uint8["image"].dtype == torch.uint8 and as_uint8["image"].element_size() * 4 == as_float["image"].element_size()
    images, masks = to_device(as_uint8, device, channels_last=False)
    assert torch.equal(images, as_float["image"]) and torch.equal(masks, as_float["mask"])


def test_uint8_items_refuse_a_float_transform():
    from petlib.data import SAMPLE_ROOT, OxfordPetSegmentation

    with pytest.raises(ValueError, match="transform"):
        OxfordPetSegmentation(SAMPLE_ROOT, "train", image_size=16, dtype=torch.uint8, transform=lambda i, m: (i, m))
    with pytest.raises(ValueError, match="dtype"):
        OxfordPetSegmentation(SAMPLE_ROOT, "train", image_size=16, dtype=torch.float16)


@pytest.mark.parametrize("cache, workers", [(True, 0), (False, 4)])
def test_gpu_loaders_read_the_cache_in_process(cache, workers):
    """Worker processes only help JPEG decoding; from the cache they would be the bottleneck."""
    from petlib.data import SAMPLE_ROOT
    from petlib.engine import make_loaders

    config = TrainConfig(data_path=str(SAMPLE_ROOT), image_size=16, cache=cache)
    loader = make_loaders(config, torch.device("cuda"), modes=("valid",))["valid"]
    assert loader.num_workers == workers and loader.pin_memory


@pytest.mark.parametrize("fresh, builds", [(True, 1 + 3), (False, 1)])
def test_measure_builds_each_setting_afresh_for_every_repeat(monkeypatch, fresh, builds):
    # One build of a setting can run 10-20 % off another build of the same setting; with
    # `fresh` no ratio rests on one build. Compiled settings keep theirs (fresh=False).
    built: list[str] = []

    class FakeRunner:
        def __init__(self, candidate, *args):
            built.append(candidate.label)

        def train(self, steps):
            return 0.01 * steps

        def infer(self, steps):
            return 0.005 * steps

    monkeypatch.setattr(harness, "Runner", FakeRunner)
    candidates = [bench.Candidate("a", "unet"), bench.Candidate("b", "unet")]
    speeds = bench.measure(candidates, torch.device("cpu"), 32, 2, 3, TrainConfig(), seconds=0.05, fresh=fresh)
    assert built.count("a") == built.count("b") == builds
    assert [len(s.train_runs) for s in speeds] == [3, 3] and speeds[0].train == pytest.approx(200)
    assert speeds[0].infer == pytest.approx(2 * 2 / 0.005)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU memory probe reads /proc")
def test_cpu_peak_memory_is_the_probe_s_own_not_its_parent_s():
    # Linux carries ru_maxrss from parent to child through fork and exec: a probe started by a
    # big benchmark process must still report its own training peak, not the parent's size.
    ballast = np.ones(1536 * 2**20, dtype=np.uint8)  # 1.5 GiB resident in this process
    mib = bench.peak_memory_mib(bench.Candidate("tiny", "resnet34_unet"), torch.device("cpu"), 32, 2)
    assert ballast[-1] == 1
    assert mib is not None and 0 < mib < 1024, mib
