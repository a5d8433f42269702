"""The machine the benchmark runs on: its name, its bf16 flags, and which speed options "auto"
chose there and why (:func:`section_auto`)."""
from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path

import torch

from petlib.research.bench.settings import Settings
from petlib.training import device as petlib_device

__all__ = ["device_name", "bf16_flags", "section_auto"]

#: The CPU flags that mean bf16 in hardware (what :func:`petlib.training.device.cpu_bf16_native` asks for).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA; else the CPU's ``model name`` from ``/proc/cpuinfo``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return name


def bf16_flags() -> dict[str, bool]:
    """Each of :data:`BF16_FLAGS`: whether torch (``torch.cpu.get_capabilities``) or, without
    it, ``/proc/cpuinfo`` reports it."""
    get = getattr(torch.cpu, "get_capabilities", None)
    if get is not None:
        try:
            caps = get()
            return {flag: bool(caps.get(flag)) for flag in BF16_FLAGS}
        except Exception:
            pass
    try:
        words = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        words = set()
    return {flag: flag in words for flag in BF16_FLAGS}


def section_auto(s: Settings, print_: Callable[[str], None]) -> None:
    """Which speed options ``"auto"`` chose on this machine and why, with the probe's figures."""
    options = petlib_device.speed_options(s.config, s.device)
    chosen = ", ".join([
        (str(options.amp_dtype).removeprefix("torch.") + " autocast") if options.amp_dtype else "float32",
        "channels-last " + ("on" if options.channels_last else "off") + " in training, "
        + ("on" if petlib_device.use_channels_last(s.device, s.config.channels_last, inference=True) else "off")
        + " in inference",
        "fused AdamW " + ("on" if options.fused_optimizer else "off"),
    ] + (["cudnn.benchmark on" if options.cudnn_benchmark else "cudnn.benchmark off"] if s.device.type == "cuda" else []))
    print_("## What \"auto\" chose on this machine\n")
    print_(f"Device: {s.device} ({device_name(s.device)}). Chosen: {chosen}.\n")
    print_(f"Why: {options.reason or 'no automatic choice on this device type'}.\n")
    if s.device.type == "cpu":
        flags = bf16_flags()
        probe = petlib_device.probe_cpu()
        print_("CPU bf16 flags: " + ", ".join(f"{flag} {'yes' if has else 'no'}" for flag, has in flags.items())
               + f" (petlib.training.device.cpu_bf16_native: {probe.native_bf16}).\n")
        bf16 = (f"{1e3 * probe.bf16_s:.1f} ms ({probe.bf16_speedup:.2f}x)" if probe.bf16_s
                else "not timed (emulated bf16)")
        print_(f"The probe (`petlib.training.device.probe_cpu`, best of 3, forward + backward of two 64-channel "
               f"conv-BN-ReLU layers, batch 4 at 64x64): float32 {1e3 * probe.float32_s:.1f} ms, "
               f"bf16 autocast {bf16}, channels-last in the chosen precision "
               f"{1e3 * probe.channels_last_s:.1f} ms ({probe.channels_last_speedup:.2f}x, reported only: "
               f"channels-last is chosen from whole networks, see `petlib.training.device`); "
               f"bf16 turns on at {petlib_device.MIN_SPEEDUP:.2f}x "
               f"or more. The probe ran once in this "
               f"process, on whatever else the machine was doing then.\n")
