"""A bar chart of daily requests, laid out on the server for an inline SVG."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Bar:
    day: date
    count: int
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    plot_top: int
    plot_bottom: int
    bars: list[Bar]
    peak: int
    total: int
    first: date | None
    last: date | None

    @property
    def midline(self) -> float:
        return (self.plot_top + self.plot_bottom) / 2

    @property
    def half_peak(self) -> int:
        return self.peak // 2


def _nice_ceiling(value: int) -> int:
    """Return a round number at least `value`, for the top of the axis."""
    if value <= 4:
        return 4
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        ceiling = int(step * magnitude)
        if ceiling >= value and ceiling % 2 == 0:
            return ceiling
    return 10 * magnitude


def bar_chart(points: list[tuple[date, int]], *, width: int = 300, height: int = 100) -> BarChart:
    """Return the geometry of one bar per (day, count), oldest on the left.

    The SVG stretches to its box (preserveAspectRatio="none"), so the axis labels
    live in HTML beside it and stay readable at any width.
    """
    left, right, top, bottom = 0, 0, 1, height - 1
    peak = _nice_ceiling(max((count for _, count in points), default=0))
    slot = (width - left - right) / max(len(points), 1)
    gap = slot * 0.25
    bars = []
    for i, (day, count) in enumerate(points):
        bar_height = (bottom - top) * count / peak if count else 0
        if count and bar_height < 1.5:
            bar_height = 1.5  # a day with requests never looks like a day without
        bars.append(
            Bar(
                day=day,
                count=count,
                x=round(left + i * slot + gap / 2, 2),
                y=round(bottom - bar_height, 2),
                width=round(slot - gap, 2),
                height=round(bar_height, 2),
            )
        )
    return BarChart(
        width=width,
        height=height,
        plot_top=top,
        plot_bottom=bottom,
        bars=bars,
        peak=peak,
        total=sum(count for _, count in points),
        first=points[0][0] if points else None,
        last=points[-1][0] if points else None,
    )
