"""Match two point lists related by an unknown similarity transform (triangle invariants).

The method is the invariant-triangle one (Groth 1986; Valdes et al. 1995; astroalign):
each star and its nearest neighbours form triangles whose side ratios do not change under
translation, rotation and scale. Before it, two cheap hypotheses are tried on every star:
the lists already aligned (identity) and pure shifts voted by the offsets of all pairs; the
triangle search runs when neither gathers a good share of the stars. Triangles of the two lists with close invariants propose a
similarity transform; the proposal that brings the most stars within ``tolerance`` pixels
wins (RANSAC-like) and is refined by least squares on all its inliers. It is robust to offsets
of any size, rotations of any angle and moderate scale errors, and does not need the two
lists to hold the same stars.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.spatial import cKDTree
from svomflow.errors import InputDataError

__all__ = ["SimilarityTransform", "TriangleMatch", "match_points", "nearest_pairs"]


@dataclass(frozen=True)
class SimilarityTransform:
    """``z' = a z + b`` on complex coordinates ``z = x + i y`` (scale, rotation, shift)."""

    a: complex
    b: complex

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the transformed coordinates."""
        z = self.a * (np.asarray(x) + 1j * np.asarray(y)) + self.b
        return z.real, z.imag

    @property
    def scale(self) -> float:
        """Scale factor."""
        return float(abs(self.a))

    @property
    def rotation_deg(self) -> float:
        """Rotation angle (degrees, counter-clockwise in pixel axes)."""
        return float(np.degrees(np.angle(self.a)))

    @property
    def shift(self) -> tuple[float, float]:
        """Translation (pixel)."""
        return float(self.b.real), float(self.b.imag)

    @classmethod
    def fit(cls, src: np.ndarray, dst: np.ndarray) -> SimilarityTransform:
        """Least-squares similarity mapping ``src`` (N, 2) onto ``dst`` (N, 2)."""
        zs = src[:, 0] + 1j * src[:, 1]
        zd = dst[:, 0] + 1j * dst[:, 1]
        ms, md = zs.mean(), zd.mean()
        ds = zs - ms
        den = np.sum(np.abs(ds) ** 2)
        if den == 0:
            raise InputDataError("degenerate point set: all points coincide")
        a = np.sum(np.conj(ds) * (zd - md)) / den
        return cls(complex(a), complex(md - a * ms))


@dataclass(frozen=True)
class TriangleMatch:
    """Result of :func:`match_points`: index pairs and the transform from list 1 to list 2."""

    idx1: np.ndarray
    idx2: np.ndarray
    transform: SimilarityTransform
    rms_pix: float


def _triangles(xy: np.ndarray, n_neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (invariants (M, 2), ordered vertex indices (M, 3)) of local triangles."""
    tree = cKDTree(xy)
    k = min(n_neighbours + 1, len(xy))
    _, nn = tree.query(xy, k)
    seen: set[tuple[int, int, int]] = set()
    inv, verts = [], []
    for row in np.atleast_2d(nn):
        for tri in combinations(sorted(int(v) for v in row), 3):
            if tri in seen:
                continue
            seen.add(tri)
            p = xy[list(tri)]
            # Side opposite each vertex: vertex order by opposite side length makes the
            # correspondence between matched triangles unambiguous.
            sides = np.array(
                [
                    np.hypot(*(p[1] - p[2])),
                    np.hypot(*(p[0] - p[2])),
                    np.hypot(*(p[0] - p[1])),
                ]
            )
            order = np.argsort(sides)
            s = sides[order]
            if s[0] <= 0:
                continue
            inv.append((s[2] / s[1], s[1] / s[0]))
            verts.append(np.array(tri)[order])
    if not inv:
        return np.zeros((0, 2)), np.zeros((0, 3), dtype=int)
    return np.array(inv), np.array(verts)


def nearest_pairs(
    xy1: np.ndarray, xy2: np.ndarray, tolerance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return one-to-one nearest pairs (i1, i2, distance) closer than ``tolerance``."""
    if len(xy1) == 0 or len(xy2) == 0:
        e = np.zeros(0, dtype=int)
        return e, e, np.zeros(0)
    tree = cKDTree(xy2)
    d, j = tree.query(xy1, distance_upper_bound=tolerance)
    ok = np.isfinite(d)
    i1 = np.flatnonzero(ok)
    i2 = j[ok]
    d = d[ok]
    # Keep the closest when several points of list 1 claim the same point of list 2.
    order = np.argsort(d)
    _, first = np.unique(i2[order], return_index=True)
    keep = order[first]
    return i1[keep], i2[keep], d[keep]


# A transform that matches this fraction of the shorter list needs no further search.
_CONFIDENT_FRACTION = 0.3
# The triangle search widens to at most this many stars of each list.
_MAX_TRIANGLE_STARS = 320


def _shift_proposals(
    xy1: np.ndarray, xy2: np.ndarray, tolerance: float, *, n_use: int = 300, n_peaks: int = 3
) -> list[SimilarityTransform]:
    """Return pure translations voted by the offsets between the two lists' points.

    Every pair of the first ``n_use`` points of each list votes for its offset in a 2-D
    histogram of bin ``tolerance``; the most voted bins (and their mean offsets) are the
    proposals. A true shift gathers one vote per common star, chance offsets spread out.
    """
    a, b = xy1[:n_use], xy2[:n_use]
    d = (b[None, :, :] - a[:, None, :]).reshape(-1, 2)
    lo, hi = d.min(axis=0), d.max(axis=0)
    nbin = np.maximum(np.ceil((hi - lo) / tolerance).astype(int), 1)
    if int(nbin[0]) * int(nbin[1]) > 4_000_000:  # a huge field: coarser bins
        nbin = np.minimum(nbin, 2000)
    hist, ex, ey = np.histogram2d(d[:, 0], d[:, 1], bins=(int(nbin[0]), int(nbin[1])))
    out = []
    for flat in np.argsort(hist, axis=None)[::-1][:n_peaks]:
        i, j = np.unravel_index(flat, hist.shape)
        if hist[i, j] < 3:
            break
        sel = (
            (d[:, 0] >= ex[i])
            & (d[:, 0] <= ex[i + 1])
            & (d[:, 1] >= ey[j])
            & (d[:, 1] <= ey[j + 1])
        )
        dx, dy = np.median(d[sel], axis=0)
        out.append(SimilarityTransform(1.0 + 0j, complex(dx, dy)))
    return out


def _triangle_search(
    b1: np.ndarray,
    b2: np.ndarray,
    inliers: Callable[[SimilarityTransform], int],
    *,
    n_neighbours: int,
    invariant_radius: float,
    max_trials: int,
    scale_range: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[SimilarityTransform | None, int]:
    """Return the triangle-proposed transform with the most inliers (None, 0 when none)."""
    inv1, v1 = _triangles(b1, n_neighbours)
    inv2, v2 = _triangles(b2, n_neighbours)
    if len(inv1) == 0 or len(inv2) == 0:
        return None, 0
    cands = cKDTree(inv2).query_ball_point(inv1, invariant_radius)
    pairs = [(i, j) for i, js in enumerate(cands) for j in js]
    if len(pairs) > max_trials:
        pick = rng.choice(len(pairs), max_trials, replace=False)
        pairs = [pairs[k] for k in pick]
    best_n, best_t = 0, None
    for i, j in pairs:
        t = SimilarityTransform.fit(b1[v1[i]], b2[v2[j]])
        if not scale_range[0] <= t.scale <= scale_range[1]:
            continue
        n = inliers(t)
        if n > best_n:
            best_n, best_t = n, t
    return best_t, best_n


def match_points(
    xy1: np.ndarray,
    xy2: np.ndarray,
    *,
    tolerance: float = 3.0,
    n_brightest: int = 40,
    n_neighbours: int = 5,
    invariant_radius: float = 0.02,
    min_matches: int = 5,
    max_trials: int = 3000,
    scale_range: tuple[float, float] = (0.8, 1.25),
    rng: np.random.Generator | None = None,
) -> TriangleMatch:
    """Find the similarity transform mapping points ``xy1`` onto ``xy2`` and the matched pairs.

    Parameters
    ----------
    xy1, xy2
        (N, 2) pixel positions, each sorted brightest first (only the first ``n_brightest``
        are used to build triangles; all are used to count and refine matches).
    tolerance
        Match radius (pixel) after the transform.
    invariant_radius
        Distance in invariant space under which two triangles are candidates.
    min_matches
        Fewer matched stars than this is a failure.
    scale_range
        Allowed scale of the transform (catalog projection and image share a pixel scale
        to within the header's accuracy).

    Raises
    ------
    InputDataError
        When no transform gathers ``min_matches`` stars.
    """
    xy1 = np.asarray(xy1, float).reshape(-1, 2)
    xy2 = np.asarray(xy2, float).reshape(-1, 2)
    if len(xy1) < 3 or len(xy2) < 3:
        raise InputDataError(
            f"too few points to match ({len(xy1)} and {len(xy2)}; at least 3 each)"
        )
    tree2 = cKDTree(xy2)

    def inliers(t: SimilarityTransform) -> int:
        x, y = t.apply(xy1[:, 0], xy1[:, 1])
        d, _ = tree2.query(np.column_stack([x, y]), distance_upper_bound=tolerance)
        return int(np.isfinite(d).sum())

    # Cheap hypotheses first: the lists already aligned (a good WCS guess, an image taken
    # at the reference's pointing) or shifted; they hold for every star, not only the
    # brightest, so they survive fields where the brightest stars differ between lists.
    best_t: SimilarityTransform | None = None
    best_n = 0
    for t in (SimilarityTransform(1.0 + 0j, 0j), *_shift_proposals(xy1, xy2, tolerance)):
        n = inliers(t)
        if n > best_n:
            best_n, best_t = n, t
    # Triangles of the brightest stars, then of more stars when the brightest of the two
    # lists differ too much (other depths, bands or saturation) to share triangles.
    n_use = n_brightest
    while best_n < max(min_matches, _CONFIDENT_FRACTION * min(len(xy1), len(xy2))):
        found, n = _triangle_search(
            xy1[:n_use],
            xy2[:n_use],
            inliers,
            n_neighbours=n_neighbours,
            invariant_radius=invariant_radius,
            max_trials=max_trials,
            scale_range=scale_range,
            rng=rng or np.random.default_rng(0),
        )
        if found is not None and n > best_n:
            best_n, best_t = n, found
        if n_use >= min(max(len(xy1), len(xy2)), _MAX_TRIANGLE_STARS):
            break
        n_use *= 2
    if best_t is None or best_n < min_matches:
        raise InputDataError(
            f"point lists do not match: best transform gathers {best_n} stars "
            f"(at least {min_matches} needed)"
        )
    # Refine on all inliers, twice (the first refit can bring a few more in).
    t = best_t
    for _ in range(3):
        x, y = t.apply(xy1[:, 0], xy1[:, 1])
        i1, i2, _ = nearest_pairs(np.column_stack([x, y]), xy2, tolerance)
        if len(i1) < min_matches:
            break
        t = SimilarityTransform.fit(xy1[i1], xy2[i2])
    x, y = t.apply(xy1[:, 0], xy1[:, 1])
    i1, i2, d = nearest_pairs(np.column_stack([x, y]), xy2, tolerance)
    if len(i1) < min_matches:
        raise InputDataError(f"only {len(i1)} stars matched after refinement")
    return TriangleMatch(i1, i2, t, float(np.sqrt(np.mean(d**2))))
