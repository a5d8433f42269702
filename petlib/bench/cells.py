"""How numbers show in the benchmark's tables: rates, ratios, shares and MiB, ``—`` where there is none."""
from __future__ import annotations

__all__ = ["rate", "ratio", "percent", "mib"]


def rate(value: float) -> str:
    if value != value:  # NaN
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def ratio(a: float, b: float | None) -> str:
    return "—" if b is None or b != b or a != a else f"{a / b:.2f}x"


def percent(value: float | None) -> str:
    return "—" if value is None or value != value else f"{100 * value:.1f}%"


def mib(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"
