"""The sky map drawn on the server: every source's projected position kept in memory per
catalog version, rasterised per class with numpy into one RGBA image of the visible window
(as datashader does), and the nearest source to a point (hover and click) from a k-d tree."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from web import plots, projection

#: Largest raster the browser may ask for (pixels a side).
MAX_SIDE = 4096
#: Below this many sources in view each one is drawn 3x3 pixels, so sparse maps stay visible.
SPREAD_BELOW = 100_000
#: Images kept per index (the whole-sky one every page load asks for stays among them).
IMAGES_KEPT = 8


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)


COLOURS = np.array([_rgb(plots.AGG_COLORS[c]) for c in plots.AGG_LABELS])


@dataclass
class SkyIndex:
    """Projected sources of one catalog version and projection, with a tree per class."""

    x: np.ndarray
    y: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    source_id: np.ndarray
    code: np.ndarray  # index into plots.AGG_LABELS
    projection: str
    _trees: dict[int, tuple[cKDTree, np.ndarray]] = field(default_factory=dict)
    #: Encoded images already drawn (window, size, hidden classes) -> bytes, a few kept.
    images: dict[tuple, bytes] = field(default_factory=dict)

    @classmethod
    def build(cls, points: dict[str, np.ndarray], proj: str) -> SkyIndex:
        lon, lat = projection.galactic(points["ra"], points["dec"])
        x, y = projection.project(lon, lat, proj)
        labels = points["cls"]
        code = np.full(len(labels), len(plots.AGG_LABELS) - 1, dtype=np.int8)
        for i, c in enumerate(plots.AGG_LABELS):
            code[labels == c] = i
        return cls(np.asarray(x, float), np.asarray(y, float),
                   np.asarray(points["ra"], float), np.asarray(points["dec"], float),
                   np.asarray(points["source_id"], np.int64), code, proj)

    def counts(self) -> np.ndarray:
        return np.bincount(self.code, minlength=len(plots.AGG_LABELS))

    def raster(self, x0: float, x1: float, y0: float, y1: float, width: int, height: int,
               shown: np.ndarray) -> tuple[np.ndarray, int]:
        """RGBA (uint32, little-endian R,G,B,A bytes) image ``height`` x ``width`` of the
        window, row 0 at ``y0``; colour is the count-weighted mean of the classes' colours
        in a pixel, opacity grows with the log of the count. Also the sources in view."""
        keep = shown[self.code]
        px = np.floor((self.x - x0) * (width / (x1 - x0))).astype(np.int64)
        py = np.floor((self.y - y0) * (height / (y1 - y0))).astype(np.int64)
        keep &= (px >= 0) & (px < width) & (py >= 0) & (py < height)
        n_view = int(keep.sum())
        npix = width * height
        pix = py[keep] * width + px[keep]
        colours = COLOURS[self.code[keep]]
        # Per pixel: the count and the sums of its sources' R, G, B (one bincount each).
        planes = np.stack([np.bincount(pix, minlength=npix).astype(float)]
                          + [np.bincount(pix, weights=colours[:, c], minlength=npix)
                             for c in range(3)]).reshape(4, height, width)
        if 0 < n_view < SPREAD_BELOW:
            padded = np.pad(planes, ((0, 0), (1, 1), (1, 1)))
            planes = sum(padded[:, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1))
        total = planes[0].ravel()
        filled = np.flatnonzero(total)
        rgba = np.zeros((npix, 4), dtype=np.uint8)
        if len(filled):
            t = total[filled]
            for c in range(3):
                rgba[filled, c] = np.clip(np.rint(planes[1 + c].ravel()[filled] / t), 0, 255)
            rgba[filled, 3] = np.rint(255 * (0.45 + 0.55 * np.log1p(t) / np.log1p(t.max())))
        return rgba.view("<u4").reshape(height, width), n_view

    def nearest(self, x: float, y: float, radius: float, shown: np.ndarray) -> int | None:
        """Index of the shown source nearest (x, y) within ``radius``, or None."""
        best: tuple[float, int] | None = None
        for code in np.flatnonzero(shown):
            tree, rows = self._tree(int(code))
            if tree is None:
                continue
            d, i = tree.query([x, y], distance_upper_bound=radius)
            if np.isfinite(d) and (best is None or d < best[0]):
                best = (float(d), int(rows[i]))
        return None if best is None else best[1]

    def _tree(self, code: int):
        if code not in self._trees:
            rows = np.flatnonzero(self.code == code)
            tree = cKDTree(np.column_stack([self.x[rows], self.y[rows]])) if len(rows) else None
            self._trees[code] = (tree, rows)
        return self._trees[code]
