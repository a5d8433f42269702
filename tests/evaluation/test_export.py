"""petlib-export: exported models take any size, hold the normalisation, and match PyTorch."""
import json
import subprocess
import sys
import warnings

import pytest
import torch

from petlib.evaluation.export import (
    ExportedSegmenter,
    MissingPackageError,
    export_onnx,
    export_torchscript,
    run_exported,
)
from petlib.models import build_model
from petlib.training.checkpoint import save_checkpoint
from petlib.training.config import TrainConfig

# Two sizes that are no multiple of the networks' 16 or 32, and differ from the 67x93 example
# the graph is recorded with; batches of 1 and 3 (the example has 2).
SIZES = [(1, 45, 70), (3, 101, 58)]


def random_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"base_channels": 4} if name == "unet" else {}
    model = build_model(name, **kwargs).eval()
    if name == "resnet34_unet":
        # Random BatchNorm statistics, so that the logits are not all near 0 and a wrong
        # normalisation or padding would show.
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model


def assert_matches_pytorch(path, model, tta: bool) -> None:
    reference = ExportedSegmenter(model, tta).eval()
    generator = torch.Generator().manual_seed(2)
    for batch, height, width in SIZES:
        images = torch.rand(batch, 3, height, width, generator=generator)  # [0, 1] RGB, not normalised
        with torch.inference_mode():
            expected = reference(images)
        logits = run_exported(path, images)
        assert logits.shape == (batch, 1, height, width)
        assert (logits - expected).abs().max().item() < 1e-4, (height, width)
        assert expected.abs().max().item() > 1e-3  # the comparison is not between two zeros


@pytest.mark.slow  # export round trip: ONNX, then onnxruntime
@pytest.mark.parametrize("name, tta", [("unet", False), ("unet", True), ("resnet34_unet", False)])
def test_onnx_runs_any_size_in_onnxruntime_with_pytorchs_logits(tmp_path, name, tta):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'petlib[export]'")
    pytest.importorskip("onnxscript", reason="onnxscript is not installed: pip install 'petlib[export]'")
    model = random_model(name)
    path = export_onnx(model, tmp_path / "model.onnx", tta=tta, metadata={"model_name": name})
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # the weights are inside, no .data file
    assert_matches_pytorch(path, model, tta)

    import onnx

    graph = onnx.load(str(path))
    assert json.loads({p.key: p.value for p in graph.metadata_props}["petlib"]) == {"model_name": name}
    dims = [d.dim_param or d.dim_value for d in graph.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]


@pytest.mark.slow  # export round trip: TorchScript
def test_torchscript_runs_any_size_with_pytorchs_logits(tmp_path):
    model = random_model("unet")
    path = export_torchscript(model, tmp_path / "model.torchscript.pt", tta=True, metadata={"image_size": 32})
    assert_matches_pytorch(path, model, tta=True)
    extra = {"petlib.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["petlib.json"]) == {"image_size": 32}


def test_onnx_export_without_its_packages_says_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(MissingPackageError, match=r"ONNX export needs onnxscript.*pip install 'petlib\[export\]'"):
        export_onnx(random_model("unet"), tmp_path / "model.onnx")


@pytest.mark.slow  # petlib-export in a child process: an export round trip
@pytest.mark.parametrize("fmt, suffix", [("onnx", ".onnx"), ("torchscript", ".torchscript.pt")])
def test_export_command_writes_beside_the_checkpoint_and_checks_it(tmp_path, fmt, suffix):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'petlib[export]'")
        pytest.importorskip("onnxscript", reason="onnxscript is not installed: pip install 'petlib[export]'")
    model = random_model("unet")
    config = TrainConfig(model="unet", model_kwargs={"base_channels": 4}, image_size=24, tta=True)
    checkpoint = tmp_path / "tiny.pth"
    save_checkpoint({"model_name": "unet", "model_kwargs": {"base_channels": 4}, "model_state": model.state_dict(),
                     "config": config.to_dict(), "history": [], "epoch": 3, "best_dice": 0.5}, checkpoint)
    result = subprocess.run([sys.executable, "-m", "petlib.export", "--model_path", str(checkpoint), "--format", fmt,
                             "--tta", "off"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = tmp_path / f"tiny{suffix}"
    assert out.is_file()
    assert f"wrote {out}" in result.stdout and "without TTA (validated with flip TTA)" in result.stdout
    assert "trained at 24x24" in result.stdout
    difference = float(result.stdout.split("largest |logit difference| ")[1].split()[0])
    assert difference < 1e-4
    assert "[torch.onnx]" not in result.stdout and "Warning" not in result.stderr  # no exporter chatter
