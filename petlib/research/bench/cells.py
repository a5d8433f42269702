"""How numbers show in the benchmark's tables: rates, ratios, shares and MiB, ``—`` where there is none;
and ratios with the spread of their repeats (:class:`Spread`), called "no difference" where the
spread includes 1.0."""
from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["rate", "ratio", "percent", "mib", "Spread", "ratio_spread", "rate_spread", "spread_cell",
           "rate_cell"]


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


@dataclass(frozen=True)
class Spread:
    """A median and the min-max of the values it is the median of (``n`` values)."""

    median: float
    low: float
    high: float
    n: int

    @property
    def includes_one(self) -> bool:
        return self.low <= 1.0 <= self.high

    @property
    def verdict(self) -> str:
        """For a ratio: "faster", "slower", "no difference" (its spread includes 1.0), or
        "one repeat" (no spread to judge by)."""
        if self.n < 2:
            return "one repeat"
        if self.includes_one:
            return "no difference"
        return "faster" if self.median > 1 else "slower"


def _spread(values: Sequence[float]) -> Spread | None:
    values = [v for v in values if v == v]
    if not values:
        return None
    return Spread(statistics.median(values), min(values), max(values), len(values))


def rate_spread(runs: Sequence[float]) -> Spread | None:
    """The median and min-max of one row's repeats."""
    return _spread(runs)


def ratio_spread(ours: Sequence[float], theirs: Sequence[float]) -> Spread | None:
    """``ours / theirs`` repeat by repeat (the two ran in turn inside each repeat, so repeat ``i``
    of one pairs with repeat ``i`` of the other): their median and min-max."""
    if len(ours) != len(theirs):
        raise ValueError(f"paired repeats needed, got {len(ours)} and {len(theirs)}")
    return _spread([a / b for a, b in zip(ours, theirs) if b])


def spread_cell(spread: Spread | None) -> str:
    """A ratio with its spread: ``1.52x (1.41-1.60)``; ``no difference: 1.02x (0.95-1.10)`` where
    the spread includes 1.0; ``1.52x (1 repeat)`` where there is no spread."""
    if spread is None:
        return "—"
    if spread.n < 2:
        return f"{spread.median:.2f}x (1 repeat)"
    text = f"{spread.median:.2f}x ({spread.low:.2f}-{spread.high:.2f})"
    return "no difference: " + text if spread.includes_one else text


def rate_cell(spread: Spread | None) -> str:
    """A rate with the min-max of its repeats: ``9.8 (9.5-10.1)``."""
    if spread is None:
        return "—"
    if spread.n < 2:
        return rate(spread.median)
    return f"{rate(spread.median)} ({rate(spread.low)}-{rate(spread.high)})"
