"""Mask weighting: per-pixel weights for a source direction, event weights and weighted spectra.

A coded-mask detector pixel ``p`` records ``n_p = S f_p + B_p`` counts, with ``f_p`` the
illuminated fraction of the pixel seen from the source (:func:`~svomflow.instruments.coded_mask.shadow`),
``S`` the counts a fully illuminated pixel would record and ``B_p`` the background. Giving every
event the weight ``w_p`` of its pixel and summing estimates ``S sum(w f)`` with the background
cancelled, as long as ``sum(w_p B_p) = 0``; no off-source time interval is needed, so the
estimate holds when the background varies in time or when the burst covers all the data
(Swift/BAT's ``batmaskwtevt`` + ``batbinevt``, INTEGRAL/IBIS).

Convention (exact):

* The background is modelled by templates over the usable pixels: a flat term (instrumental
  background, and any background uncorrelated with the mask) and the cosmic X-ray background
  seen through the mask (:func:`~svomflow.instruments.coded_mask.diffuse_illumination`), the
  same templates the sky images remove (:func:`~svomflow.tasks.coded_mask.imaging.background_templates`).
  The CXB template matters here: it is most of the ECLAIRs background and its map is not
  flat (edge pixels see less sky), so flat-only balancing would leave a CXB residual that
  grows with the source's off-axis angle, where the shielded part of the plane correlates
  with the CXB map.
* ``f_perp`` is the illumination over the usable pixels minus its least-squares projection on
  the templates, and ``w = f_perp * sum(f u) / sum(f_perp f)`` on usable pixels, 0 elsewhere.
  Hence ``sum(w u) = 0`` (balanced: a flat background cancels, as BAT's balanced ``2f - 1``
  weights), ``sum(w t u) = 0`` for the CXB template, and ``sum(w f u) = sum(f u)``.
  With the flat template only, ``w`` is proportional to ``f - <f>``. These weights are the
  minimum-variance linear estimate of the source amplitude when the per-pixel variance is
  uniform (a background-dominated burst); the least-squares projection is the balanced
  correlation of the imaging at one position.
* Normalisation: ``sum(w f u) = sum(f u)`` makes the weighted counts the number of source
  counts the usable plane records (the net counts a whole-plane spectrum would hold), so the
  matching effective area ``QE A_pixel cos(theta) sum(w f u)`` equals the whole-plane area of
  :func:`~svomflow.tasks.coded_mask.response.eclairs_response` and the counts-to-flux factors
  of both methods are the same quantity. BAT instead normalises to "counts per fully
  illuminated detector for an equivalent on-axis source" (``sum(w f) = 1`` and ``cos(theta)``
  divided out, with a response per fully illuminated detector); the two differ by a constant
  that the response carries, so fitted fluxes do not depend on the choice.
* Variance: the weighted counts of a channel have variance ``sum over events of w^2``; the
  background events contribute ``w^2`` each like the source events, so this is the variance
  of the background-subtracted estimate without any background model.

Other point sources in the field are not cancelled unless their shadows are passed as
templates: for a random pair of directions in the field ``sum(w f_other) / sum(f_other)`` has
an rms of about 13 % (up to ~40 %), i.e. a bright source leaks that share of its recorded
counts into the weighted spectrum.

The weights assume the source position is right: a position error moves the true shadow off
the assumed one and lowers ``sum(w f_true)``, i.e. the flux (by a few per cent for an error
of a tenth of a mask element).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from svomflow.errors import InputDataError
from svomflow.instruments.coded_mask import (
    MaskGeometry,
    cos_theta,
    diffuse_illumination,
    mask_pattern,
    shadow,
)

__all__ = [
    "MaskWeights",
    "default_templates",
    "event_weights",
    "mask_weights",
    "weighted_lightcurve",
    "weighted_spectrum",
]


@dataclass(frozen=True)
class MaskWeights:
    """Per-pixel mask weights of one source direction and the numbers that normalise them.

    Attributes
    ----------
    weights
        ``(ny, nz)`` weight of each pixel (0 on unusable pixels).
    illumination
        ``(ny, nz)`` illuminated fraction ``f`` of each pixel by the source.
    usable
        Pixels whose events enter the weighted sum.
    tan_y, tan_z
        Projected angles of the source.
    cos_theta
        Cosine of its off-axis angle.
    lit_pixels
        ``sum(f u)``: the source's illumination in fully illuminated pixel equivalents.
    norm
        ``sum(w f u)`` (equal to ``lit_pixels`` by construction): the number of fully
        illuminated pixel equivalents of the weighted counts, the factor of the response.
    coding_fraction
        ``lit_pixels / (open_fraction * n_usable)``: 1 in the fully coded field.
    n_templates
        Background templates the weights are orthogonal to (flat, CXB, ...).
    variance_factor
        ``sum(w^2 u) / n_usable``: variance of the weighted counts per background count of a
        flat background (about 2/3 on axis with a 40 % open mask; larger off axis).
    """

    weights: NDArray[np.float64]
    illumination: NDArray[np.float64]
    usable: NDArray[np.bool_]
    tan_y: float
    tan_z: float
    cos_theta: float
    lit_pixels: float
    norm: float
    coding_fraction: float
    n_templates: int
    variance_factor: float


def default_templates(
    geometry: MaskGeometry, pattern: NDArray[np.bool_]
) -> list[NDArray[np.float64]]:
    """Return the background templates the weights cancel: flat and the CXB exposure map."""
    # the CXB map costs a few hundred ms: cache it for the instrument's own pattern
    if np.array_equal(pattern, mask_pattern(geometry)):
        cxb = _cxb_map(geometry)
    else:
        cxb = diffuse_illumination(geometry, pattern)
    return [np.ones(geometry.shape), cxb / cxb.mean()]


@cache
def _cxb_map(geometry: MaskGeometry) -> NDArray[np.float64]:
    cxb = diffuse_illumination(geometry, mask_pattern(geometry))
    cxb.setflags(write=False)
    return cxb


def mask_weights(
    geometry: MaskGeometry,
    pattern: NDArray[np.bool_],
    tan_y: float,
    tan_z: float,
    *,
    usable: NDArray[np.bool_] | None = None,
    templates: Sequence[NDArray[np.float64]] | None = None,
    min_coding: float = 0.0,
) -> MaskWeights:
    """Compute the balanced mask weights of every pixel for a source direction.

    Parameters
    ----------
    geometry, pattern
        Mask geometry and pattern.
    tan_y, tan_z
        Projected angles of the source (``Attitude.to_projected``).
    usable
        ``(ny, nz)`` pixels whose events are used (default: all); dead and noisy pixels out.
    templates
        Background shapes the weighted sum cancels (default :func:`default_templates`:
        flat and CXB). A flat template is always part of the set.
    min_coding
        Smallest coding fraction accepted (BAT's ``pcodethresh``).

    Raises
    ------
    InputDataError
        No usable pixel, a source behind the plane or outside the field (no usable pixel sees
        it), a coding fraction below ``min_coding``, or a shadow that the background
        templates reproduce (nothing left to weight).
    """
    if not (np.isfinite(tan_y) and np.isfinite(tan_z)):
        raise InputDataError("mask weights: the source is behind the detector plane")
    shape = geometry.shape
    use = np.ones(shape, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    if use.shape != shape:
        raise InputDataError(f"mask weights: usable pixel map must have shape {shape}")
    n_usable = int(use.sum())
    if n_usable == 0:
        raise InputDataError("mask weights: no usable detector pixel")
    f = shadow(geometry, pattern, float(tan_y), float(tan_z))
    fu = f[use]
    lit = float(fu.sum())
    if lit <= 0:
        raise InputDataError(
            f"mask weights: no usable pixel sees the source at tan=({tan_y:.3f}, {tan_z:.3f}) "
            "through the mask (outside the field of view)"
        )
    coding = lit / (geometry.open_fraction * n_usable)
    if coding < min_coding:
        raise InputDataError(
            f"mask weights: coding fraction {coding:.3g} of the source is below {min_coding:g}"
        )
    tpl = default_templates(geometry, pattern) if templates is None else list(templates)
    cols = [np.ones(n_usable)] + [np.asarray(t, dtype=np.float64)[use] for t in tpl]
    # an orthonormal basis of the span of the templates over the usable pixels; the SVD
    # drops a template that repeats another (a second flat one) without losing a direction
    a = np.stack([c / np.linalg.norm(c) for c in cols if np.any(c)], axis=1)
    u_svd, sv, _ = np.linalg.svd(a, full_matrices=False)
    q = u_svd[:, sv > 1e-10 * sv[0]]
    f_perp = fu - q @ (q.T @ fu)
    denom = float(f_perp @ fu)
    if denom <= 1e-9 * float(fu @ fu):
        raise InputDataError(
            "mask weights: the source's shadow is reproduced by the background templates "
            "(no coded modulation left to weight)"
        )
    w = np.zeros(shape, dtype=np.float64)
    w[use] = f_perp * (lit / denom)
    return MaskWeights(
        weights=w,
        illumination=f,
        usable=use,
        tan_y=float(tan_y),
        tan_z=float(tan_z),
        cos_theta=float(cos_theta(tan_y, tan_z)),
        lit_pixels=lit,
        norm=float(np.sum(w * f)),
        coding_fraction=coding,
        n_templates=int(q.shape[1]),
        variance_factor=float(np.sum(w[use] ** 2) / n_usable),
    )


def event_weights(weights: MaskWeights, y: ArrayLike, z: ArrayLike) -> NDArray[np.float64]:
    """Return the weight of each event from its pixel ``(y, z)`` (0 for unusable pixels)."""
    yy = np.asarray(y, dtype=np.int64)
    zz = np.asarray(z, dtype=np.int64)
    if yy.shape != zz.shape:
        raise InputDataError("event weights: y and z must have the same length")
    ny, nz = weights.weights.shape
    if yy.size and (yy.min() < 0 or yy.max() >= ny or zz.min() < 0 or zz.max() >= nz):
        raise InputDataError(f"event weights: pixel indices outside the {ny}x{nz} detector")
    return weights.weights[yy, zz]


def weighted_spectrum(
    channel: ArrayLike, weights: ArrayLike, n_channels: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return the weighted counts per channel and their variance (sum of squared weights).

    ``channel`` are 0-based channel indices of the events, ``weights`` their weights.
    """
    ch = np.asarray(channel, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    if ch.shape != w.shape:
        raise InputDataError("weighted spectrum: channels and weights must have the same length")
    if ch.size and (ch.min() < 0 or ch.max() >= n_channels):
        raise InputDataError(f"weighted spectrum: channel index outside 0..{n_channels - 1}")
    counts = np.bincount(ch, weights=w, minlength=n_channels).astype(np.float64)
    var = np.bincount(ch, weights=w * w, minlength=n_channels).astype(np.float64)
    return counts, var


def weighted_lightcurve(
    times: ArrayLike, weights: ArrayLike, lo: ArrayLike, hi: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Return the mask-weighted counts per time bin ``[lo, hi)`` and their variance (sum of w^2).

    The weighted counts are background-subtracted by construction (the balanced weights
    cancel a flat and a CXB-shaped background) and may be negative; with their variance
    they are the Gaussian measurements of a BAT-like mask-weighted light curve
    (``batmaskwtevt`` + ``batbinevt``). ``times`` must be sorted; bins must not overlap.
    """
    t = np.asarray(times, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if t.shape != w.shape:
        raise InputDataError("weighted light curve: times and weights must have the same length")
    if t.size > 1 and np.any(np.diff(t) < 0):
        raise InputDataError("weighted light curve: times must be sorted")
    # cumulative sums at the bin edges: exact, one pass, any bin widths
    cw = np.concatenate([[0.0], np.cumsum(w)])
    cw2 = np.concatenate([[0.0], np.cumsum(w * w)])
    i0 = np.searchsorted(t, np.asarray(lo, dtype=np.float64), side="left")
    i1 = np.searchsorted(t, np.asarray(hi, dtype=np.float64), side="left")
    return cw[i1] - cw[i0], cw2[i1] - cw2[i0]
