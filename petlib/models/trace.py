"""A shape trace: what each stage of a network makes of one input, for the notebooks' architecture sections."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["StageShape", "shape_trace", "format_trace"]


@dataclass(frozen=True)
class StageShape:
    """One stage of a network: its name, output shape ``(N, C, H, W)`` and trainable parameters."""

    name: str
    shape: tuple[int, ...]
    params: int


@torch.no_grad()
def shape_trace(model: nn.Module, image_size: int = 128, stages: tuple[str, ...] | None = None) -> list[StageShape]:
    """Run one ``(1, 3, S, S)`` image through ``model`` and record each stage's output shape.

    Args:
        model: a petlib network; its stages default to its ``trace_stages`` attribute (module
            names in forward order, e.g. ``"encoder.layer1"`` or ``"down2"``). A stage made of
            several modules is written ``"a+b+c"``: its output is ``c``'s, its parameters all of theirs.
        image_size: the side ``S`` of the input.
        stages: module names to record instead of ``model.trace_stages``.

    Returns:
        One :class:`StageShape` per stage, in the order the forward pass reached them.
    """
    names = stages or getattr(model, "trace_stages", None)
    if not names:
        raise ValueError(f"{type(model).__name__} names no trace_stages; pass stages=(...) module names")
    modules = dict(model.named_modules())
    unknown = [part for name in names for part in name.split("+") if part not in modules]
    if unknown:
        raise ValueError(f"{type(model).__name__} has no module(s) {unknown}")
    trace: list[StageShape] = []
    hooks = []
    for name in names:
        parts = [modules[part] for part in name.split("+")]
        module = parts[-1]
        params = sum(p.numel() for part in parts for p in part.parameters() if p.requires_grad)

        def record(_module, _inputs, output, name=name, params=params):
            trace.append(StageShape(name, tuple(output.shape), params))

        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        model(torch.rand(1, 3, image_size, image_size, device=device))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    return trace


def format_trace(trace: list[StageShape], image_size: int) -> str:
    """The trace as a text table: stage, output shape ``C x H x W``, scale against the input, parameters."""
    rows = [("input", f"3 x {image_size} x {image_size}", "1", "")]
    for stage in trace:
        channels, height, width = stage.shape[1:]
        scale = f"1/{image_size // height}" if height < image_size else f"{height // image_size}"
        first, *rest = stage.name.split("+")
        prefix = first.rpartition(".")[0] + "."
        name = "+".join([first, *(part.removeprefix(prefix) for part in rest)])  # encoder.conv1+bn1+relu
        rows.append((name, f"{channels} x {height} x {width}", scale, f"{stage.params:,}"))
    header = ("stage", "output (C x H x W)", "scale", "parameters")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines)
