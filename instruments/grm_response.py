"""GRM detector response: a simple but physical NaI(Tl) DRM per direction, and its OGIP RSP.

Physics, per photon of energy E arriving at angle theta from a detector axis:

* geometric area ``A cos(theta)^p`` (``crystal.angular_exponent``; zero from behind) and path
  length ``min(t / cos(theta), 2 R)`` through the crystal of thickness ``t``, so the interaction
  probability is ``1 - exp(-mu(E) rho L)`` with ``mu`` the NaI mass attenuation coefficient
  (NIST, ``simulation/data/nai_attenuation.csv``);
* the interaction is a Compton scatter with probability ``mu_KN / mu`` (Klein-Nishina per
  electron times the NaI electron density) and otherwise an absorption (photoelectric; above
  1 MeV this also holds pair production, counted as full-energy absorption);
* after an absorption above the iodine K edge (33.17 keV), the K fluorescence photon (28.61 keV)
  escapes with the semi-infinite-slab probability
  ``omega_K (1 - 1/J)/2 [1 - (mu_f/mu_E) ln(1 + mu_E/mu_f)]`` -> escape peak at E - 28.61 keV;
* after a Compton scatter at angle psi (Klein-Nishina), the scattered photon escapes with
  probability ``exp(-mu(E') rho Lc)`` (``Lc = 4V/S``, the mean chord) leaving the electron
  energy (Compton continuum), else it is absorbed (full energy);
* the deposited energy is smeared with a Gaussian of FWHM ``f60 * 60 keV * (E/60)^(1+k)``
  (``resolution_fwhm_at_60kev`` f60 = 16 %, ``resolution_energy_exponent`` k = -1/2), and
  binned in the PI channels of the instrument file; deposits below the first channel are lost,
  those above the last fall in the last (overflow) channel.

The simulator (:mod:`svomflow.simulation.grm`) draws every step per photon; the matrix
integrates the same model over each photon-energy bin, so the two agree (tested by forward
folding).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erf
from svomflow.array_cache import cached_arrays, digest, source_digest
from svomflow.config.instrument import InstrumentDefinition, load_instrument
from svomflow.instruments.attitude import Attitude

__all__ = [
    "ELECTRON_MASS_KEV",
    "GRMGeometry",
    "GRMResponseModel",
    "band_response",
    "band_weights",
    "channel_edges",
    "detector_axes",
    "grm_response",
    "mass_attenuation",
]

ELECTRON_MASS_KEV = 510.99895
CLASSICAL_ELECTRON_RADIUS_CM = 2.8179403262e-13
AVOGADRO = 6.02214076e23
# NaI material data (not instrument numbers): electrons per gram from Z/A of NaI; iodine
# K-shell edge, K-alpha energy, fluorescence yield and jump ratio (standard X-ray data
# booklet / Krause 1979 values).
NAI_Z_OVER_A = (11 + 53) / (22.98977 + 126.90447)
IODINE_K_EDGE_KEV = 33.17
IODINE_K_ALPHA_KEV = 28.61
IODINE_K_FLUORESCENCE_YIELD = 0.882
IODINE_K_JUMP_RATIO = 5.6
IODINE_MASS_FRACTION = 126.90447 / (22.98977 + 126.90447)


@cache
def _nai_table() -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    path = resources.files("svomflow.instruments") / "data" / "nai_attenuation.csv"
    rows = [
        line.split(",")
        for line in path.read_text().splitlines()
        if line and not line.startswith("#") and not line.startswith("energy")
    ]
    arr = np.array(rows, dtype=np.float64)
    return arr[:, 0], arr[:, 3]


def mass_attenuation(e_kev: ArrayLike) -> NDArray[np.float64]:
    """Return the NaI mass attenuation coefficient (cm2/g) by log-log interpolation (NIST)."""
    e_tab, mu_tab = _nai_table()
    e = np.asarray(e_kev, dtype=np.float64)
    le = np.log(np.clip(e, e_tab[0], e_tab[-1]))
    # The K edge is listed twice; interpolate each side separately so it stays sharp.
    k = int(np.flatnonzero(np.diff(e_tab) == 0)[0])
    below = np.interp(le, np.log(e_tab[: k + 1]), np.log(mu_tab[: k + 1]))
    above = np.interp(le, np.log(e_tab[k + 1 :]), np.log(mu_tab[k + 1 :]))
    out = np.exp(np.where(e < e_tab[k], below, above))
    # Below the table (10 keV) extrapolate the photoelectric E^-3 law.
    return np.where(e < e_tab[0], out * (e_tab[0] / np.maximum(e, 1e-3)) ** 3, out)


def klein_nishina_total(e_kev: ArrayLike) -> NDArray[np.float64]:
    """Return the Klein-Nishina cross section per electron (cm2)."""
    k = np.asarray(e_kev, dtype=np.float64) / ELECTRON_MASS_KEV
    a = (1 + k) / k**2 * (2 * (1 + k) / (1 + 2 * k) - np.log(1 + 2 * k) / k)
    b = np.log(1 + 2 * k) / (2 * k) - (1 + 3 * k) / (1 + 2 * k) ** 2
    return 2 * np.pi * CLASSICAL_ELECTRON_RADIUS_CM**2 * (a + b)


def klein_nishina_shape(e_kev: ArrayLike, cos_psi: ArrayLike) -> NDArray[np.float64]:
    """Return dsigma/dOmega / r_e^2 (max 1 at cos_psi = 1) for energies and scatter angles."""
    k = np.asarray(e_kev, dtype=np.float64) / ELECTRON_MASS_KEV
    c = np.asarray(cos_psi, dtype=np.float64)
    p = 1.0 / (1.0 + k * (1.0 - c))
    return 0.5 * p**2 * (p + 1.0 / p - (1.0 - c**2))


def compton_fraction(e_kev: ArrayLike) -> NDArray[np.float64]:
    """Return the probability that an interaction is a Compton scatter (mu_KN / mu)."""
    mu_kn = klein_nishina_total(e_kev) * AVOGADRO * NAI_Z_OVER_A
    return np.clip(mu_kn / mass_attenuation(e_kev), 0.0, 1.0)


def k_escape_fraction(e_kev: ArrayLike) -> NDArray[np.float64]:
    """Return the probability that an absorption leaves via iodine K-fluorescence escape."""
    e = np.asarray(e_kev, dtype=np.float64)
    mu_e = mass_attenuation(e)
    mu_f = mass_attenuation(IODINE_K_ALPHA_KEV)
    ratio = mu_f / mu_e
    # Fraction of absorptions on the iodine K shell: iodine's share times (1 - 1/J).
    share = IODINE_MASS_FRACTION * (1 - 1 / IODINE_K_JUMP_RATIO)
    f = 0.5 * IODINE_K_FLUORESCENCE_YIELD * share * (1 - ratio * np.log1p(1 / ratio))
    return np.where(e > IODINE_K_EDGE_KEV, f, 0.0)


@dataclass(frozen=True)
class GRMGeometry:
    """The numbers of the GRM response, read from the instrument file."""

    area_cm2: float
    thickness_cm: float
    density_g_cm3: float
    angular_exponent: float
    fwhm_at_60: float
    resolution_exponent: float
    channel_edges_kev: tuple[float, ...]

    @classmethod
    def from_instrument(cls, inst: InstrumentDefinition | None = None) -> GRMGeometry:
        """Build the geometry from an instrument definition (default: packaged ``grm``)."""
        inst = inst or load_instrument("grm")
        return cls(
            area_cm2=float(inst.get("crystal.area_cm2")),
            thickness_cm=float(inst.get("crystal.thickness_cm")),
            density_g_cm3=float(inst.get("crystal.density_g_cm3")),
            angular_exponent=float(inst.get("crystal.angular_exponent")),
            fwhm_at_60=float(inst.get("crystal.resolution_fwhm_at_60kev")),
            resolution_exponent=float(inst.get("crystal.resolution_energy_exponent")),
            channel_edges_kev=tuple(channel_edges(inst)),
        )

    @property
    def radius_cm(self) -> float:
        """Return the crystal radius (a disc of the stated area)."""
        return float(np.sqrt(self.area_cm2 / np.pi))

    @property
    def mean_chord_cm(self) -> float:
        """Return the mean chord 4V/S of the crystal (escape length of scattered photons)."""
        r = self.radius_cm
        surface = 2 * self.area_cm2 + 2 * np.pi * r * self.thickness_cm
        return float(4 * self.area_cm2 * self.thickness_cm / surface)

    def sigma_kev(self, e_kev: ArrayLike) -> NDArray[np.float64]:
        """Return the Gaussian sigma (keV) of the energy resolution at deposited energy E."""
        e = np.maximum(np.asarray(e_kev, dtype=np.float64), 1e-3)
        fwhm = self.fwhm_at_60 * 60.0 * (e / 60.0) ** (1.0 + self.resolution_exponent)
        return fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))

    def interacting_area(self, e_kev: ArrayLike, cos_theta: ArrayLike) -> NDArray[np.float64]:
        """Return the area (cm2) times interaction probability for incidence cosines."""
        c = np.asarray(cos_theta, dtype=np.float64)
        e = np.asarray(e_kev, dtype=np.float64)
        front = c > 0
        cpos = np.where(front, c, 1.0)
        path = np.minimum(self.thickness_cm / cpos, 2 * self.radius_cm)
        p_int = -np.expm1(-mass_attenuation(e) * self.density_g_cm3 * path)
        return np.where(front, self.area_cm2 * cpos**self.angular_exponent * p_int, 0.0)

    def scatter_escape(self, e_scattered_kev: ArrayLike) -> NDArray[np.float64]:
        """Return the probability that a Compton-scattered photon leaves the crystal."""
        mu = mass_attenuation(e_scattered_kev)
        return np.exp(-mu * self.density_g_cm3 * self.mean_chord_cm)


def channel_edges(inst: InstrumentDefinition | None = None) -> NDArray[np.float64]:
    """Return the PI channel edges (n_channels + 1, keV) from the instrument file."""
    inst = inst or load_instrument("grm")
    n = int(inst.get("channels.n_channels"))
    lo, hi = float(inst.get("channels.e_min_kev")), float(inst.get("channels.e_max_kev"))
    if inst.get("channels.spacing") == "log":
        return np.geomspace(lo, hi, n + 1)
    return np.linspace(lo, hi, n + 1)


def detector_axes(inst: InstrumentDefinition | None = None) -> dict[str, NDArray[np.float64]]:
    """Return each detector's axis as a unit vector in the spacecraft frame (X = ECLAIRs axis).

    A detector with ``tilt_deg`` and ``azimuth_deg`` points at
    ``(cos tilt, sin tilt cos az, sin tilt sin az)``: azimuth counted from +Y towards +Z.
    """
    inst = inst or load_instrument("grm")
    out = {}
    for d in inst.get("detectors"):
        t, a = np.radians(d["tilt_deg"]), np.radians(d["azimuth_deg"])
        out[d["name"]] = np.array([np.cos(t), np.sin(t) * np.cos(a), np.sin(t) * np.sin(a)])
    return out


def photon_bins(n: int = 160, e_min: float = 10.0, e_max: float = 10000.0) -> NDArray[np.float64]:
    """Return the default photon-energy bin edges of the matrix (log-spaced, keV)."""
    return np.geomspace(e_min, e_max, n + 1)


def _smear(
    geom: GRMGeometry, deposit: NDArray[np.float64], edges: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Probabilities (..., n_chan) that deposits land in each channel (last = overflow)."""
    sig = geom.sigma_kev(deposit)[..., None]
    z = (edges - deposit[..., None]) / (np.sqrt(2.0) * sig)
    cdf = 0.5 * (1 + erf(z))
    cdf[..., -1] = 1.0  # overflow into the last channel
    return np.diff(cdf, axis=-1)


def _sub_energies(photon_edges: tuple[float, ...], n_sub: int = 4) -> NDArray[np.float64]:
    """Return the sub-energies of each photon bin (n_bins * n_sub,): where the matrix is integrated.

    They are the geometric midpoints of ``n_sub`` equal log slices of each bin.
    """
    pe = np.asarray(photon_edges)
    frac = (np.arange(n_sub) + 0.5) / n_sub
    return np.exp(np.log(pe[:-1])[:, None] + np.diff(np.log(pe))[:, None] * frac[None, :]).ravel()


@cache
def _redistribution(
    geom: GRMGeometry, photon_edges: tuple[float, ...], n_sub: int = 4, n_t: int = 96
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Channel probabilities per interacting photon at sub-energies of each photon bin.

    Returns (sub_energies (n_bins * n_sub,), probabilities (n_bins * n_sub, n_chan)). A
    fraction of a second of CPU, so kept across processes (:func:`svomflow.array_cache.
    cached_arrays`) under a digest of the geometry (every number of the RSPPAR file but the
    detector axes, which the redistribution does not use), the bins and this module's source.
    """
    arrays = cached_arrays(
        "grm-redistribution",
        digest(geom, photon_edges, n_sub, n_t),
        lambda: _compute_redistribution(geom, photon_edges, n_sub, n_t),
        version=digest(source_digest(sys.modules[__name__]), np.__version__),
    )
    return np.asarray(arrays["energies"], np.float64), np.asarray(
        arrays["probabilities"], np.float64
    )


def _compute_redistribution(
    geom: GRMGeometry, photon_edges: tuple[float, ...], n_sub: int, n_t: int
) -> dict[str, NDArray[np.float64]]:
    """Compute what :func:`_redistribution` returns, as named arrays."""
    edges = np.asarray(geom.channel_edges_kev)
    e = _sub_energies(photon_edges, n_sub)
    f_c = compton_fraction(e)
    f_esc = k_escape_fraction(e)
    # Compton: integrate over the electron energy T on a midpoint grid in [0, T_max].
    k = e / ELECTRON_MASS_KEV
    t_max = e * 2 * k / (1 + 2 * k)
    u = (np.arange(n_t) + 0.5) / n_t
    t = t_max[:, None] * u[None, :]
    e_sc = e[:, None] - t
    cos_psi = 1.0 - ELECTRON_MASS_KEV * (1.0 / e_sc - 1.0 / e[:, None])
    # dsigma/dT = dsigma/dcos * mc2 / E'^2; normalise over the grid (the integral is sigma_KN).
    w = klein_nishina_shape(e[:, None], cos_psi) * ELECTRON_MASS_KEV / e_sc**2
    w /= w.sum(axis=1, keepdims=True)
    p_escape = geom.scatter_escape(e_sc)
    full = (1 - f_c) * (1 - f_esc) + f_c * np.sum(w * (1 - p_escape), axis=1)
    prob = full[:, None] * _smear(geom, e, edges)
    prob += ((1 - f_c) * f_esc)[:, None] * _smear(
        geom, np.maximum(e - IODINE_K_ALPHA_KEV, 1e-3), edges
    )
    cont = _smear(geom, t, edges)  # (n_e, n_t, n_chan)
    prob += f_c[:, None] * np.einsum("et,etc->ec", w * p_escape, cont)
    return {"energies": e, "probabilities": prob}


def _direction_cosines(
    direction: ArrayLike | tuple[float, float],
    attitude: Attitude | None,
    axes: dict[str, NDArray[np.float64]],
) -> dict[str, NDArray[np.float64]]:
    d = np.asarray(direction, dtype=np.float64)
    if attitude is not None:
        if d.shape[-1] != 2:
            raise ValueError("with an attitude, give direction as (ra_deg, dec_deg)")
        v = attitude.to_instrument(d[..., 0], d[..., 1])
    else:
        if d.shape[-1] != 3:
            raise ValueError("without an attitude, give direction as a spacecraft-frame vector")
        v = d / np.linalg.norm(d, axis=-1, keepdims=True)
    return {name: v @ ax for name, ax in axes.items()}


@dataclass(frozen=True, eq=False)
class GRMResponseModel:
    """Everything the GRM response needs: crystal geometry, channels and detector axes.

    The analysis loads it from the CALDB (code ``RSPPAR``); the simulator builds the same
    model from the instrument definition and writes that file.
    """

    geometry: GRMGeometry
    axes: dict[str, NDArray[np.float64]]

    @classmethod
    def from_instrument(cls, inst: InstrumentDefinition | None = None) -> GRMResponseModel:
        """Build the model from an instrument definition (the simulator's truth)."""
        inst = inst or load_instrument("grm")
        return cls(GRMGeometry.from_instrument(inst), detector_axes(inst))

    @property
    def detectors(self) -> tuple[str, ...]:
        """Detector names, in order."""
        return tuple(self.axes)

    def _key(self) -> tuple[object, ...]:
        return (self.geometry, tuple((n, tuple(v.tolist())) for n, v in self.axes.items()))

    # equal models give equal responses: they may share cached response grids
    def __eq__(self, other: object) -> bool:
        return isinstance(other, GRMResponseModel) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def grm_response(
    direction: ArrayLike,
    *,
    detector: str,
    model: GRMResponseModel,
    attitude: Attitude | None = None,
    photon_edges: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Return the response of one GRM detector for a source direction.

    Parameters
    ----------
    direction
        A spacecraft-frame unit vector, or ``(ra_deg, dec_deg)`` with ``attitude``.
    detector
        Detector name (``GRD01``...).
    model
        The response model (CALDB ``RSPPAR``, or the simulator's truth).
    attitude
        Spacecraft attitude (X = ECLAIRs boresight) when ``direction`` is sky coordinates.
    photon_edges
        Photon-energy bin edges in keV (default 160 log bins, 10 keV - 10 MeV).

    Returns
    -------
    e_lo, e_hi, matrix, ebounds
        Photon bin edges (n_e,), the matrix (n_e, n_chan) in cm2 (effective area times
        redistribution probability, OGIP ``HDUCLAS3 = FULL``) and the channel bounds
        (n_chan, 2) in keV.
    """
    geom, axes = model.geometry, model.axes
    if detector not in axes:
        raise ValueError(f"unknown GRM detector {detector!r}; known: {', '.join(axes)}")
    pe = photon_bins() if photon_edges is None else np.asarray(photon_edges, dtype=np.float64)
    e_sub, prob = _redistribution(geom, tuple(float(x) for x in pe))
    cos_t = float(_direction_cosines(direction, attitude, axes)[detector])
    area = geom.interacting_area(e_sub, cos_t)
    n_bins = pe.size - 1
    matrix = (area[:, None] * prob).reshape(n_bins, -1, prob.shape[1]).mean(axis=1)
    edges = np.asarray(geom.channel_edges_kev)
    return pe[:-1].copy(), pe[1:].copy(), matrix, np.column_stack([edges[:-1], edges[1:]])


def band_response(
    cos_theta: ArrayLike,
    weights: ArrayLike,
    *,
    model: GRMResponseModel,
    photon_edges: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Return expected counts for many incidence cosines: sum_i A(E_i, theta) w_i.

    ``weights`` (n_bins * n_sub,) are per sub-energy photon fluences already multiplied by the
    channel-band probabilities (see :func:`band_weights`). Used by the localisation grid.
    """
    geom = model.geometry
    pe = photon_bins() if photon_edges is None else np.asarray(photon_edges, dtype=np.float64)
    # the sub-energies alone: the redistribution is in the weights, not needed here
    e_sub = _sub_energies(tuple(float(x) for x in pe))
    c = np.asarray(cos_theta, dtype=np.float64)
    area = geom.interacting_area(e_sub[None, :], c.reshape(-1, 1))
    return (area @ np.asarray(weights, dtype=np.float64)).reshape(c.shape)


def band_weights(
    photon_spectrum: Any,
    band_kev: tuple[float, float],
    *,
    model: GRMResponseModel,
    photon_edges: ArrayLike | None = None,
) -> NDArray[np.float64]:
    """Return per-sub-energy weights: photon fluence density x probability to land in a band.

    ``photon_spectrum(E)`` gives ph/cm2/keV (any normalisation); channels whose centres lie in
    ``band_kev`` form the band.
    """
    geom = model.geometry
    pe = photon_bins() if photon_edges is None else np.asarray(photon_edges, dtype=np.float64)
    e_sub, prob = _redistribution(geom, tuple(float(x) for x in pe))
    edges = np.asarray(geom.channel_edges_kev)
    centres = np.sqrt(edges[:-1] * edges[1:])
    in_band = (centres >= band_kev[0]) & (centres <= band_kev[1])
    n_sub = e_sub.size // (pe.size - 1)
    width = np.repeat(np.diff(pe), n_sub) / n_sub
    return np.asarray(photon_spectrum(e_sub)) * width * prob[:, in_band].sum(axis=1)
