"""Labels that never overprint: one per point of a scatter, placed by a nearest-free search.

Each label tries offsets around its point, nearest first (``_candidates``), and takes the
one with the least cost: a huge cost per pixel over another label, a marker, the legend
or outside the axes; a small one per pixel over an error bar; plus its distance. Boxes
are measured once per label and moved arithmetically, so the search is cheap. Used by
``orchestrator.figures`` on a laid-out figure; no pyplot.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.text import Annotation

__all__ = ["place_labels"]

_LABEL_PAD_PX = 2.0

_RADII_PT = (3.0, 7.0, 12.0, 18.0, 26.0, 36.0, 48.0, 64.0)
_ANGLES = (45, 135, -45, -135, 0, 180, 90, -90, 22, 158, -22, -158, 68, 112, -68, -112)
_HARD = 1e6  # per px² over another label, a marker, the legend or outside the axes
_SOFT = 0.05  # per px² over an error bar: readable, but worth a few points of distance


@functools.cache
def _candidates() -> tuple[tuple[float, float, str, str], ...]:
    """(dx, dy) in points, nearest first, with the alignment that keeps the text that side."""
    out = []
    for radius in _RADII_PT:
        for angle in _ANGLES:
            dx, dy = radius * math.cos(math.radians(angle)), radius * math.sin(math.radians(angle))
            ha = "left" if dx > 0.5 else "right" if dx < -0.5 else "center"
            va = "bottom" if dy > 0.5 else "top" if dy < -0.5 else "center"
            out.append((dx, dy, ha, va))
    return tuple(out)


def _boxes_at(anchor: np.ndarray, size: tuple[float, float], points_px: float
              ) -> np.ndarray:
    """[candidates, 4] text boxes (x0, y0, x1, y1 in pixels, padded) around ``anchor``."""
    w, h = size
    rows = []
    for dx, dy, ha, va in _candidates():
        x0 = anchor[0] + dx * points_px - {"left": 0.0, "center": w / 2, "right": w}[ha]
        y0 = anchor[1] + dy * points_px - {"bottom": 0.0, "center": h / 2, "top": h}[va]
        rows.append((x0, y0, x0 + w, y0 + h))
    return np.array(rows) + np.array([-1, -1, 1, 1]) * _LABEL_PAD_PX


def _overlaps(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
    """[boxes] total overlap area (px²) of each box with all of ``others`` [k, 4]."""
    if len(others) == 0:
        return np.zeros(len(boxes))
    w = (np.minimum(boxes[:, None, 2], others[None, :, 2])
         - np.maximum(boxes[:, None, 0], others[None, :, 0]))
    h = (np.minimum(boxes[:, None, 3], others[None, :, 3])
         - np.maximum(boxes[:, None, 1], others[None, :, 1]))
    return (np.clip(w, 0, None) * np.clip(h, 0, None)).sum(axis=1)


def place_labels(ax: Axes, names: Sequence[str], x: np.ndarray, y: np.ndarray,
                 yerr: np.ndarray) -> list[Annotation]:
    """One label per point, at the nearest offset where it overprints nothing.

    Never over another label, a marker or the legend, nor outside the axes, where any
    offset allows; over an error bar only where that saves real distance. Labels placed
    away from their point get a thin leader line. Call on a laid-out figure
    (``_freeze_layout``): the search measures in pixels.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    points_px = fig.dpi / 72.0
    to_px = ax.transData.transform
    frame = np.asarray(ax.get_window_extent(renderer).extents)
    anchors = to_px(np.column_stack([x, y]))
    half = 6.5 * points_px  # half the largest marker (the 11 pt Pareto square), and a bit
    hard = [np.column_stack([anchors - half, anchors + half])]
    hard += [np.array([legend.get_window_extent(renderer).extents]) for legend in fig.legends]
    bars = np.array([(*to_px((xi, yi - down)), *to_px((xi, yi + up)))
                     for xi, yi, down, up in zip(x, y, *yerr, strict=True)]).reshape(-1, 4)
    bars += np.array([-3, 0, 3, 0]) * points_px
    radius = np.array([math.hypot(dx, dy) for dx, dy, _, _ in _candidates()])
    placed: list[Annotation] = []
    for index in np.argsort(-y, kind="stable"):  # top first: the crowded top settles early
        label = ax.annotate(names[index], (x[index], y[index]), xytext=(0, 0),
                            textcoords="offset points", ha="left", va="bottom", fontsize=8,
                            zorder=4)
        extent = label.get_window_extent(renderer)
        boxes = _boxes_at(anchors[index], (extent.width, extent.height), points_px)
        blocked = _overlaps(boxes, np.concatenate(hard)) + _outside(boxes, frame)
        cost = _HARD * blocked + _SOFT * _overlaps(boxes, bars) + radius
        dx, dy, ha, va = _candidates()[int(np.argmin(cost))]
        label.remove()
        leader = ({"arrowstyle": "-", "color": "0.55", "lw": 0.6, "shrinkA": 1, "shrinkB": 3}
                  if math.hypot(dx, dy) > 10 else None)  # far from its point: a thin line
        label = ax.annotate(names[index], (x[index], y[index]), xytext=(dx, dy),
                            textcoords="offset points", ha=ha, va=va, fontsize=8, zorder=4,
                            arrowprops=leader)
        hard.append(boxes[int(np.argmin(cost))][None, :])
        placed.append(label)
    return placed


def _outside(boxes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """[boxes] area (px²) of each box outside ``frame`` (x0, y0, x1, y1)."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return area - _overlaps(boxes, frame[None, :])
