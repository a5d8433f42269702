"""The device and the "auto" speed options: bf16 on a CPU only where measured faster; channels-last on a CPU
in inference only."""
import pytest
import torch

from petlib.training import device as dev
from petlib.training.config import TrainConfig

CPU = torch.device("cpu")


@pytest.fixture
def fake_cpu(monkeypatch):
    """Fake a CPU: whether bf16 is native, and the probe's seconds per step for (dtype, channels_last)."""

    def make(native: bool, seconds: dict):
        monkeypatch.setattr(dev, "cpu_bf16_native", lambda: native)
        monkeypatch.setattr(dev, "_step_seconds", lambda dtype, channels_last: seconds[(dtype, channels_last)])
        dev.probe_cpu.cache_clear()

    yield make
    dev.probe_cpu.cache_clear()


def test_native_and_faster_bf16_is_chosen(fake_cpu):
    fake_cpu(True, {(None, False): 1.0, (torch.bfloat16, False): 0.6, (torch.bfloat16, True): 0.58})
    assert dev.autocast_dtype(CPU, "auto") == torch.bfloat16
    options = dev.speed_options(TrainConfig(), CPU)
    assert options.amp_dtype == torch.bfloat16 and not options.channels_last  # whatever the probe read
    assert "1.67x faster in bf16" in options.reason and "used" in options.reason


def test_emulated_bf16_is_never_timed_nor_used(fake_cpu):
    fake_cpu(False, {(None, False): 1.0, (None, True): 0.8})  # a bf16 key would raise KeyError: never timed
    assert dev.autocast_dtype(CPU, "auto") is None
    options = dev.speed_options(TrainConfig(), CPU)
    assert options.amp_dtype is None and not options.channels_last  # however fast the probe found it
    assert "without native bf16" in options.reason
    assert dev.speed_options(TrainConfig(channels_last="on"), CPU).channels_last


def test_native_but_not_faster_bf16_stays_off(fake_cpu):
    fake_cpu(True, {(None, False): 1.0, (torch.bfloat16, False): 0.95, (None, True): 1.1})
    assert dev.autocast_dtype(CPU, "auto") is None
    assert "below 1.15x, not used" in dev.speed_options(TrainConfig(), CPU).reason


def test_on_and_off_override_the_probe(fake_cpu):
    fake_cpu(False, {(None, False): 1.0, (None, True): 1.0})
    assert dev.autocast_dtype(CPU, "on") == torch.bfloat16
    fake_cpu(True, {(None, False): 1.0, (torch.bfloat16, False): 0.5, (torch.bfloat16, True): 0.1})
    assert dev.autocast_dtype(CPU, "off") is None
    options = dev.speed_options(TrainConfig(amp="off", channels_last="off"), CPU)
    assert options.amp_dtype is None and not options.channels_last and options.reason == ""


def test_the_probe_runs_once_per_process(fake_cpu, monkeypatch):
    calls = []
    fake_cpu(True, {})
    monkeypatch.setattr(dev, "_step_seconds", lambda dtype, cl: calls.append((dtype, cl)) or 1.0)
    dev.probe_cpu()
    dev.probe_cpu()
    assert len(calls) == 3  # float32, bf16, channels-last: once


def test_the_real_probe_returns_sane_timings():
    dev.probe_cpu.cache_clear()
    probe = dev.probe_cpu()
    assert probe.float32_s > 0 and probe.channels_last_s > 0
    assert (probe.bf16_s is None) == (not probe.native_bf16)
    assert probe.use_bf16 == (probe.bf16_s is not None and probe.bf16_speedup >= dev.MIN_SPEEDUP)


def test_cpu_bf16_native_agrees_with_the_cpu_flags():
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    assert dev.cpu_bf16_native() == (" avx512_bf16" in flags or " amx_bf16" in flags)


# ----------------------------------------------------------------------------- channels-last for inference


def test_inference_layout_follows_the_setting_and_predict_logits_matches_either_layout():
    from petlib.models import build_model
    from petlib.training.device import inference_layout, model_format, use_channels_last
    from petlib.training.engine import predict_logits

    cpu = torch.device("cpu")
    assert use_channels_last(torch.device("cuda")) and not use_channels_last(cpu) and use_channels_last(cpu, "on")
    assert use_channels_last(cpu, inference=True) and not use_channels_last(cpu, "off", inference=True)
    assert not use_channels_last(torch.device("mps"), inference=True) and use_channels_last(torch.device("mps"), "on")
    torch.manual_seed(0)
    model = build_model("unet", base_channels=4).eval()
    images = torch.rand(2, 3, 32, 32)  # (N, 3, S, S), contiguous
    expected = predict_logits(model, images, tta=True)
    assert model_format(model) == torch.contiguous_format
    assert inference_layout(model, "cpu", "off") is model and model_format(model) == torch.contiguous_format
    inference_layout(model, "cpu")
    assert model_format(model) == torch.channels_last
    logits = predict_logits(model, images, tta=True)  # contiguous images into a channels-last model
    assert logits.shape == (2, 1, 32, 32)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
