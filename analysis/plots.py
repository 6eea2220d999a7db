"""The report's plots as inline SVG: no plotting library, no files, no network, so a page
stays self-contained and renders the same everywhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from analysis.report import HISTOGRAM_BINS, Report

COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high].

    >>> nice_ticks(0, 1)
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high <= low:
        high, low = low + (abs(low) or 1) * 0.05, low - (abs(low) or 1) * 0.05
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks: list[float] = []
    value = start
    while not ticks or ticks[-1] < high - step * 1e-9 or len(ticks) < 2:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _fmt(value: float, percent: bool = False) -> str:
    if percent:
        return f"{value * 100:.3g} %"
    return f"{value:.3g}"


class _Canvas:
    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height = width, height
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" {FONT}>',
            f"<title>{escape(title)}</title>",
            f'<rect width="{width}" height="{height}" fill="white"/>',
        ]

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(self, x: float, y: float, text: str, anchor: str = "middle", **attrs: str) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>{escape(text)}</text>'
        )

    def line(
        self, x1: float, y1: float, x2: float, y2: float, color: str = "#999", **a: str
    ) -> None:
        extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in a.items())
        self.add(
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
            f'stroke="{color}"{extra}/>'
        )

    def svg(self) -> str:
        return "\n".join([*self.parts, "</svg>"])


class _Axis:
    """A vertical value axis mapped onto pixel rows [bottom, top]."""

    def __init__(self, values: Sequence[float], bottom: float, top: float, zero: bool = False):
        finite = [v for v in values if math.isfinite(v)] or [0.0, 1.0]
        low, high = min(finite), max(finite)
        if zero:
            low, high = min(low, 0.0), max(high, 0.0)
        pad = (high - low) * 0.05
        # counts and shares start at zero: no padding below it
        floor = 0.0 if zero and low >= 0 else low - pad
        self.ticks = nice_ticks(floor, high + pad)
        self.low, self.high = self.ticks[0], self.ticks[-1]
        self.bottom, self.top = bottom, top

    def y(self, value: float) -> float:
        span = self.high - self.low or 1.0
        return self.bottom - (value - self.low) / span * (self.bottom - self.top)

    def draw(self, canvas: _Canvas, left: float, right: float, percent: bool = False) -> None:
        for tick in self.ticks:
            y = self.y(tick)
            canvas.line(left, y, right, y, "#eee")
            canvas.text(left - 4, y + 4, _fmt(tick, percent), anchor="end", fill="#555")


def arm_intervals(report: Report) -> str:
    """Each metric's per-arm value with its confidence interval, one panel per metric."""
    metrics = report.metrics
    width, height, panel = 760, 230, 760 / max(len(metrics), 1)
    level = f"{1 - report.inputs.alpha:.0%}"
    canvas = _Canvas(width, height, f"Per-arm value of each metric with {level} intervals")
    for i, metric in enumerate(metrics):
        left, right = i * panel + 52, (i + 1) * panel - 10
        values = [v for a in metric.arms for v in (a.value, *a.ci)]
        axis = _Axis(values, bottom=height - 40, top=30)
        axis.draw(canvas, left, right, percent=metric.name in ("hitrate", "ctr", "like_share"))
        canvas.text((left + right) / 2, 16, metric.label, font_weight="bold")
        step = (right - left) / (len(metric.arms) + 1)
        for j, arm in enumerate(metric.arms):
            x, color = left + step * (j + 1), COLORS[j % len(COLORS)]
            if all(math.isfinite(v) for v in arm.ci):
                lo, hi = axis.y(arm.ci[0]), axis.y(arm.ci[1])
                canvas.line(x, lo, x, hi, color, stroke_width="2")
                for y in (lo, hi):
                    canvas.line(x - 6, y, x + 6, y, color, stroke_width="2")
            if math.isfinite(arm.value):
                canvas.add(
                    f'<circle cx="{x:.1f}" cy="{axis.y(arm.value):.1f}" r="4" fill="{color}"/>'
                )
            canvas.text(x, height - 22, arm.arm)
        users = " / ".join(f"{a.users:,}" for a in metric.arms)
        canvas.text((left + right) / 2, height - 6, f"users {users}", fill="#555")
    return canvas.svg()


def daily_effect(report: Report) -> str:
    """The primary metric's relative effect per day with its interval."""
    days = [d for d in report.daily if d.effect.ok and math.isfinite(d.effect.relative)]
    primary = next(m for m in report.metrics if m.name == "hitrate")
    width, height = 760, 260
    left, right, top, bottom = 60, width - 20, 30, height - 50
    canvas = _Canvas(width, height, f"Relative effect on {primary.label} by day")
    canvas.text(
        width / 2,
        16,
        f"Relative effect on {primary.label} by day (test vs control)",
        font_weight="bold",
    )
    if not days:
        canvas.text(width / 2, height / 2, "no day with both arms", fill="#555")
        return canvas.svg()
    values = [v for d in days for v in (d.effect.relative, *d.effect.relative_ci)]
    axis = _Axis(values, bottom, top, zero=True)
    axis.draw(canvas, left, right, percent=True)
    canvas.line(left, axis.y(0), right, axis.y(0), "#333")
    overall = primary.headline.relative
    if math.isfinite(overall):
        y = axis.y(overall)
        canvas.line(left, y, right, y, COLORS[1], stroke_dasharray="5 4")
        canvas.text(
            left + 4, y - 4, f"overall {_fmt(overall, True)}", anchor="start", fill=COLORS[1]
        )
    step = (right - left) / len(days)
    label_every = max(1, math.ceil(len(days) / 14))
    points = []
    for i, day in enumerate(days):
        x = left + step * (i + 0.5)
        lo, hi = (axis.y(v) for v in day.effect.relative_ci)
        canvas.line(x, lo, x, hi, COLORS[0], stroke_width="2")
        points.append(f"{x:.1f},{axis.y(day.effect.relative):.1f}")
        canvas.add(
            f'<circle cx="{x:.1f}" cy="{axis.y(day.effect.relative):.1f}" r="3.5" '
            f'fill="{COLORS[0]}"/>'
        )
        if i % label_every == 0:
            canvas.text(x, bottom + 16, day.day[5:], fill="#555")
    canvas.add(
        f'<polyline points="{" ".join(points)}" fill="none" stroke="{COLORS[0]}" '
        'stroke-opacity="0.5"/>'
    )
    canvas.text(width / 2, height - 10, "UTC day (month-day)", fill="#555")
    return canvas.svg()


def likes_distribution(report: Report) -> str:
    """Share of users by number of likes during the experiment, per arm."""
    width, height = 760, 250
    left, right, top, bottom = 60, width - 20, 40, height - 45
    canvas = _Canvas(width, height, "Distribution of likes per user")
    canvas.text(
        width / 2, 16, "Likes per user during the experiment (share of users)", font_weight="bold"
    )
    histogram = report.likes_histogram
    if not histogram:
        canvas.text(width / 2, height / 2, "per-user rows not loaded", fill="#555")
        return canvas.svg()
    arms = list(histogram)
    axis = _Axis([v for shares in histogram.values() for v in shares], bottom, top, zero=True)
    axis.draw(canvas, left, right, percent=True)
    group = (right - left) / HISTOGRAM_BINS
    bar = group * 0.8 / len(arms)
    for j, arm in enumerate(arms):
        color = COLORS[j % len(COLORS)]
        for b, share in enumerate(histogram[arm]):
            x = left + group * b + group * 0.1 + bar * j
            y = axis.y(share)
            canvas.add(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{bottom - y:.1f}" '
                f'fill="{color}"/>'
            )
        canvas.add(
            f'<rect x="{right - 150 + 75 * j}" y="24" width="10" height="10" fill="{color}"/>'
        )
        canvas.text(right - 136 + 75 * j, 33, arm, anchor="start")
    for b in range(HISTOGRAM_BINS):
        label = f"{b}+" if b == HISTOGRAM_BINS - 1 else str(b)
        canvas.text(left + group * (b + 0.5), bottom + 16, label, fill="#555")
    canvas.text(width / 2, height - 10, "likes", fill="#555")
    return canvas.svg()


def all_plots(report: Report) -> dict[str, str]:
    """Title -> SVG, in the order the report shows them."""
    return {
        "Per-arm values with intervals": arm_intervals(report),
        "Effect over days": daily_effect(report),
        "Likes per user": likes_distribution(report),
    }
