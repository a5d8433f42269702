"""The benchmark: `--quick` prints every table with its ratio columns; the peer is optional;
the options resolved for CUDA are checked on the CPU (no GPU needed)."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from petlib.research import bench
from petlib.research.bench import harness
from petlib.research.bench.report import main as bench_main
from petlib.training.config import TrainConfig


@pytest.mark.slow
def test_quick_run_prints_every_table_with_ratios(tmp_path, capsys):
    out = tmp_path / "report.md"
    assert bench_main(["--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.read_text().strip() == printed.strip()
    for heading in ('## What "auto" chose', "## Peak arithmetic rate", "## Networks", "## Speed options",
                    "## Data loader", "### The whole shipped sample (300 images)", "### A synthetic full-size set",
                    "## Where an epoch goes"):
        assert heading in printed
    assert "train: petlib / this" in printed and "infer: petlib / this" in printed and "Why: " in printed
    assert "train % peak" in printed and "train % datasheet" in printed and "vs JPEG" in printed
    assert "| epoch | epoch s | loader wait | augment | train steps | validation | kept checkpoint |" in printed
    rows = [line for line in printed.splitlines() if line.startswith("| unet | 32 | ablation: petlib, options off |")]
    assert len(rows) == 1 and rows[0].count("(1 repeat) |") == 2  # train and inference ratios, one repeat
    if bench.smp_available():
        lines = printed.splitlines()
        assert any(line.startswith("| resnet34_unet | 32 | smp, same options (headline peer) |") for line in lines)
        assert any(line.startswith("| resnet34_unet | 32 | smp (as its users run it) | float32 |") for line in lines)
        assert "-- the headline: **" in printed


@pytest.mark.slow  # a benchmark run: times the ResNet34-UNet
def test_without_smp_the_peer_row_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(harness, "smp_available", lambda: False)
    bench_main(["--quick", "--models", "resnet34_unet", "--sections", "networks"])
    printed = capsys.readouterr().out
    assert "| resnet34_unet | 32 | petlib |" in printed and "not installed" in printed


@pytest.mark.slow  # a benchmark run: times the UNet
def test_skip_peer_times_petlib_only(capsys):
    bench_main(["--quick", "--models", "unet", "--sections", "networks", "--skip-peer"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| unet |")]
    assert len(rows) == 1 and "petlib" in rows[0]


@pytest.mark.parametrize("bf16", [True, False])
def test_cuda_defaults_resolve_without_a_gpu(monkeypatch, bf16):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: bf16)
    cuda = bench.petlib_candidate("resnet34_unet", torch.device("cuda"))
    assert cuda.amp_dtype == (torch.bfloat16 if bf16 else torch.float16)
    assert cuda.channels_last and cuda.cudnn_benchmark and cuda.fused_optimizer and not cuda.compile
    # A CPU without native bf16 (faked): float32; channels-last in inference, not in training, whatever the probe read.
    from petlib.training import device
    emulated = device.CpuProbe(native_bf16=False, float32_s=1.0, bf16_s=None, channels_last_s=1.0,
                               use_bf16=False)
    monkeypatch.setattr(device, "probe_cpu", lambda: emulated)
    cpu = bench.petlib_candidate("resnet34_unet", torch.device("cpu"))
    assert cpu.amp_dtype is None and not cpu.channels_last and cpu.infers_channels_last
    assert cpu.options == "float32, channels_last in inference, fused AdamW"
    off_cpu = bench.petlib_candidate("resnet34_unet", torch.device("cpu"), TrainConfig(channels_last="off"))
    assert not off_cpu.channels_last and not off_cpu.infers_channels_last
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


@pytest.mark.slow  # a child process trains a ResNet34-UNet step
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
    from petlib.training.engine import make_loaders, to_device

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
    from petlib.training.engine import make_loaders

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


@pytest.mark.slow  # a child process trains a ResNet34-UNet step
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the CPU memory probe reads /proc")
def test_cpu_peak_memory_is_the_probe_s_own_not_its_parent_s():
    # Linux carries ru_maxrss from parent to child through fork and exec: a probe started by a
    # big benchmark process must still report its own training peak, not the parent's size.
    ballast = np.ones(1536 * 2**20, dtype=np.uint8)  # 1.5 GiB resident in this process
    mib = bench.peak_memory_mib(bench.Candidate("tiny", "resnet34_unet"), torch.device("cpu"), 32, 2)
    assert ballast[-1] == 1
    assert mib is not None and 0 < mib < 1024, mib


# ----------------------------------------------------------------------------- like with like (issues 13, 14)


def test_a_ratio_whose_spread_includes_one_is_no_difference():
    from petlib.research.bench.cells import ratio_spread, spread_cell

    # Paired repeat by repeat: 1.05, 0.95, 1.10 -> the spread includes 1.0.
    same = ratio_spread([10.5, 9.5, 11.0], [10.0, 10.0, 10.0])
    assert same.median == pytest.approx(1.05) and (same.low, same.high) == pytest.approx((0.95, 1.10))
    assert same.verdict == "no difference" and spread_cell(same) == "no difference: 1.05x (0.95-1.10)"
    faster = ratio_spread([15.0, 16.0, 14.0], [10.0, 10.0, 10.0])
    assert faster.verdict == "faster" and spread_cell(faster) == "1.50x (1.40-1.60)"
    assert ratio_spread([8.0, 9.0], [10.0, 10.0]).verdict == "slower"
    # A spread that touches 1.0 exactly includes it.
    assert ratio_spread([10.0, 12.0], [10.0, 10.0]).verdict == "no difference"
    # One repeat has no spread: no verdict either way.
    one = ratio_spread([15.0], [10.0])
    assert one.verdict == "one repeat" and spread_cell(one) == "1.50x (1 repeat)"
    # Medians of ratios, not ratios of medians: the pairs are what alternated.
    with pytest.raises(ValueError, match="paired"):
        ratio_spread([1.0, 2.0], [1.0])


def test_the_same_options_peer_is_smp_with_petlib_s_options(monkeypatch):
    monkeypatch.setattr(harness, "smp_available", lambda: True)
    ours = bench.Candidate("petlib", "resnet34_unet", amp_dtype=torch.bfloat16, channels_last=True,
                           cudnn_benchmark=True, fused_optimizer=True)
    same, plain = harness.peer_candidates(ours)
    assert same.label == harness.SAME_OPTIONS and same.source == "smp"
    for option in ("amp_dtype", "channels_last", "fused_optimizer", "cudnn_benchmark", "compile", "compile_mode"):
        assert getattr(same, option) == getattr(ours, option), option
    assert same.options == ours.options == "bfloat16 autocast, channels_last, fused AdamW"
    # smp as its users run it: float32, torch's defaults.
    assert plain.label == harness.AS_USERS_RUN_IT and plain.source == "smp" and plain.options == "float32"
    assert not plain.cudnn_benchmark
    # The UNet has no outside peer: its one comparison is petlib with the options off, an ablation.
    unet = bench.Candidate("petlib", "unet", amp_dtype=torch.bfloat16, fused_optimizer=True)
    (ablation,) = harness.peer_candidates(unet)
    assert ablation.source == "petlib" and ablation.label.startswith("ablation") and ablation.options == "float32"
    monkeypatch.setattr(harness, "smp_available", lambda: False)
    assert harness.peer_candidates(ours) == [] and harness.same_options_peer(ours) is None


def _fake_throughput(train_runs, infer_runs):
    import statistics

    return harness.Throughput(train=statistics.median(train_runs), infer=statistics.median(infer_runs),
                              train_runs=list(train_runs), infer_runs=list(infer_runs))


def test_networks_table_shows_the_headline_peer_spreads_and_the_peak_of_each_row_s_arithmetic(monkeypatch, capsys):
    from dataclasses import replace

    from petlib.research.bench import networks
    from petlib.research.bench.settings import Settings

    monkeypatch.setattr(harness, "smp_available", lambda: True)
    ours = bench.Candidate("petlib", "resnet34_unet", amp_dtype=torch.bfloat16, fused_optimizer=True)
    monkeypatch.setattr(networks, "petlib_candidate", lambda model, device, config: replace(ours, model=model))
    # ours, smp same options (no difference), smp float32 (slower); UNet: ours, ablation
    speeds = {
        "resnet34_unet": [_fake_throughput([30, 32, 31], [100, 100, 100]), _fake_throughput([31, 30, 31], [90, 95, 100]),
                          _fake_throughput([20, 20, 20], [50, 50, 50])],
        "unet": [_fake_throughput([8, 9, 9], [20, 20, 20]), _fake_throughput([4, 4.5, 4], [10, 10, 10])],
    }
    seen = []

    def fake_measure(candidates, device, size, batch_size, repeats, config, seconds, **kwargs):
        seen.append([(c.label, c.source, c.options) for c in candidates])
        return speeds[candidates[0].model]

    monkeypatch.setattr(networks, "measure", fake_measure)
    monkeypatch.setattr(networks, "count_flops", lambda candidate, size, config=None: (3e9, 1e9))
    s = Settings(device=torch.device("cpu"), models=["resnet34_unet", "unet"], sizes=[64], batch_size=2, repeats=3,
                 seconds=0.01, skip_peer=False, memory=False, data_path=None, loader_size=32, loader_batch_size=4,
                 epoch_size=32, epoch_batch_size=4, epochs=1, matmul_sizes=[64])
    peaks = {"fp32": 100e9, "bf16": 400e9}
    results = networks.section_networks(s, peaks, print)
    printed = capsys.readouterr().out
    assert seen[0] == [("petlib", "petlib", "bfloat16 autocast, fused AdamW"),
                       ("smp, same options", "smp", "bfloat16 autocast, fused AdamW"), ("smp", "smp", "float32")]
    assert seen[1][1][0].startswith("ablation")
    same, plain = results[1], results[2]
    assert same["train_ratio"].verdict == "no difference" and plain["train_ratio"].verdict == "faster"
    assert "no difference: 1.00x (0.97-1.07)" in printed  # 30/31, 32/30, 31/31
    assert "1.55x (1.50-1.60)" in printed and "30.5 (30.0-32.0)" not in printed  # medians are of the runs
    assert "31.0 (30.0-32.0)" in printed
    # Each row against the peak of its own arithmetic: bf16 rows over 400 GFLOP/s, float32 over 100.
    assert results[0]["precision"] == "bf16" and results[0]["train_peak"] == pytest.approx(3e9 * 31 / 400e9)
    assert plain["precision"] == "fp32" and plain["train_peak"] == pytest.approx(3e9 * 20 / 100e9)
    assert results[0]["train_datasheet"] is None  # no datasheet for a CPU
    assert "the headline: **no difference: 1.00x (0.97-1.07)**" in printed
    assert "vs smp as its users run it (float32): **1.55x (1.50-1.60)** (faster)" in printed
    assert "ablation, not a peer" in printed and "| unet | 64 | ablation: petlib, options off |" in printed


@pytest.mark.slow  # times matrix products to find the peak rate
def test_precision_peak_and_datasheet():
    from petlib.research.bench import flops

    assert flops.precision_of(torch.bfloat16, torch.device("cpu")) == "bf16"
    assert flops.precision_of(None, torch.device("cpu")) == "fp32"
    assert flops.precision_of(None, torch.device("cuda")) == ("tf32" if torch.backends.cudnn.allow_tf32 else "fp32")
    assert flops.datasheet_peak("NVIDIA H100 80GB HBM3", "tf32") == ("H100 SXM", 494.7e12)
    assert flops.datasheet_peak("NVIDIA H100 PCIe", "bf16") == ("H100 PCIe", 756e12)
    assert flops.datasheet_peak("NVIDIA H200", "bf16")[1] == flops.H100_BF16_DENSE_FLOPS
    assert flops.datasheet_peak("AMD EPYC", "fp32") is None and flops.datasheet_peak("NVIDIA H100 NVL", "bf16") is None
    before = torch.get_float32_matmul_precision()
    rates = flops.peak_matmul_flops(torch.device("cpu"), "tf32", [32, 64], repeats=2)
    assert set(rates) == {32, 64} and all(r > 0 for r in rates.values())
    assert torch.get_float32_matmul_precision() == before  # TF32 allowed only while probing


def test_section_peak_probes_each_precision_and_takes_the_best_size(monkeypatch, capsys):
    from petlib.research.bench import networks
    from petlib.research.bench.settings import Settings

    calls = []

    def fake_peak(device, precision, sizes, repeats):
        calls.append((precision, tuple(sizes), repeats))
        return {n: n * 1e9 * (4 if precision == "bf16" else 1) for n in sizes}

    monkeypatch.setattr(networks, "peak_matmul_flops", fake_peak)
    monkeypatch.setattr(networks, "cpu_bf16_native", lambda: True)
    s = Settings(device=torch.device("cpu"), models=[], sizes=[], batch_size=2, repeats=4, seconds=0.01,
                 skip_peer=False, memory=False, data_path=None, loader_size=32, loader_batch_size=4, epoch_size=32,
                 epoch_batch_size=4, epochs=1, matmul_sizes=[1024, 2048, 4096])
    peaks = networks.section_peak(s, print)
    assert calls == [("fp32", (1024, 2048, 4096), 4), ("bf16", (1024, 2048, 4096), 4)]
    assert peaks == {"fp32": 4096e9, "bf16": 4 * 4096e9}
    assert "| fp32 | 1024: 1,024, 2048: 2,048, 4096: 4,096 | 4,096 | — | — |" in capsys.readouterr().out
    # Emulated bf16 is slow: smaller matrices.
    calls.clear()
    monkeypatch.setattr(networks, "cpu_bf16_native", lambda: False)
    networks.section_peak(s, lambda text: None)
    assert calls[1] == ("bf16", (256, 512, 1024), 4)


@pytest.mark.parametrize("native", [True, False])
def test_the_report_says_which_path_auto_chose_and_why(monkeypatch, capsys, native):
    from petlib.research.bench import machine
    from petlib.research.bench.settings import Settings
    from petlib.training import device

    probe = device.CpuProbe(native_bf16=native, float32_s=0.1, bf16_s=0.05 if native else None,
                            channels_last_s=0.05 if native else 0.1, use_bf16=native)
    monkeypatch.setattr(device, "probe_cpu", lambda: probe)
    monkeypatch.setattr(machine, "bf16_flags", lambda: {"avx512_bf16": native, "amx_bf16": False})
    s = Settings(device=torch.device("cpu"), models=[], sizes=[], batch_size=2, repeats=1, seconds=0.01,
                 skip_peer=False, memory=False, data_path=None, loader_size=32, loader_batch_size=4, epoch_size=32,
                 epoch_batch_size=4, epochs=1, matmul_sizes=[64])
    machine.section_auto(s, print)
    printed = capsys.readouterr().out
    assert "avx512_bf16 " + ("yes" if native else "no") in printed and "amx_bf16 no" in printed
    assert "float32 100.0 ms" in printed
    if native:
        assert "Chosen: bfloat16 autocast, channels-last off in training, on in inference" in printed and "2.00x faster in bf16 (used)" in printed
        assert "bf16 autocast 50.0 ms (2.00x)" in printed
    else:
        assert "Chosen: float32, channels-last off in training, on in inference" in printed and "without native bf16" in printed
        assert "not timed (emulated bf16)" in printed


def test_compile_cost_counts_every_warm_up_step_until_steady(monkeypatch):
    # reduce-overhead: step 1 compiles, steps 2-3 record CUDA graphs, then steady at 0.1 s.
    times = iter([30.0, 5.0, 2.0, 0.1, 0.105, 0.1] + [0.1] * 100)

    class FakeRunner:
        def __init__(self, candidate, *args):
            pass

        def train(self, steps):
            return next(times) if steps == 1 else 0.1 * steps

        def infer(self, steps):
            return 0.01 * steps

    monkeypatch.setattr(harness, "Runner", FakeRunner)
    compiled = bench.Candidate("c", "unet", compile=True, compile_mode="reduce-overhead")
    (speed,) = bench.measure([compiled], torch.device("cpu"), 32, 2, 2, TrainConfig(), seconds=0.5, infer=False,
                             fresh=False)
    assert speed.warmup_steps == 3 and speed.warmup_s == pytest.approx(37.0)
    assert speed.step_s == pytest.approx(0.1)
    assert speed.compile_s == pytest.approx(37.0 - 3 * 0.1)  # not just the first step less a steady one
    assert speed.first_step_s == 30.0


def test_steady_warmup_stops_at_its_cap():
    from petlib.research.bench.harness import steady_warmup

    noisy = iter([1.0, 2.0] * 50)
    assert len(steady_warmup(lambda: next(noisy), min_steps=2, max_steps=7)) == 7


def test_synthetic_full_set_is_real_size_jpegs_under_new_names(tmp_path):
    from PIL import Image

    from petlib.data import SAMPLE_ROOT, OxfordPetSegmentation
    from petlib.research.bench import loader

    # The shipped sample is downsized (256 px): its images are scaled back up to 500 px first.
    synthetic = loader.build_synthetic_full(SAMPLE_ROOT, 7, tmp_path)
    assert synthetic.images == 7 and synthetic.sources == 300 and synthetic.upscaled == 300
    names = [line.split()[0] for line in (synthetic.root / "annotations" / "test.txt").read_text().splitlines()]
    assert len(names) == len(set(names)) == 7
    with Image.open(synthetic.root / "images" / f"{names[0]}.jpg") as image:
        assert image.format == "JPEG" and max(image.size) == loader.TYPICAL_LONG_SIDE
    with Image.open(synthetic.root / "annotations" / "trimaps" / f"{names[0]}.png") as trimap, \
            Image.open(synthetic.root / "images" / f"{names[0]}.jpg") as image:
        assert trimap.size == image.size
    dataset = OxfordPetSegmentation(synthetic.root, loader.ALL, image_size=16)
    assert len(dataset) == 7 and dataset[6]["image"].shape == (3, 16, 16)
    assert {e.breed for e in dataset.entries} <= {"Abyssinian", "american_bulldog", "Bengal"}
    # Full-size originals are copied as they are, byte for byte.
    source = loader.build_synthetic_full(synthetic.root, 3, tmp_path / "again")
    assert source.upscaled == 0
    first = sorted((source.root / "images").iterdir())[0]
    original = synthetic.root / "images" / (first.stem.rsplit("-", 1)[0] + ".jpg")
    assert first.read_bytes() == original.read_bytes()


def test_the_whole_sample_is_every_listed_image(tmp_path):
    from petlib.data import SAMPLE_ROOT, OxfordPetSegmentation
    from petlib.research.bench import loader

    root = loader.whole_split_root(SAMPLE_ROOT, tmp_path)
    dataset = OxfordPetSegmentation(root, loader.ALL, image_size=8, cache="disk")
    assert len(dataset) == 300
    assert dataset.cache_path is not None and dataset.cache_path.is_relative_to(tmp_path)  # not beside the data


def test_loader_rows_are_the_jpeg_path_with_4_workers_and_one_per_core():
    from petlib.research.bench.loader import loader_rows

    rows = loader_rows(16)
    jpeg = [workers for label, cache, workers, _ in rows if cache is False]
    assert jpeg == [0, 4, 16]
    assert [workers for label, cache, workers, _ in loader_rows(4) if cache is False] == [0, 4]  # no duplicate
    assert any(cache == "disk" for _, cache, _, _ in rows) and any(augmented for *_, augmented in rows)


def test_gpu_data_wait_is_quoted_from_a_gpu_report_and_never_invented(tmp_path):
    from petlib.research.bench.loader import gpu_data_wait

    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    assert gpu_data_wait(results) == [] and gpu_data_wait(tmp_path / "absent") == []
    epochs = ("## Epochs of `fit` (resnet34_unet, 256 px, batch 4, 14 train + 2 valid images, {})\n\n"
              "| epoch | epoch s | loader wait s | data share | augment s | augment share |\n|---|---|---|---|---|---|\n"
              "| 1 | 3.15 | 0.009 | 0.3% | — | — |\n| 2 | 0.10 | 0.013 | 12.6% | — | — |\n")
    (results / "cpu.md").write_text("Device: cpu (AMD EPYC); 2 CPU cores\n\n" + epochs.format("cpu"))
    assert gpu_data_wait(results) == []  # a CPU report is not a GPU's data wait
    (results / "gpu.md").write_text("Device: cuda:0 (NVIDIA H200); 16 CPU cores\n\n" + epochs.format("cuda"))
    (line,) = gpu_data_wait(results)
    assert "`benchmarks/results/gpu.md`" in line and "NVIDIA H200" in line
    assert "epoch 1: 0.3% of 3.15 s, epoch 2: 12.6% of 0.10 s" in line and "not measured in this run" in line


def test_epoch_section_times_fit_s_own_loaders(tmp_path, capsys):
    # Guards the section's wrapping of fit's loader builder against engine refactors.
    from petlib.data import SAMPLE_ROOT
    from petlib.research.bench.epoch import section_epoch
    from petlib.research.bench.settings import Settings

    root = tmp_path / "tiny"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(SAMPLE_ROOT / "images", target_is_directory=True)
    (root / "annotations" / "trimaps").symlink_to(SAMPLE_ROOT / "annotations" / "trimaps", target_is_directory=True)
    lines = (SAMPLE_ROOT / "annotations" / "trainval.txt").read_text().splitlines()
    (root / "annotations" / "trainval.txt").write_text("\n".join(lines[:11]) + "\n")
    (root / "annotations" / "test.txt").write_text(lines[0] + "\n")
    s = Settings(device=torch.device("cpu"), models=["unet"], sizes=[], batch_size=2, repeats=1, seconds=0.01,
                 skip_peer=False, memory=False, data_path=root, loader_size=16, loader_batch_size=4, epoch_size=16,
                 epoch_batch_size=4, epochs=1, matmul_sizes=[64], config=TrainConfig(amp="off", channels_last="off"))
    section_epoch(s, print)
    printed = capsys.readouterr().out
    assert "unet, 16 px, batch 4:" in printed
    (row,) = [line for line in printed.splitlines() if line.startswith("| 1 |")]
    assert row.count("(") == 9 and "validation" in printed  # nine parts, each with its share of the epoch
    assert any(line.startswith("| 1 |") for line in printed.splitlines())
