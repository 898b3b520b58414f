"""The inversion curve as inline SVG text, for HTML reports (no matplotlib, no network).

Counterfactual, parametric and ID accuracy (fractions, one 0-100% axis) against the training
step: cf a solid blue line, param a dashed orange one, ID a dotted green one, each with a
± stderr band in the full size, the cf peak marked, a tooltip (``<title>``) on every point.
``compact`` draws a small sparkline for a leaderboard cell (no axes, no legend).
Pure: points in, text out; every text is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from ..core.constants import CF_ACC, ID_ACC, PARAM_ACC

# (point key, legend label, colour, dash pattern)
CURVES = (
    (CF_ACC, "counterfactual acc (context's answer)", "#1f77b4", ""),
    (PARAM_ACC, "parametric acc (memorised answer)", "#e8710a", "6 4"),
    (ID_ACC, "ID accuracy", "#2ca02c", "2 3"),
)
MAX_X_TICKS = 8


class _Frame:
    """Maps (step, fraction) to SVG pixels inside a margin."""

    def __init__(self, steps: list[int], width: int, height: int, margin: tuple) -> None:
        self.left, self.top, self.right, self.bottom = margin
        self.width, self.height = width, height
        self.lo, self.hi = min(steps), max(steps)

    def x(self, step: float) -> float:
        span = self.width - self.left - self.right
        if self.hi == self.lo:
            return self.left + span / 2
        return self.left + span * (step - self.lo) / (self.hi - self.lo)

    def y(self, value: float) -> float:
        span = self.height - self.top - self.bottom
        return self.top + span * (1 - min(1.0, max(0.0, value)))


def _xy(frame: _Frame, pts: list[tuple[int, float]]) -> str:
    return " ".join(f"{frame.x(s):.1f},{frame.y(v):.1f}" for s, v in pts)


def _series(points: list[dict[str, Any]], key: str) -> list[tuple[int, float, float]]:
    return [
        (p["step"], float(p[key]), float(p.get(f"{key}_stderr") or 0.0))
        for p in points
        if p.get(key) is not None
    ]


def _band(frame: _Frame, series: list[tuple[int, float, float]], colour: str) -> str:
    """The ± stderr band of a curve as one closed polygon (nothing for one point)."""
    if len(series) < 2:
        return ""
    upper = [(s, v + e) for s, v, e in series]
    lower = [(s, v - e) for s, v, e in reversed(series)]
    return (
        f'<polygon points="{_xy(frame, upper + lower)}" fill="{colour}" '
        'fill-opacity="0.15" stroke="none"/>'
    )


def _curve(
    frame: _Frame, series: list[tuple[int, float, float]], key: str, colour: str, dash: str
) -> str:
    """One curve: its line and a point with a tooltip at every step."""
    line = _xy(frame, [(s, v) for s, v, _ in series])
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    parts = [
        f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.8"{dash_attr}/>'
    ]
    for s, v, e in series:
        tip = f"step {s}: {key} {100 * v:.1f}%" + (f" ± {100 * e:.1f}" if e else "")
        parts.append(
            f'<circle cx="{frame.x(s):.1f}" cy="{frame.y(v):.1f}" r="2.6" fill="{colour}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    return "".join(parts)


def _step_ticks(steps: list[int]) -> list[int]:
    """At most MAX_X_TICKS of the evaluated steps, evenly spread, first and last included."""
    uniq = sorted(set(steps))
    if len(uniq) <= MAX_X_TICKS:
        return uniq
    idx = {round(i * (len(uniq) - 1) / (MAX_X_TICKS - 1)) for i in range(MAX_X_TICKS)}
    return [uniq[i] for i in sorted(idx)]


def _axes(frame: _Frame, steps: list[int]) -> str:
    """Grid lines and labels: 0-100% on y, the evaluated steps on x, both axis titles."""
    parts = []
    x0, x1 = frame.left, frame.width - frame.right
    for pct in (0, 25, 50, 75, 100):
        y = frame.y(pct / 100)
        parts.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{pct}%</text>')
    base = frame.height - frame.bottom
    for s in _step_ticks(steps):
        x = frame.x(s)
        parts.append(f'<line x1="{x:.1f}" y1="{base}" x2="{x:.1f}" y2="{base + 4}" class="axis"/>')
        parts.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{s}</text>')
    parts.append(
        f'<text x="{(x0 + x1) / 2:.0f}" y="{base + 32}" text-anchor="middle">training step</text>'
    )
    parts.append(
        f'<text x="14" y="{(frame.top + base) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(frame.top + base) / 2:.0f})">accuracy (%)</text>'
    )
    return "".join(parts)


def _legend(present: list[tuple[str, str, str, str]], width: int, y: int) -> str:
    parts, x = [], 60
    for _, label, colour, dash in present:
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<line x1="{x}" y1="{y}" x2="{x + 22}" y2="{y}" stroke="{colour}" '
            f'stroke-width="2"{dash_attr}/><text x="{x + 28}" y="{y + 4}">{escape(label)}</text>'
        )
        x += 34 + 7 * len(label)
    return "".join(parts)


def _peak(frame: _Frame, points: list[dict[str, Any]]) -> str:
    """A dashed grey line at the step of peak cf_acc (the earliest, as the summary's)."""
    scored = [p for p in points if p.get(CF_ACC) is not None]
    if not scored:
        return ""
    peak = max(scored, key=lambda p: (p[CF_ACC], -p["step"]))
    x = frame.x(peak["step"])
    return (
        f'<line x1="{x:.1f}" y1="{frame.top}" x2="{x:.1f}" y2="{frame.height - frame.bottom}" '
        f'class="peak"><title>cf_acc peak: step {peak["step"]}</title></line>'
    )


def curve_svg(points: list[dict[str, Any]], *, compact: bool = False, label: str = "") -> str:
    """The curve of ``points`` (``[{step, cf_acc, param_acc, id_acc, *_stderr}]``, fractions)
    as an ``<svg>`` element: 720 x 380 px with axes and legend, or a 160 x 48 px sparkline
    with ``compact``. An empty string when no point has a value."""
    present = [c for c in CURVES if any(p.get(c[0]) is not None for p in points)]
    if not points or not present:
        return ""
    width, height = (160, 48) if compact else (720, 380)
    margin = (4, 4, 4, 4) if compact else (56, 16, 24, 72)
    frame = _Frame([p["step"] for p in points], width, height, margin)
    body = [] if compact else [_axes(frame, [p["step"] for p in points]), _peak(frame, points)]
    for key, _, colour, dash in present:
        series = _series(points, key)
        body.append("" if compact else _band(frame, series, colour))
        body.append(_curve(frame, series, key, colour, dash))
    if not compact:
        body.append(_legend(present, width, height - 18))
    title = escape(label or "inversion curve: cf, param and ID accuracy against the step")
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="curve{" spark" if compact else ""}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{title}"><title>{title}</title>{"".join(body)}</svg>'
    )
