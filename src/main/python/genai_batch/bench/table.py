"""Markdown tables for the benchmark report (the console shows them as they are)."""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import pandas as pd


def fmt(v: float | None, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def spread(values: Iterable[float], digits: int = 1) -> str:
    """'median (min-max)' of the values, or the single value."""
    s = pd.Series([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))], dtype=float)
    if s.empty:
        return "-"
    if len(s) == 1:
        return fmt(s.iloc[0], digits)
    return f"{fmt(s.median(), digits)} ({fmt(s.min(), digits)}-{fmt(s.max(), digits)})"


def median(values: Iterable[float]) -> float:
    s = pd.Series([v for v in values if v is not None], dtype=float).dropna()
    return float("nan") if s.empty else float(s.median())


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in rows)
    return "\n".join(out)
