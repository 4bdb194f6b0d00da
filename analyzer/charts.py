"""Charts as inline SVG: their frames and axes, magnitude over steps with fitted trends, the loss, the
depth profile, the sparkline (the heatmap is in ``heatmaps``).

Charts only draw the numbers they are given; every text from a log is escaped here, and every chart
carries a text alternative (``role="img"`` with ``aria-label`` and ``<title>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

from .trends import TimeTrend, log10_positive

# Okabe–Ito, colour-blind safe, for distinct series.
SERIES_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


@dataclass
class Frame:
    """Maps data coordinates into an SVG plot area with margins for axes."""

    width: int
    height: int
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    left: int = 64
    right: int = 16
    top: int = 12
    bottom: int = 44

    def x(self, value: float) -> float:
        lo, hi = self.x_range
        span = (hi - lo) or 1.0
        return self.left + (value - lo) / span * (self.width - self.left - self.right)

    def y(self, value: float) -> float:
        lo, hi = self.y_range
        span = (hi - lo) or 1.0
        return self.height - self.bottom - (value - lo) / span * (self.height - self.top - self.bottom)


def svg_chart(width: int, height: int, label: str, body: list[str], css_class: str = "chart") -> Markup:
    text = escape(label)
    return Markup(
        f'<svg class="{css_class}" viewBox="0 0 {width} {height}" role="img" aria-label="{text}" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">'
        f"<title>{text}</title>{''.join(body)}</svg>"
    )


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def draw_axes(frame: Frame, x_label: str, y_label: str, y_decades: bool) -> list[str]:
    out = [
        f'<line class="axis" x1="{frame.left}" y1="{frame.height - frame.bottom}" '
        f'x2="{frame.width - frame.right}" y2="{frame.height - frame.bottom}"/>',
        f'<line class="axis" x1="{frame.left}" y1="{frame.top}" x2="{frame.left}" '
        f'y2="{frame.height - frame.bottom}"/>',
    ]
    for t in ticks(*frame.x_range):
        x = frame.x(t)
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{frame.height - frame.bottom + 14}" '
            f'text-anchor="middle">{number(t)}</text>'
        )
    for t in ticks(*frame.y_range, count=4):
        y = frame.y(t)
        label = f"1e{t:g}" if y_decades else number(t)
        out.append(
            f'<line class="grid" x1="{frame.left}" y1="{y:.1f}" '
            f'x2="{frame.width - frame.right}" y2="{y:.1f}"/>'
        )
        out.append(
            f'<text class="tick" x="{frame.left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    out.append(
        f'<text class="label" x="{(frame.left + frame.width - frame.right) / 2:.1f}" '
        f'y="{frame.height - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    middle = (frame.top + frame.height - frame.bottom) / 2
    out.append(
        f'<text class="label" transform="rotate(-90)" x="{-middle:.1f}" '
        f'y="14" text-anchor="middle">{escape(y_label)}</text>'
    )
    return out


def polyline(xs: np.ndarray, ys: np.ndarray) -> str:
    """SVG polyline points; a long series drawn at 0.1 px resolution."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(np.asarray(xs).tolist(), np.asarray(ys).tolist()))


def number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def finite_range(values: np.ndarray, pad: float = 0.0) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return lo - pad, hi + pad


def no_data(label: str, width: int = 640, height: int = 80) -> Markup:
    return svg_chart(
        width,
        height,
        label,
        [f'<text class="label" x="{width / 2}" y="{height / 2}" text-anchor="middle">{escape(label)}</text>'],
    )


@dataclass(frozen=True)
class RateUnit:
    """The unit a run's rates are told in: decades per 1,000 steps, per logged step, or per epoch."""

    name: str  # "1k steps", "logged step" or "epoch"
    steps: float  # training steps in one unit
    axis: str  # what the x axis counts: "training step" or "epoch"

    def per_unit(self, decades_per_1k_steps: float) -> float:
        return decades_per_1k_steps * self.steps / 1000.0

    def rate(self, trend: TimeTrend | None) -> str:
        """'+0.123 dec/epoch [+0.1, +0.2]', or a dash without a fit."""
        if trend is None:
            return "—"
        low, slope, high = (
            self.per_unit(v) for v in (trend.ci_low, trend.decades_per_1k_steps, trend.ci_high)
        )
        return f"{slope:+.3g} dec/{self.name} [{low:+.3g}, {high:+.3g}]"


PER_1K_STEPS = RateUnit("1k steps", 1000.0, "training step")


def magnitude_over_steps(
    tags: list[str],
    steps: np.ndarray,
    log10_rms: np.ndarray,
    trends: list[TimeTrend | None],
    shown: list[int],
    unit: RateUnit = PER_1K_STEPS,
    quantity: str = "gradient",
) -> Markup:
    """RMS of the chosen layers over steps (points and line) with each layer's Theil–Sen trend and
    its confidence band (slopes at the interval's ends, pivoting on the data's centre)."""
    if not shown or log10_rms.size == 0:
        return no_data(f"Magnitude over steps: no {quantity} data")
    if not np.isfinite(log10_rms[shown]).any():
        return no_data(f"Magnitude over steps: no finite {quantity} value to draw (NaN/Inf or empty)")
    frame = Frame(720, 300, (float(steps[0]), float(steps[-1])), finite_range(log10_rms[shown], 0.2))
    body = draw_axes(frame, unit.axis, f"{quantity} RMS (log scale)", y_decades=True)
    legend = []
    for k, i in enumerate(shown):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        row = log10_rms[i]
        ok = np.isfinite(row)
        points = polyline(frame.x(steps[ok].astype(float)), frame.y(row[ok]))
        trend = trends[i]
        if trend is not None:
            body.append(_trend_band(frame, steps[ok], row[ok], trend, colour))
            x0, x1 = float(steps[ok][0]), float(steps[ok][-1])
            y0, y1 = trend.predict_log10(np.array([x0, x1]))
            body.append(
                f'<line class="trend" x1="{frame.x(x0):.1f}" y1="{frame.y(y0):.1f}" '
                f'x2="{frame.x(x1):.1f}" y2="{frame.y(y1):.1f}" stroke="{colour}"/>'
            )
        body.append(f'<polyline class="series" points="{points}" stroke="{colour}"/>')
        slope = unit.rate(trend) if trend else "no trend (too few points)"
        legend.append((colour, f"{tags[i]} — {slope}"))
    label = f"{quantity.capitalize()} RMS over training steps, log scale, with fitted trends: " + "; ".join(
        t for _, t in legend
    )
    return Markup(svg_chart(frame.width, frame.height, label, body) + _legend_list(legend))


def loss_curves(
    series: list[tuple[str, np.ndarray, np.ndarray]],
    gate: TimeTrend | None,
    unit: RateUnit = PER_1K_STEPS,
    quantity: str = "loss",
    later_half: bool = True,
) -> Markup:
    """Each loss series (name, steps, values) over its own logged steps; the series the verdict read
    first, with its later-half Theil–Sen fit and its band. Log scale where the losses span a decade
    or more, linear otherwise (ticks such as 1e0.2 read badly). Series are never spliced: Keras's
    epoch losses count epochs, so each is drawn against the steps it was logged at. The same for
    another scalar (`quantity`, such as a gradient norm) whose fit spans all its points."""
    lost = {n: int((~np.isfinite(v)).sum()) for n, _, v in series}
    drawn = [(n, s, log10_positive(v)) for n, s, v in series if np.isfinite(log10_positive(v)).any()]
    if not drawn:
        return no_data(f"{quantity.capitalize()}: no positive finite values to draw")
    all_steps = np.concatenate([s for _, s, _ in drawn]).astype(float)
    all_values = np.concatenate([v for _, _, v in drawn])
    log_scale = float(np.nanmax(all_values) - np.nanmin(all_values)) >= 1.0
    if not log_scale:
        drawn = [(n, s, 10**v) for n, s, v in drawn]
        all_values = 10**all_values
    pad = 0.1 if log_scale else 0.05 * float(np.nanmax(all_values) - np.nanmin(all_values))
    frame = Frame(720, 240, (float(all_steps.min()), float(all_steps.max())), finite_range(all_values, pad))
    y_label = f"{quantity} (log scale)" if log_scale else quantity
    fitted = (lambda x: x[len(x) // 2 :]) if later_half else (lambda x: x)
    body = draw_axes(frame, "logged step of each series", y_label, y_decades=log_scale)
    legend = []
    for k, (name, steps, values) in enumerate(drawn):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        ok = np.isfinite(values)
        x = steps[ok].astype(float)
        if k == 0 and gate is not None and log_scale:  # the fit is of log10(loss): drawn on that scale
            body.append(_trend_band(frame, fitted(x), fitted(values[ok]), gate, colour))
        points = polyline(frame.x(x), frame.y(values[ok]))
        body.append(f'<polyline class="series" points="{points}" stroke="{colour}"/>')
        fit = ""
        if k == 0 and gate is not None:
            fit = f" — {'later half ' if later_half else 'trend '}{unit.rate(gate)}"
        gaps = f" — NaN/Inf at {lost[name]} logged step(s), not drawn" if lost[name] else ""
        legend.append((colour, f"{name}{fit}{gaps}"))
    label = f"{quantity.capitalize()} over logged steps{', log scale' if log_scale else ''}: " + "; ".join(
        t for _, t in legend
    )
    return Markup(svg_chart(frame.width, frame.height, label, body) + _legend_list(legend))


def _trend_band(frame: Frame, x: np.ndarray, y: np.ndarray, trend: TimeTrend, colour: str) -> str:
    xk = x / 1000.0
    cx, cy = float(np.median(xk)), float(np.median(y))
    ends = [float(xk[0]), float(xk[-1])]
    upper = [cy + max(trend.ci_low * (e - cx), trend.ci_high * (e - cx)) for e in ends]
    lower = [cy + min(trend.ci_low * (e - cx), trend.ci_high * (e - cx)) for e in ends]
    pts = [
        (ends[0], upper[0]),
        (cx, cy),
        (ends[1], upper[1]),
        (ends[1], lower[1]),
        (cx, cy),
        (ends[0], lower[0]),
    ]
    path = " ".join(f"{frame.x(px * 1000):.1f},{frame.y(py):.1f}" for px, py in pts)
    return f'<polygon class="band" points="{path}" fill="{colour}"/>'


def _legend_list(items: list[tuple[str, str]]) -> Markup:
    rows = "".join(
        f'<li><span class="swatch" style="background:{c}"></span>{escape(t)}</li>' for c, t in items
    )
    return Markup(f'<ul class="legend">{rows}</ul>')


def depth_profile(
    tags: list[str],
    depth_layers: np.ndarray,
    steps: np.ndarray,
    log10_rms: np.ndarray,
    quantity: str = "gradient",
) -> Markup:
    """log10 RMS against depth at the first, middle and last logged step."""
    if len(steps) == 0 or len(depth_layers) == 0:
        return no_data(f"Depth profile: no {quantity} data")
    # The first, middle and last steps that have a finite value to draw.
    drawable = np.flatnonzero(np.isfinite(log10_rms[depth_layers]).any(axis=0))
    if len(drawable) == 0:
        return no_data(f"Depth profile: no finite {quantity} value to draw (NaN/Inf or empty at every step)")
    columns = sorted({int(drawable[0]), int(drawable[len(drawable) // 2]), int(drawable[-1])})
    data = log10_rms[np.ix_(depth_layers, columns)]
    frame = Frame(720, 280, (0, max(1, len(depth_layers) - 1)), finite_range(data, 0.2))
    body = draw_axes(frame, "depth index (0 = input side)", f"{quantity} RMS (log scale)", y_decades=True)
    legend = []
    for k, col in enumerate(columns):
        colour = SERIES_COLOURS[k]
        values = data[:, k]
        ok = np.isfinite(values)
        pts = polyline(frame.x(np.flatnonzero(ok).astype(float)), frame.y(values[ok]))
        body.append(f'<polyline class="series" points="{pts}" stroke="{colour}"/>')
        body.extend(
            f'<circle cx="{frame.x(d):.1f}" cy="{frame.y(v):.1f}" r="3" fill="{colour}">'
            f"<title>{escape(tags[depth_layers[d]])}: RMS 1e{v:.2f}</title></circle>"
            for d, v in zip(np.flatnonzero(ok), values[ok])
        )
        legend.append((colour, f"step {int(steps[col])}"))
    label = f"Depth profile: {quantity} RMS (log scale) against depth at steps " + ", ".join(
        t for _, t in legend
    )
    return Markup(svg_chart(frame.width, frame.height, label, body) + _legend_list(legend))


def sparkline(values: np.ndarray, label: str) -> Markup:
    """A tiny depth profile for the index: log10 RMS by depth at the last step."""
    ok = np.isfinite(values)
    if ok.sum() < 2:
        return svg_chart(
            80, 20, label + ": no data", ['<line class="grid" x1="2" y1="10" x2="78" y2="10"/>'], "spark"
        )
    lo, hi = finite_range(values)
    xs = np.linspace(2, 78, len(values))
    pts = polyline(xs[ok], 18 - (values[ok] - lo) / ((hi - lo) or 1) * 16)
    return svg_chart(80, 20, label, [f'<polyline class="series" points="{pts}"/>'], "spark")
