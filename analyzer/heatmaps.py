"""The heatmap of gradient magnitude by layer and step: an inline PNG under an SVG frame, with its
legend and the numbers a pointer reads."""

from __future__ import annotations

import base64
import json
import struct
import zlib

import numpy as np
from markupsafe import Markup, escape

from .charts import Frame, finite_range, no_data, number, svg_chart, ticks

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


def viridis(fraction: float) -> str:
    f = min(max(fraction, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(f), len(_VIRIDIS) - 2)
    t = f - i
    rgb = [round(a + (b - a) * t) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1])]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


_VIRIDIS_RGB = np.array(
    [[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in (viridis(i / 255) for i in range(256))], np.uint8
)


def heatmap(
    tags: list[str],
    steps: np.ndarray,
    log10_rms: np.ndarray,
    nonfinite: np.ndarray,
    axis: str = "training step",
    quantity: str = "gradient",
) -> Markup:
    """Layers (rows, input side at top) × logged steps (columns); colour = log10 RMS, NaN/Inf marked."""
    rows, cols = log10_rms.shape
    if rows == 0 or cols == 0:
        return no_data(f"Heatmap: no {quantity} data")
    if not np.isfinite(log10_rms).any():
        return no_data(
            f"Heatmap: no finite {quantity} value to draw (every logged value is NaN/Inf or empty)"
        )
    width, cell_h = 720, max(6, min(22, 360 // rows))
    frame = Frame(
        width, rows * cell_h + 12 + 44 + 40, (float(steps[0]), float(steps[-1])), (0, rows), left=64
    )
    lo, hi = finite_range(log10_rms)
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
    for t in ticks(float(steps[0]), float(steps[-1])):
        x = frame.left + (np.searchsorted(steps, t) + 0.5) * cell_w
        body.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{number(t)}</text>'
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
    body.extend(_legend(frame.left, bottom + 40, lo, hi, quantity))
    label = (
        f"Heatmap of log10 {quantity} RMS for {rows} tags over {cols} logged steps, "
        f"from 1e{lo:.1f} to 1e{hi:.1f}; red cells are NaN/Inf, grey are all-zero"
    )
    svg = svg_chart(width, bottom + 80, label, body, "chart heatmap")
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


def _legend(x0: float, y0: float, lo: float, hi: float, quantity: str) -> list[str]:
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
        f'<text class="tick" x="{x0 + width + 10}" y="{y0 + 9}">{quantity} RMS (log scale, decades)</text>'
    )
    out.append(
        f'<rect x="{x0 + width + 230}" y="{y0}" width="10" height="10" fill="#d62728"/>'
        f'<text class="tick" x="{x0 + width + 244}" y="{y0 + 9}">NaN/Inf</text>'
        f'<rect x="{x0 + width + 300}" y="{y0}" width="10" height="10" fill="#888888"/>'
        f'<text class="tick" x="{x0 + width + 314}" y="{y0 + 9}">all zero</text>'
    )
    return out
