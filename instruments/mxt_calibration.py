"""MXT calibration data: the objects the CALDB files hold, their loaders and their writers.

One module per instrument's calibration vocabulary (CALDB code names in
:mod:`svomflow.calibration.codes`):

* ``GAIN`` -> :class:`GainTable` (per-column gain and offset, :func:`read_gain`);
* ``CTI`` -> :class:`CTIModel` (charge-transfer inefficiency vs energy, :func:`read_cti`);
* ``PATTERN`` -> :class:`PatternTable` (mean recorded charge fraction per multiplicity vs
  energy, :func:`read_pattern`);
* ``PSF`` -> :class:`PSFModel` (the lobster-eye PSF, :func:`read_psf`).

The loaders live here, below the steps, so that the adapter can load every file in a flow's
first task and the steps only receive these objects; the writers (``*_hdu``) are what the
simulator (and later the instrument centre) registers in the CALDB, so a file always reads
back into the object it was written from.

The PSF is one definition for the simulator (sampling) and the fit (density): a
Lorentzian-like core (2-D Cauchy, i.e. King beta = 3/2), two triangular cross arms along the
detector axes and a Gaussian halo (formula in :mod:`svomflow.instruments._mxt_kernels`).
Parameters are kept in detector pixels; files and the instrument YAML (the simulation
default, :meth:`PSFModel.from_instrument`) give them in arcmin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.instruments._mxt_kernels import psf_pixels

__all__ = [
    "CTIModel",
    "GainTable",
    "PSFModel",
    "PatternTable",
    "cti_hdu",
    "gain_hdu",
    "pattern_hdu",
    "psf_hdu",
    "read_cti",
    "read_gain",
    "read_pattern",
    "read_psf",
]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))

# keyword <-> field, values in arcmin in files and YAML
_ARCMIN_KEYS = {
    "core_fwhm_arcmin": "CORE_FW",
    "arm_length_arcmin": "ARM_LEN",
    "arm_width_arcmin": "ARM_WID",
    "halo_fwhm_arcmin": "HALO_FW",
}
_FRACTION_KEYS = {"core_fraction": "CORE_FR", "arm_fraction": "ARM_FR"}


@dataclass(frozen=True)
class PSFModel:
    """Lobster-eye PSF in detector pixels.

    Attributes
    ----------
    gamma
        Scale of the Cauchy core (pixels); FWHM = 2 gamma sqrt(2^(2/3) - 1).
    arm_half
        Half-length of each triangular arm (pixels).
    arm_sigma
        Gaussian sigma across an arm (pixels).
    halo_sigma
        Gaussian sigma of the halo (pixels).
    f_core, f_arm
        Flux fractions of the core and of both arms together; the halo has the rest.
    """

    gamma: float
    arm_half: float
    arm_sigma: float
    halo_sigma: float
    f_core: float
    f_arm: float

    def __post_init__(self) -> None:
        for name in ("gamma", "arm_half", "arm_sigma", "halo_sigma"):
            if not getattr(self, name) > 0:
                raise InputDataError(f"PSF parameter {name} must be positive")
        if not (0 <= self.f_core and 0 <= self.f_arm and self.f_core + self.f_arm <= 1):
            raise InputDataError("PSF fractions must be >= 0 and sum to at most 1")

    @property
    def f_halo(self) -> float:
        """Fraction of the flux in the halo."""
        return 1.0 - self.f_core - self.f_arm

    @classmethod
    def from_arcmin(cls, params: Mapping[str, Any], pixel_scale_arcsec: float) -> PSFModel:
        """Build from the YAML/CALDB parameters in arcmin (``core_fwhm_arcmin``...)."""
        try:
            scale = 60.0 / float(pixel_scale_arcsec)
            core_fwhm = float(params["core_fwhm_arcmin"]) * scale
            return cls(
                gamma=0.5 * core_fwhm / math.sqrt(2.0 ** (2.0 / 3.0) - 1.0),
                arm_half=0.5 * float(params["arm_length_arcmin"]) * scale,
                arm_sigma=float(params["arm_width_arcmin"]) * scale * _FWHM_TO_SIGMA,
                halo_sigma=float(params["halo_fwhm_arcmin"]) * scale * _FWHM_TO_SIGMA,
                f_core=float(params["core_fraction"]),
                f_arm=float(params["arm_fraction"]),
            )
        except KeyError as exc:
            raise InputDataError(f"PSF parameters lack {exc.args[0]!r}") from None

    @classmethod
    def from_instrument(cls, instrument: Any) -> PSFModel:
        """Build from an InstrumentDefinition's ``optics.psf`` (simulation default)."""
        return cls.from_arcmin(
            instrument.get("optics.psf"), instrument.get("ccd.pixel_scale_arcsec")
        )

    def to_arcmin(self, pixel_scale_arcsec: float) -> dict[str, float]:
        """Return the parameters in the arcmin form used by the YAML and the CALDB file."""
        pix = float(pixel_scale_arcsec) / 60.0
        return {
            "core_fwhm_arcmin": 2.0 * self.gamma * math.sqrt(2.0 ** (2.0 / 3.0) - 1.0) * pix,
            "arm_length_arcmin": 2.0 * self.arm_half * pix,
            "arm_width_arcmin": self.arm_sigma / _FWHM_TO_SIGMA * pix,
            "halo_fwhm_arcmin": self.halo_sigma / _FWHM_TO_SIGMA * pix,
            "core_fraction": self.f_core,
            "arm_fraction": self.f_arm,
        }

    def as_dict(self) -> dict[str, float]:
        """Return the pixel-unit parameters."""
        return asdict(self)

    def pixels(
        self, x0: float, y0: float, x_edges: NDArray[np.float64], y_edges: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        """Return the PSF integrated over the pixels of a grid and its derivatives in x0, y0.

        ``x_edges`` (nx+1) and ``y_edges`` (ny+1) are pixel boundaries; outputs are (ny, nx).
        """
        xe = np.ascontiguousarray(x_edges, dtype=np.float64)
        ye = np.ascontiguousarray(y_edges, dtype=np.float64)
        shape = (ye.size - 1, xe.size - 1)
        out, dx, dy = np.empty(shape), np.empty(shape), np.empty(shape)
        psf_pixels(
            float(x0), float(y0), xe, ye, self.gamma, self.arm_half, self.arm_sigma,
            self.halo_sigma, self.f_core, self.f_arm, self.f_halo, out, dx, dy,
        )  # fmt: skip
        return out, dx, dy

    def image(self, x0: float, y0: float, shape: tuple[int, int]) -> NDArray[np.float64]:
        """Return the pixel-integrated PSF on a detector of ``shape`` (ny, nx) (sum <= 1)."""
        ny, nx = shape
        return self.pixels(x0, y0, np.arange(nx + 1.0), np.arange(ny + 1.0))[0]

    def sample(
        self, n: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Draw ``n`` photon offsets (dx, dy) in pixels from the PSF (vectorised)."""
        u = rng.random(n)
        comp = np.where(u < self.f_core, 0, np.where(u < self.f_core + self.f_arm, 1, 2))
        dx = np.empty(n)
        dy = np.empty(n)
        core = comp == 0
        nc = int(core.sum())
        # Cauchy radial CDF: 1 - gamma / sqrt(gamma^2 + r^2)
        w = rng.random(nc)
        r = self.gamma * np.sqrt(1.0 / np.maximum(1.0 - w, 1e-300) ** 2 - 1.0)
        phi = rng.random(nc) * 2.0 * np.pi
        dx[core], dy[core] = r * np.cos(phi), r * np.sin(phi)
        arm = comp == 1
        na = int(arm.sum())
        along = (rng.random(na) + rng.random(na) - 1.0) * self.arm_half  # triangle
        across = rng.normal(0.0, self.arm_sigma, na)
        horiz = rng.random(na) < 0.5
        dx[arm] = np.where(horiz, along, across)
        dy[arm] = np.where(horiz, across, along)
        halo = comp == 2
        nh = int(halo.sum())
        dx[halo] = rng.normal(0.0, self.halo_sigma, nh)
        dy[halo] = rng.normal(0.0, self.halo_sigma, nh)
        return dx, dy

    def fraction_in_circle(self, radius_pix: float, step: float = 0.25) -> float:
        """Return the fraction of the PSF inside a circle of ``radius_pix`` (numerical)."""
        r = float(radius_pix)
        n = max(int(np.ceil(2 * r / step)), 1)
        edges = np.linspace(-r, r, n + 1)
        img = self.pixels(0.0, 0.0, edges, edges)[0]
        c = 0.5 * (edges[1:] + edges[:-1])
        inside = c[None, :] ** 2 + c[:, None] ** 2 <= r * r
        return float(img[inside].sum())


def psf_hdu(model: PSFModel, pixel_scale_arcsec: float) -> fits.BinTableHDU:
    """Return the CALDB ``PSF`` extension (parameters as keywords, a radial profile as a table)."""
    radius = np.arange(0.0, 3.0 * model.arm_half, 1.0)
    frac = np.array([model.fraction_in_circle(r) if r > 0 else 0.0 for r in radius[::4]])
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("RADIUS", "E", unit="pixel", array=radius[::4].astype(np.float32)),
            fits.Column("ENCFRAC", "E", array=frac.astype(np.float32)),
        ],
        name="PSF",
    )
    h = hdu.header
    for key, val in model.to_arcmin(pixel_scale_arcsec).items():
        kw = _ARCMIN_KEYS.get(key) or _FRACTION_KEYS[key]
        h[kw] = (float(val), key)
    h["PIXSCALE"] = (float(pixel_scale_arcsec), "[arcsec] pixel scale")
    h["CCLS0001"] = ("BCF", "basic calibration file")
    h["CCNM0001"] = ("PSF", "calibration code name")
    return hdu


def read_psf(path: str | Path) -> PSFModel:
    """Read a CALDB ``PSF`` file (extension ``PSF``, parameters as keywords in arcmin).

    Raises
    ------
    InputDataError
        If the file is unreadable or lacks a parameter.
    """
    try:
        with fits.open(path) as hdul:
            h = hdul["PSF"].header
            params = {k: h[v] for k, v in {**_ARCMIN_KEYS, **_FRACTION_KEYS}.items()}
            return PSFModel.from_arcmin(params, float(h["PIXSCALE"]))
    except (OSError, KeyError) as exc:
        raise InputDataError(f"{path}: not a readable MXT PSF calibration file ({exc})") from None


# --- GAIN, CTI, PATTERN ------------------------------------------------------------------


@dataclass(frozen=True)
class GainTable:
    """Per-column gain (eV/ADU) and offset (ADU) of the CCD, indexed by RAWX.

    Attributes
    ----------
    gain, offset
        One value per CCD column ``0 .. n_columns - 1``.
    """

    gain: NDArray[np.float64]
    offset: NDArray[np.float64]

    @property
    def n_columns(self) -> int:
        """Number of CCD columns the table covers."""
        return int(self.gain.size)

    def energy_kev(self, pha: NDArray[Any], rawx: NDArray[np.int64]) -> NDArray[np.float64]:
        """Return the energy (keV) of pixel values ``pha`` (ADU) read in columns ``rawx``."""
        return (np.asarray(pha, dtype=np.float64) - self.offset[rawx]) * self.gain[rawx] * 1e-3


@dataclass(frozen=True)
class CTIModel:
    """Charge-transfer inefficiency: fractional loss per transfer ``cti0 (q / 1 keV)^index``.

    A charge ``q`` read at row ``RAWY`` went through ``RAWY + 1`` transfers.
    """

    cti0: float
    index: float


@dataclass(frozen=True)
class PatternTable:
    """Mean fraction of an event's charge recorded, per multiplicity, vs recorded energy.

    Attributes
    ----------
    energy_kev
        Energy grid (keV, increasing).
    fraction
        ``(n_multiplicities, n_energies)``: row ``m - 1`` for events of ``m`` pixels.
    """

    energy_kev: NDArray[np.float64]
    fraction: NDArray[np.float64]


def _table(path: str | Path, ext: str) -> tuple[Any, fits.Header]:
    try:
        with fits.open(path) as hdul:
            if ext not in hdul:
                raise InputDataError(f"{path}: calibration file lacks the {ext} extension")
            return hdul[ext].data.copy(), hdul[ext].header.copy()
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read calibration file ({exc})") from None


def read_gain(path: str | Path) -> GainTable:
    """Read a CALDB ``GAIN`` file (extension ``GAIN``: ``RAWX``, ``GAIN``, ``OFFSET``).

    Raises
    ------
    InputDataError
        If the file is unreadable or does not hold exactly one row per column ``0..N-1``.
    """
    data, _ = _table(path, "GAIN")
    try:
        col = np.asarray(data["RAWX"], dtype=np.int64)
        gain_col = np.asarray(data["GAIN"], dtype=np.float64)
        offset_col = np.asarray(data["OFFSET"], dtype=np.float64)
    except KeyError as exc:
        raise InputDataError(f"{path}: GAIN table lacks the column {exc.args[0]}") from None
    n = col.size
    if n == 0 or col.min() != 0 or col.max() != n - 1 or np.unique(col).size != n:
        raise InputDataError(f"{path}: GAIN table must have one row per column 0..N-1")
    gain = np.zeros(n)
    offset = np.zeros(n)
    gain[col] = gain_col
    offset[col] = offset_col
    return GainTable(gain=gain, offset=offset)


def read_cti(path: str | Path) -> CTIModel:
    """Read a CALDB ``CTI`` file (extension ``CTI``, keywords ``CTI0`` and ``CTI_IDX``).

    Raises
    ------
    InputDataError
        If the file is unreadable or lacks a keyword.
    """
    _, header = _table(path, "CTI")
    try:
        return CTIModel(cti0=float(header["CTI0"]), index=float(header["CTI_IDX"]))
    except KeyError as exc:
        raise InputDataError(f"{path}: CTI extension lacks the keyword {exc.args[0]}") from None


def read_pattern(path: str | Path) -> PatternTable:
    """Read a CALDB ``PATTERN`` file (extension ``PATTERN``: ``ENERGY``, ``FRAC1``..``FRAC4``).

    Raises
    ------
    InputDataError
        If the file is unreadable or lacks a column.
    """
    data, _ = _table(path, "PATTERN")
    try:
        frac = np.vstack([np.asarray(data[f"FRAC{m}"], dtype=np.float64) for m in range(1, 5)])
        energy = np.asarray(data["ENERGY"], dtype=np.float64)
    except KeyError as exc:
        raise InputDataError(f"{path}: PATTERN table lacks the column {exc.args[0]}") from None
    return PatternTable(energy_kev=energy, fraction=frac)


def _code_cards(hdu: fits.BinTableHDU, code: str) -> fits.BinTableHDU:
    hdu.header["CCLS0001"] = ("BCF", "basic calibration file")
    hdu.header["CCNM0001"] = (code, "calibration code name")
    return hdu


def gain_hdu(table: GainTable) -> fits.BinTableHDU:
    """Return the CALDB ``GAIN`` extension of a gain table (read back by :func:`read_gain`)."""
    n = table.n_columns
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("RAWX", "I", array=np.arange(n, dtype=np.int16)),
            fits.Column("GAIN", "D", unit="eV/adu", array=table.gain),
            fits.Column("OFFSET", "D", unit="adu", array=table.offset),
        ],
        name="GAIN",
    )
    return _code_cards(hdu, "GAIN")


def cti_hdu(model: CTIModel) -> fits.BinTableHDU:
    """Return the CALDB ``CTI`` extension (keywords, and the CTI tabulated vs energy)."""
    energy = np.geomspace(0.1, 12, 40)
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERGY", "E", unit="keV", array=energy.astype(np.float32)),
            fits.Column("CTI", "E", array=(model.cti0 * energy**model.index).astype(np.float32)),
        ],
        name="CTI",
    )
    hdu.header["CTI0"] = (model.cti0, "fractional loss per transfer at 1 keV")
    hdu.header["CTI_IDX"] = (model.index, "energy index of the CTI")
    hdu.header["READROW"] = (0, "transfers = RAWY + 1")
    return _code_cards(hdu, "CTI")


def pattern_hdu(table: PatternTable) -> fits.BinTableHDU:
    """Return the CALDB ``PATTERN`` extension of a pattern table."""
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERGY", "E", unit="keV", array=table.energy_kev.astype(np.float32)),
            *[
                fits.Column(f"FRAC{m}", "E", array=table.fraction[m - 1].astype(np.float32))
                for m in range(1, table.fraction.shape[0] + 1)
            ],
        ],
        name="PATTERN",
    )
    hdu.header["COMMENT"] = "FRACm: mean recorded/true energy, multiplicity m, vs recorded E"
    return _code_cards(hdu, "PATTERN")
