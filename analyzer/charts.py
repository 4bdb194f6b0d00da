"""Charts as inline SVG: heatmap, magnitude over steps with fitted trends, depth profile, sparkline.

Charts only draw the numbers they are given; every text from a log is escaped here, and every chart
carries a text alternative (``role="img"`` with ``aria-label`` and ``<title>``).
"""

from __future__ import annotations

import base64
import json
import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from markupsafe import Markup, escape

from .trends import TimeTrend, log10_positive

# Viridis (perceptually uniform, colour-blind safe), 9 stops from low to high.
_VIRIDIS = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
]
# Okabe–Ito, colour-blind safe, for distinct series.
SERIES_COLOURS = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]


def viridis(fraction: float) -> str:
    f = min(max(fraction, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(f), len(_VIRIDIS) - 2)
    t = f - i
    rgb = [round(a + (b - a) * t) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1])]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


_VIRIDIS_RGB = np.array(
    [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in (viridis(i / 255) for i in range(256))], np.uint8
)


@dataclass
class _Frame:
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


def _svg(width: int, height: int, label: str, body: list[str], css_class: str = "chart") -> Markup:
    text = escape(label)
    return Markup(
        f'<svg class="{css_class}" viewBox="0 0 {width} {height}" role="img" aria-label="{text}" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMinYMin meet">'
        f"<title>{text}</title>{''.join(body)}</svg>"
    )


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
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


def _axes(frame: _Frame, x_label: str, y_label: str, y_decades: bool) -> list[str]:
    out = [
        f'<line class="axis" x1="{frame.left}" y1="{frame.height - frame.bottom}" '
        f'x2="{frame.width - frame.right}" y2="{frame.height - frame.bottom}"/>',
        f'<line class="axis" x1="{frame.left}" y1="{frame.top}" x2="{frame.left}" '
        f'y2="{frame.height - frame.bottom}"/>',
    ]
    for t in _ticks(*frame.x_range):
        x = frame.x(t)
        out.append(
            f'<text class="tick" x="{x:.1f}" y="{frame.height - frame.bottom + 14}" '
            f'text-anchor="middle">{_number(t)}</text>'
        )
    for t in _ticks(*frame.y_range, count=4):
        y = frame.y(t)
        label = f"1e{t:g}" if y_decades else _number(t)
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


def _points(xs: np.ndarray, ys: np.ndarray) -> str:
    """SVG polyline points; a long series drawn at 0.1 px resolution."""
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(np.asarray(xs).tolist(), np.asarray(ys).tolist()))


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def _finite_range(values: np.ndarray, pad: float = 0.0) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    return lo - pad, hi + pad


def no_data(label: str, width: int = 640, height: int = 80) -> Markup:
    return _svg(
        width,
        height,
        label,
        [f'<text class="label" x="{width / 2}" y="{height / 2}" text-anchor="middle">{escape(label)}</text>'],
    )


def heatmap(
    tags: list[str],
    steps: np.ndarray,
    log10_rms: np.ndarray,
    nonfinite: np.ndarray,
    axis: str = "training step",
) -> Markup:
    """Layers (rows, input side at top) × logged steps (columns); colour = log10 RMS, NaN/Inf marked."""
    rows, cols = log10_rms.shape
    if rows == 0 or cols == 0:
        return no_data("Heatmap: no gradient data")
    if not np.isfinite(log10_rms).any():
        return no_data("Heatmap: no finite gradient value to draw (every logged value is NaN/Inf or empty)")
    width, cell_h = 720, max(6, min(22, 360 // rows))
    frame = _Frame(
        width, rows * cell_h + 12 + 44 + 40, (float(steps[0]), float(steps[-1])), (0, rows), left=64
    )
    lo, hi = _finite_range(log10_rms)
    plot_w = width - frame.left - frame.right
    cell_w = plot_w / cols
    # The cells are one raster image (a PNG inside the SVG): a run of 30 tags x 3,000 steps stays a
    # few kB and draws at once. Each row keeps a hover title with its tag.
    body = [
        f'<image x="{frame.left}" y="{frame.top}" width="{plot_w}" height="{rows * cell_h}" '
        f'preserveAspectRatio="none" style="image-rendering:pixelated" '
        f'href="data:image/png;base64,{_heatmap_png(log10_rms, nonfinite, lo, hi)}"/>'
    ]
    for r in range(rows):
        body.append(
            f'<rect class="row" x="{frame.left}" y="{frame.top + r * cell_h}" width="{plot_w}" '
            f'height="{cell_h}" fill="transparent"><title>{escape(tags[r])}</title></rect>'
        )
    bottom = frame.top + rows * cell_h
    for t in _ticks(float(steps[0]), float(steps[-1])):
        x = frame.left + (np.searchsorted(steps, t) + 0.5) * cell_w
        body.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{_number(t)}</text>'
        )
    body.append(
        f'<text class="label" x="{frame.left + plot_w / 2:.1f}" y="{bottom + 30}" text-anchor="middle">'
        f"{axis} (columns are logged {axis}s)</text>"
    )
    body.append(
        f'<text class="label" transform="rotate(-90)" x="{-(frame.top + bottom) / 2:.1f}" y="14" '
        'text-anchor="middle">depth (input → output)</text>'
    )
    body.append(f'<text class="tick" x="{frame.left - 6}" y="{frame.top + 9}" text-anchor="end">first</text>')
    body.append(f'<text class="tick" x="{frame.left - 6}" y="{bottom}" text-anchor="end">last</text>')
    body.extend(_legend(frame.left, bottom + 40, lo, hi))
    label = (
        f"Heatmap of log10 gradient RMS for {rows} tags over {cols} logged steps, "
        f"from 1e{lo:.1f} to 1e{hi:.1f}; red cells are NaN/Inf, grey are all-zero"
    )
    svg = _svg(width, bottom + 80, label, body, "chart heatmap")
    return Markup(svg + _hover_data(tags, steps, log10_rms, frame, plot_w, rows * cell_h))


# Cells whose values a page carries for hover read-outs; a larger heatmap shows its rows' tags only.
_HOVER_CELLS = 40_000
_HOVER_NAN = -(2**31)


def _hover_data(tags, steps, log10_rms, frame, plot_w: float, plot_h: float) -> Markup:
    """The heatmap's numbers for the run page's hover read-out, as JSON in a data block (escaped for
    a script element: tag names come from logs). The values travel as little-endian int32 thousandths
    of a decade in base64 (NaN as the smallest int32): a list of floats costs ten times as long to
    write."""
    values = None
    if log10_rms.size <= _HOVER_CELLS:
        milli = np.where(np.isfinite(log10_rms), np.round(np.nan_to_num(log10_rms) * 1000), _HOVER_NAN)
        values = base64.b64encode(milli.astype("<i4").tobytes()).decode("ascii")
    data = {
        "tags": list(tags),
        "steps": [int(s) for s in steps],
        "log10_rms_milli": values,
        "box": [frame.left, frame.top, plot_w, plot_h, frame.width],
    }
    text = json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(f'<script type="application/json" class="heatmap-data">{text}</script>')


_NONFINITE_RGB, _ZERO_RGB = (214, 39, 40), (136, 136, 136)


def _heatmap_png(log10_rms: np.ndarray, nonfinite: np.ndarray, lo: float, hi: float) -> str:
    """One pixel per cell, RGB, as base64 PNG (zlib and struct: no imaging library needed)."""
    with np.errstate(invalid="ignore"):
        level = np.clip(np.nan_to_num((log10_rms - lo) / ((hi - lo) or 1), nan=0.0) * 255, 0, 255)
    pixels = _VIRIDIS_RGB[level.astype(int)]
    pixels[~np.isfinite(log10_rms)] = _ZERO_RGB
    pixels[nonfinite] = _NONFINITE_RGB
    height, width = log10_rms.shape
    raw = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, -1)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode("ascii")


def _power_of_ten(log10_value: float) -> str:
    """A colour-bar end as people read it: 1e-8, or 3e-9 between powers of ten."""
    value = 10**log10_value
    return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def _legend(x0: float, y0: float, lo: float, hi: float) -> list[str]:
    width, out = 240, []
    for i in range(24):
        out.append(
            f'<rect x="{x0 + i * width / 24:.1f}" y="{y0}" width="{width / 24 + 0.5:.1f}" height="10" '
            f'fill="{viridis(i / 23)}"/>'
        )
    out.append(f'<text class="tick" x="{x0}" y="{y0 + 24}">{_power_of_ten(lo)}</text>')
    out.append(
        f'<text class="tick" x="{x0 + width}" y="{y0 + 24}" text-anchor="end">{_power_of_ten(hi)}</text>'
    )
    out.append(
        f'<text class="tick" x="{x0 + width + 10}" y="{y0 + 9}">gradient RMS (log scale, decades)</text>'
    )
    out.append(
        f'<rect x="{x0 + width + 230}" y="{y0}" width="10" height="10" fill="#d62728"/>'
        f'<text class="tick" x="{x0 + width + 244}" y="{y0 + 9}">NaN/Inf</text>'
        f'<rect x="{x0 + width + 300}" y="{y0}" width="10" height="10" fill="#888888"/>'
        f'<text class="tick" x="{x0 + width + 314}" y="{y0 + 9}">all zero</text>'
    )
    return out


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
) -> Markup:
    """RMS of the chosen layers over steps (points and line) with each layer's Theil–Sen trend and
    its 95 % confidence band (slopes at the interval's ends, pivoting on the data's centre)."""
    if not shown or log10_rms.size == 0:
        return no_data("Magnitude over steps: no gradient data")
    if not np.isfinite(log10_rms[shown]).any():
        return no_data("Magnitude over steps: no finite gradient value to draw (NaN/Inf or empty)")
    frame = _Frame(720, 300, (float(steps[0]), float(steps[-1])), _finite_range(log10_rms[shown], 0.2))
    body = _axes(frame, unit.axis, "gradient RMS (log scale)", y_decades=True)
    legend = []
    for k, i in enumerate(shown):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        row = log10_rms[i]
        ok = np.isfinite(row)
        points = _points(frame.x(steps[ok].astype(float)), frame.y(row[ok]))
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
    label = "Gradient RMS over training steps, log scale, with fitted trends: " + "; ".join(
        t for _, t in legend
    )
    return Markup(_svg(frame.width, frame.height, label, body) + _legend_list(legend))


def loss_curves(
    series: list[tuple[str, np.ndarray, np.ndarray]],
    gate: TimeTrend | None,
    unit: RateUnit = PER_1K_STEPS,
    quantity: str = "loss",
    later_half: bool = True,
) -> Markup:
    """Each loss series (name, steps, values) over its own logged steps; the series the verdict read
    first, with its later-half Theil–Sen fit and 95 % band. Log scale where the losses span a decade
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
    frame = _Frame(720, 240, (float(all_steps.min()), float(all_steps.max())), _finite_range(all_values, pad))
    y_label = f"{quantity} (log scale)" if log_scale else quantity
    fitted = (lambda x: x[len(x) // 2 :]) if later_half else (lambda x: x)
    body = _axes(frame, "logged step of each series", y_label, y_decades=log_scale)
    legend = []
    for k, (name, steps, values) in enumerate(drawn):
        colour = SERIES_COLOURS[k % len(SERIES_COLOURS)]
        ok = np.isfinite(values)
        x = steps[ok].astype(float)
        if k == 0 and gate is not None and log_scale:  # the fit is of log10(loss): drawn on that scale
            body.append(_trend_band(frame, fitted(x), fitted(values[ok]), gate, colour))
        points = _points(frame.x(x), frame.y(values[ok]))
        body.append(f'<polyline class="series" points="{points}" stroke="{colour}"/>')
        fit = ""
        if k == 0 and gate is not None:
            fit = f" — {'later half ' if later_half else 'trend '}{unit.rate(gate)}"
        gaps = f" — NaN/Inf at {lost[name]} logged step(s), not drawn" if lost[name] else ""
        legend.append((colour, f"{name}{fit}{gaps}"))
    label = f"{quantity.capitalize()} over logged steps{', log scale' if log_scale else ''}: " + "; ".join(
        t for _, t in legend
    )
    return Markup(_svg(frame.width, frame.height, label, body) + _legend_list(legend))


def _trend_band(frame: _Frame, x: np.ndarray, y: np.ndarray, trend: TimeTrend, colour: str) -> str:
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
    tags: list[str], depth_layers: np.ndarray, steps: np.ndarray, log10_rms: np.ndarray
) -> Markup:
    """log10 RMS against depth at the first, middle and last logged step."""
    if len(steps) == 0 or len(depth_layers) == 0:
        return no_data("Depth profile: no gradient data")
    # The first, middle and last steps that have a finite value to draw.
    drawable = np.flatnonzero(np.isfinite(log10_rms[depth_layers]).any(axis=0))
    if len(drawable) == 0:
        return no_data("Depth profile: no finite gradient value to draw (NaN/Inf or empty at every step)")
    columns = sorted({int(drawable[0]), int(drawable[len(drawable) // 2]), int(drawable[-1])})
    data = log10_rms[np.ix_(depth_layers, columns)]
    frame = _Frame(720, 280, (0, max(1, len(depth_layers) - 1)), _finite_range(data, 0.2))
    body = _axes(frame, "depth index (0 = input side)", "gradient RMS (log scale)", y_decades=True)
    legend = []
    for k, col in enumerate(columns):
        colour = SERIES_COLOURS[k]
        values = data[:, k]
        ok = np.isfinite(values)
        pts = _points(frame.x(np.flatnonzero(ok).astype(float)), frame.y(values[ok]))
        body.append(f'<polyline class="series" points="{pts}" stroke="{colour}"/>')
        body.extend(
            f'<circle cx="{frame.x(d):.1f}" cy="{frame.y(v):.1f}" r="3" fill="{colour}">'
            f"<title>{escape(tags[depth_layers[d]])}: RMS 1e{v:.2f}</title></circle>"
            for d, v in zip(np.flatnonzero(ok), values[ok])
        )
        legend.append((colour, f"step {int(steps[col])}"))
    label = "Depth profile: gradient RMS (log scale) against depth at steps " + ", ".join(
        t for _, t in legend
    )
    return Markup(_svg(frame.width, frame.height, label, body) + _legend_list(legend))


def sparkline(values: np.ndarray, label: str) -> Markup:
    """A tiny depth profile for the index: log10 RMS by depth at the last step."""
    ok = np.isfinite(values)
    if ok.sum() < 2:
        return _svg(
            80, 20, label + ": no data", ['<line class="grid" x1="2" y1="10" x2="78" y2="10"/>'], "spark"
        )
    lo, hi = _finite_range(values)
    xs = np.linspace(2, 78, len(values))
    pts = _points(xs[ok], 18 - (values[ok] - lo) / ((hi - lo) or 1) * 16)
    return _svg(80, 20, label, [f'<polyline class="series" points="{pts}"/>'], "spark")
