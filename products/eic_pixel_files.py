"""ECLAIRs pixel calibration files: count histories in, bad pixels, uniformity and dead time out.

Inputs of the instrument centre's pixel flow (``svomflow eic pixels``), written by the
instrument (or the simulator) and read here:

* **pixel count history** (``PIXHIST``): the counts of every pixel of the plane in consecutive
  time bins: a ``COUNTS`` image cube ``(bin, y, z)`` and a ``BINS`` table (``START``, ``STOP``
  in mission seconds, ``EXPOSURE``: live seconds, 0 while the detectors are off);
* **dead-time rates** (``DTRATES``): per module and interval, the recorded ``COUNTS`` in
  ``EXPOSURE`` seconds and ``REFRATE``, a dead-time-free measure of the incident rate in
  arbitrary units (a trigger counter, or the known activity of a ground source).

Calibration files (CALDB), each readable by the loader of its code:

* ``BADPIX`` (:func:`badpix_hdus`): the format of
  :mod:`svomflow.products.calibration_files` (``Y``, ``Z``, ``STATUS`` = ``DEAD``/``NOISY``,
  ``PLANE_NY``/``PLANE_NZ``) plus columns its loader ignores: ``CLASS`` (``DEAD``, ``NOISY``
  or ``INTERMIT``; an intermittent pixel has ``STATUS`` ``NOISY`` so every analysis leaves it
  out), ``ONSET`` (mission s; NaN: before the period), ``DUTYCYC`` and ``SIGNIF``;
* ``DEADTIME`` (:func:`dead_time_hdus`): the format of ``read_dead_time`` (``DETNAM``,
  ``DEADTIME``; ``DEADDEF`` = the plane's equivalent per-event dead time) with one row per
  module plus ``DT_ERR``, ``RATE0`` and ``CHI2``/``NDOF`` columns;
* ``UNIFMAP`` (:func:`uniformity_hdus`, loader :func:`read_uniformity`): images ``EFFIC``
  (relative efficiency, mean 1 over the measured pixels, NaN where not measured) and
  ``EFFERR`` (its 1-sigma error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.instruments.pixels import PixelMap
from svomflow.products.ogip import MALFORMED_FILE_ERRORS, primary_hdu, write_hdulist

__all__ = [
    "BadPixel",
    "BadPixelTable",
    "DeadTimeFit",
    "DeadTimeRates",
    "PixelCountHistory",
    "UniformityMap",
    "badpix_hdus",
    "dead_time_hdus",
    "history_hdus",
    "module_map",
    "module_name",
    "rates_hdus",
    "read_bad_pixel_table",
    "read_dead_time_fit",
    "read_dead_time_rates",
    "read_history",
    "read_uniformity",
    "uniformity_hdus",
    "write_dead_time_rates",
    "write_history",
]

#: Pixel classes of the BADPIX ``CLASS`` column and the ``STATUS`` each is stored with.
CLASS_STATUS: dict[str, str] = {"DEAD": "DEAD", "NOISY": "NOISY", "INTERMIT": "NOISY"}


def module_name(index: int) -> str:
    """Return the detector name of a module in DEADTIME files (``MOD007``)."""
    return f"MOD{int(index):03d}"


def _open(path: Path, extname: str) -> fits.HDUList:
    try:
        hdul = fits.open(path, memmap=False)
        present = extname in hdul
    except MALFORMED_FILE_ERRORS as exc:
        raise InputDataError(
            f"{path}: not a readable FITS file ({type(exc).__name__}: {exc})"
        ) from None
    if not present:
        hdul.close()
        raise InputDataError(f"{path}: no {extname} extension")
    return hdul


def _primary(code: str, telescope: str, instrument: str, kind: str = "CCNM0001") -> fits.PrimaryHDU:
    return primary_hdu(
        telescope=telescope,
        instrument=instrument,
        extra=[(kind, code, "calibration code name" if kind == "CCNM0001" else "file content")],
    )


# --------------------------------------------------------------------------- PIXHIST
@dataclass(frozen=True)
class PixelCountHistory:
    """Counts of every pixel of a plane in consecutive time bins over a period.

    Attributes
    ----------
    start, stop
        Bin edges in mission seconds, shape ``(n,)``.
    exposure
        Live time of each bin (s); 0 while the detectors were off (SAA).
    counts
        Counts, shape ``(n, ny, nz)``.
    telescope, instrument
        Identity of the plane (header values).
    """

    start: NDArray[np.float64]
    stop: NDArray[np.float64]
    exposure: NDArray[np.float64]
    counts: NDArray[np.int32]
    telescope: str = "SVOM"
    instrument: str = "ECLAIRS"

    def __post_init__(self) -> None:
        n = self.start.shape[0]
        if self.counts.ndim != 3 or self.counts.shape[0] != n:
            raise InputDataError(
                "pixel history: counts must be (bins, ny, nz) with one row per bin"
            )
        if self.stop.shape != (n,) or self.exposure.shape != (n,):
            raise InputDataError(
                "pixel history: START, STOP and EXPOSURE must have one value per bin"
            )
        if n and (np.any(self.stop < self.start) or np.any(np.diff(self.start) < 0)):
            raise InputDataError("pixel history: bins must be ordered with STOP >= START")
        if np.any(self.exposure < 0) or np.any(self.exposure > self.stop - self.start + 1e-6):
            raise InputDataError("pixel history: EXPOSURE must lie in [0, STOP - START]")
        if np.any(self.counts < 0):
            raise InputDataError("pixel history: negative counts")

    @property
    def shape(self) -> tuple[int, int]:
        """Plane shape (ny, nz)."""
        return (int(self.counts.shape[1]), int(self.counts.shape[2]))

    @property
    def n_bins(self) -> int:
        """Number of time bins."""
        return int(self.counts.shape[0])

    @property
    def t_start(self) -> float:
        """Start of the period (mission s)."""
        return float(self.start[0]) if self.n_bins else 0.0

    @property
    def t_stop(self) -> float:
        """End of the period (mission s)."""
        return float(self.stop[-1]) if self.n_bins else 0.0

    @staticmethod
    def concatenate(parts: Sequence[PixelCountHistory]) -> PixelCountHistory:
        """Join histories of one plane into one, ordered by time."""
        if not parts:
            raise InputDataError("no pixel history to join")
        shapes = {p.shape for p in parts}
        if len(shapes) != 1:
            raise InputDataError(f"pixel histories of different planes: {sorted(shapes)}")
        order = np.argsort([p.t_start for p in parts], kind="stable")
        ps = [parts[int(i)] for i in order]
        return PixelCountHistory(
            start=np.concatenate([p.start for p in ps]),
            stop=np.concatenate([p.stop for p in ps]),
            exposure=np.concatenate([p.exposure for p in ps]),
            counts=np.concatenate([p.counts for p in ps]),
            telescope=ps[0].telescope,
            instrument=ps[0].instrument,
        )


def history_hdus(
    history: PixelCountHistory,
) -> list[fits.PrimaryHDU | fits.ImageHDU | fits.BinTableHDU]:
    """Return the HDUs of a pixel count history file."""
    prim = _primary("PIXHIST", history.telescope, history.instrument, kind="CONTENT")
    prim.header["TSTART"] = (history.t_start, "[s] start of the period (mission time)")
    prim.header["TSTOP"] = (history.t_stop, "[s] end of the period (mission time)")
    img = fits.ImageHDU(np.asarray(history.counts, dtype=np.int32), name="COUNTS")
    img.header["COMMENT"] = "counts per pixel: axis 3 = time bin (BINS row), axis 2 = Y, axis 1 = Z"
    bins = fits.BinTableHDU.from_columns(
        [
            fits.Column("START", "D", unit="s", array=history.start),
            fits.Column("STOP", "D", unit="s", array=history.stop),
            fits.Column("EXPOSURE", "D", unit="s", array=history.exposure),
        ],
        name="BINS",
    )
    return [prim, img, bins]


def write_history(path: str | Path, history: PixelCountHistory) -> Path:
    """Write a pixel count history file."""
    return write_hdulist(history_hdus(history), path)


def read_history(path: str | Path) -> PixelCountHistory:
    """Read a pixel count history file.

    Raises
    ------
    InputDataError
        For an unreadable file, missing extensions or inconsistent shapes.
    """
    p = Path(path)
    with _open(p, "COUNTS") as hdul:
        if "BINS" not in hdul:
            raise InputDataError(f"{p}: no BINS extension (not a pixel count history)")
        b = hdul["BINS"].data
        try:
            return PixelCountHistory(
                start=np.asarray(b["START"], np.float64),
                stop=np.asarray(b["STOP"], np.float64),
                exposure=np.asarray(b["EXPOSURE"], np.float64),
                counts=np.asarray(hdul["COUNTS"].data, np.int32),
                telescope=str(hdul[0].header.get("TELESCOP", "SVOM")),
                instrument=str(hdul[0].header.get("INSTRUME", "ECLAIRS")),
            )
        except KeyError as exc:
            raise InputDataError(f"{p}: BINS lacks a column ({exc})") from None


# --------------------------------------------------------------------------- DTRATES
@dataclass(frozen=True)
class DeadTimeRates:
    """Recorded counts of modules at several incident rates, with a dead-time-free reference.

    Attributes
    ----------
    module
        Module index of each interval, shape ``(k,)``.
    exposure
        Interval length (s).
    counts
        Recorded counts.
    reference
        Incident rate in arbitrary units (proportional to the true rate; dead-time free).
    """

    module: NDArray[np.int64]
    exposure: NDArray[np.float64]
    counts: NDArray[np.int64]
    reference: NDArray[np.float64]
    telescope: str = "SVOM"
    instrument: str = "ECLAIRS"

    def __post_init__(self) -> None:
        k = self.module.shape
        if self.exposure.shape != k or self.counts.shape != k or self.reference.shape != k:
            raise InputDataError(
                "dead-time rates: MODULE, EXPOSURE, COUNTS, REFRATE differ in length"
            )
        if np.any(self.exposure <= 0) or np.any(self.reference <= 0) or np.any(self.counts < 0):
            raise InputDataError("dead-time rates: exposures and references must be positive")


def rates_hdus(rates: DeadTimeRates) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Return the HDUs of a dead-time rates file."""
    prim = _primary("DTRATES", rates.telescope, rates.instrument, kind="CONTENT")
    tab = fits.BinTableHDU.from_columns(
        [
            fits.Column("MODULE", "J", array=rates.module),
            fits.Column("EXPOSURE", "D", unit="s", array=rates.exposure),
            fits.Column("COUNTS", "K", array=rates.counts),
            fits.Column("REFRATE", "D", array=rates.reference),
        ],
        name="DTRATES",
    )
    tab.header["COMMENT"] = "REFRATE: dead-time-free incident rate, arbitrary units"
    return [prim, tab]


def write_dead_time_rates(path: str | Path, rates: DeadTimeRates) -> Path:
    """Write a dead-time rates file."""
    return write_hdulist(rates_hdus(rates), path)


def read_dead_time_rates(path: str | Path) -> DeadTimeRates:
    """Read a dead-time rates file."""
    p = Path(path)
    with _open(p, "DTRATES") as hdul:
        d = hdul["DTRATES"].data
        try:
            return DeadTimeRates(
                module=np.asarray(d["MODULE"], np.int64),
                exposure=np.asarray(d["EXPOSURE"], np.float64),
                counts=np.asarray(d["COUNTS"], np.int64),
                reference=np.asarray(d["REFRATE"], np.float64),
                telescope=str(hdul[0].header.get("TELESCOP", "SVOM")),
                instrument=str(hdul[0].header.get("INSTRUME", "ECLAIRS")),
            )
        except KeyError as exc:
            raise InputDataError(f"{p}: DTRATES lacks a column ({exc})") from None


# --------------------------------------------------------------------------- BADPIX
@dataclass(frozen=True)
class BadPixel:
    """One flagged pixel.

    Attributes
    ----------
    y, z
        Pixel indices.
    kind
        ``DEAD``, ``NOISY`` or ``INTERMIT``.
    onset
        Mission time it turned bad (NaN: already bad at the start of the period).
    duty_cycle
        Fraction of the observed time it was bad (1 for a pixel bad since its onset).
    significance
        Significance of the flag (Gaussian sigma equivalent).
    excess_rate
        Extra rate (counts/s) while bad (negative for a dead pixel: the missing rate).
    """

    y: int
    z: int
    kind: str
    onset: float
    duty_cycle: float
    significance: float
    excess_rate: float


@dataclass(frozen=True)
class BadPixelTable:
    """The flagged pixels of a plane (what a BADPIX file of this flow holds)."""

    shape: tuple[int, int]
    pixels: tuple[BadPixel, ...]

    def to_pixel_map(self) -> PixelMap:
        """Return the dead/noisy map the analysis uses (intermittent pixels count as noisy)."""
        dead = np.zeros(self.shape, bool)
        noisy = np.zeros(self.shape, bool)
        for p in self.pixels:
            (dead if CLASS_STATUS[p.kind] == "DEAD" else noisy)[p.y, p.z] = True
        return PixelMap(dead=dead, noisy=noisy & ~dead)

    def of_kind(self, kind: str) -> tuple[BadPixel, ...]:
        """Return the pixels of one class."""
        return tuple(p for p in self.pixels if p.kind == kind)


def badpix_hdus(
    table: BadPixelTable, *, telescope: str, instrument: str
) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Return the HDUs of a BADPIX file (readable by ``read_badpix``, with the extra columns)."""
    px = table.pixels
    unknown = sorted({p.kind for p in px} - set(CLASS_STATUS))
    if unknown:
        raise ValueError(f"unknown pixel classes {unknown}")
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("Y", "I", array=np.array([p.y for p in px], np.int16)),
            fits.Column("Z", "I", array=np.array([p.z for p in px], np.int16)),
            fits.Column("STATUS", "5A", array=np.array([CLASS_STATUS[p.kind] for p in px], "U5")),
            fits.Column("CLASS", "8A", array=np.array([p.kind for p in px], "U8")),
            fits.Column("ONSET", "D", unit="s", array=np.array([p.onset for p in px], float)),
            fits.Column("DUTYCYC", "E", array=np.array([p.duty_cycle for p in px], float)),
            fits.Column("SIGNIF", "E", array=np.array([p.significance for p in px], float)),
            fits.Column(
                "EXCESS", "E", unit="count/s", array=np.array([p.excess_rate for p in px], float)
            ),
        ],
        name="BADPIX",
    )
    ny, nz = table.shape
    hdu.header["PLANE_NY"] = (ny, "pixels along Y")
    hdu.header["PLANE_NZ"] = (nz, "pixels along Z")
    hdu.header["NDEAD"] = (len(table.of_kind("DEAD")), "dead pixels")
    hdu.header["NNOISY"] = (len(table.of_kind("NOISY")), "noisy pixels")
    hdu.header["NINTERM"] = (len(table.of_kind("INTERMIT")), "intermittent pixels (STATUS NOISY)")
    hdu.header["COMMENT"] = (
        "DEAD: records nothing; NOISY: spurious rate; CLASS INTERMIT: bad part of the time"
    )
    hdu.header["COMMENT"] = "ONSET: mission time the pixel turned bad (NaN: before the period)"
    return [_primary("BADPIX", telescope, instrument), hdu]


def read_bad_pixel_table(path: str | Path) -> BadPixelTable:
    """Read a BADPIX file with its classes (a plain BADPIX file: DEAD and NOISY only)."""
    p = Path(path)
    with _open(p, "BADPIX") as hdul:
        h = hdul["BADPIX"].header
        d = hdul["BADPIX"].data
        names = {c.upper() for c in d.columns.names}
        try:
            shape = (int(h["PLANE_NY"]), int(h["PLANE_NZ"]))
        except KeyError as exc:
            raise InputDataError(f"{p}: BADPIX needs PLANE_NY and PLANE_NZ") from exc
        n = len(d)

        def col(name: str, default: float) -> NDArray[np.float64]:
            return np.asarray(d[name], float) if name in names else np.full(n, default)

        kinds = (
            np.char.strip(np.asarray(d["CLASS"]).astype(str))
            if "CLASS" in names
            else np.char.strip(np.asarray(d["STATUS"]).astype(str))
        )
        onset, duty = col("ONSET", np.nan), col("DUTYCYC", 1.0)
        sig, excess = col("SIGNIF", np.nan), col("EXCESS", np.nan)
        pixels = tuple(
            BadPixel(
                int(d["Y"][i]), int(d["Z"][i]), str(kinds[i]), float(onset[i]),
                float(duty[i]), float(sig[i]), float(excess[i]),
            )
            for i in range(n)
        )  # fmt: skip
    unknown = sorted({q.kind for q in pixels} - set(CLASS_STATUS))
    if unknown:
        raise InputDataError(f"{p}: unknown pixel classes {unknown}")
    return BadPixelTable(shape=shape, pixels=pixels)


# --------------------------------------------------------------------------- DEADTIME
@dataclass(frozen=True)
class DeadTimeFit:
    """Dead time fitted per module (non-paralyzable or paralyzable).

    Attributes
    ----------
    tau, tau_err
        Dead time per recorded event (s) and its 1-sigma error, per module.
    rate0
        Fitted true rate (counts/s) at reference rate 1, per module.
    chi2, ndof
        Pearson chi-square of the fit and its degrees of freedom, per module.
    modules
        Module index of each row.
    n_modules
        Modules of the plane (the plane-equivalent dead time divides by it).
    model, delta_deviance, model_decided, tau_by_model
        The model of ``tau`` (``NONPARALYZABLE``/``PARALYZABLE``), the summed deviance
        difference non-paralyzable minus paralyzable (the likelihood-ratio test between
        them), whether it decided, and each model's dead times.
    file_plane_dead_time
        The file's ``DEADDEF`` when it has no module rows (a per-detector DEADTIME file, such
        as a simulator's): the only dead time it gives, what the analyses use.
    """

    modules: NDArray[np.int64]
    tau: NDArray[np.float64]
    tau_err: NDArray[np.float64]
    rate0: NDArray[np.float64]
    chi2: NDArray[np.float64]
    ndof: NDArray[np.int64]
    n_modules: int
    file_plane_dead_time: float | None = None
    model: str = "NONPARALYZABLE"
    delta_deviance: float = float("nan")
    model_decided: bool | None = None
    tau_by_model: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)

    @property
    def plane_equivalent(self) -> float:
        """Per-event dead time of the whole plane under even illumination (mean tau / modules).

        With the modules dead independently, the plane's dead fraction is
        ``sum_m R_m tau_m / n_modules`` for a plane rate spread evenly; the analyses, which
        treat the plane as one detector (``DeadTime.of("ECLAIRS")``), use this number.
        A file without module rows gives its ``DEADDEF``.
        """
        if self.tau.size == 0 and self.file_plane_dead_time is not None:
            return float(self.file_plane_dead_time)
        return float(np.mean(self.tau) / max(self.n_modules, 1))


def dead_time_hdus(
    fit: DeadTimeFit, *, telescope: str, instrument: str
) -> list[fits.PrimaryHDU | fits.BinTableHDU]:
    """Return the HDUs of a DEADTIME file (readable by ``read_dead_time``, with fit columns)."""
    names = np.array([module_name(m) for m in fit.modules], dtype="U6")
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("DETNAM", "6A", array=names),
            fits.Column("DEADTIME", "D", unit="s", array=fit.tau),
            fits.Column("DT_ERR", "D", unit="s", array=fit.tau_err),
            fits.Column("RATE0", "D", unit="count/s", array=fit.rate0),
            fits.Column("CHI2", "D", array=fit.chi2),
            fits.Column("NDOF", "J", array=fit.ndof),
            *(
                fits.Column(f"DT_{m[:3]}", "D", unit="s", array=np.asarray(v, np.float64))
                for m, v in fit.tau_by_model.items()
            ),
        ],
        name="DEADTIME",
    )
    hdu.header["DEADDEF"] = (fit.plane_equivalent, "[s] plane: mean module dead time / modules")
    hdu.header["DEADTYPE"] = (fit.model, "dead-time model of DEADTIME")
    hdu.header["NMODULES"] = (fit.n_modules, "modules of the plane")
    if np.isfinite(fit.delta_deviance):
        hdu.header["DELTADEV"] = (fit.delta_deviance, "deviance nonparalyzable - paralyzable")
    if fit.model_decided is not None:
        hdu.header["MODELDEC"] = (fit.model_decided, "the likelihood ratio chose the model")
    return [_primary("DEADTIME", telescope, instrument), hdu]


# --------------------------------------------------------------------------- UNIFMAP
@dataclass(frozen=True)
class UniformityMap:
    """Relative efficiency of every pixel (mean 1 over the measured ones) with its error."""

    efficiency: NDArray[np.float64]
    error: NDArray[np.float64]

    def __post_init__(self) -> None:
        if self.efficiency.shape != self.error.shape or self.efficiency.ndim != 2:
            raise InputDataError("uniformity map: EFFIC and EFFERR must be 2-d of one shape")

    @property
    def measured(self) -> NDArray[np.bool_]:
        """Pixels with a finite efficiency."""
        return np.asarray(np.isfinite(self.efficiency))


def uniformity_hdus(
    umap: UniformityMap,
    *,
    telescope: str,
    instrument: str,
    cards: Mapping[str, tuple[object, str]] | None = None,
) -> list[fits.PrimaryHDU | fits.ImageHDU]:
    """Return the HDUs of a UNIFMAP file."""
    prim = _primary("UNIFMAP", telescope, instrument)
    for k, (v, c) in (cards or {}).items():
        prim.header[k] = (v, c)
    eff = fits.ImageHDU(np.asarray(umap.efficiency, np.float64), name="EFFIC")
    eff.header["BUNIT"] = ("", "relative efficiency (mean 1 over measured pixels)")
    err = fits.ImageHDU(np.asarray(umap.error, np.float64), name="EFFERR")
    return [prim, eff, err]


def read_uniformity(path: str | Path) -> UniformityMap:
    """Load a ``UNIFMAP`` calibration file (CALDB loader)."""
    p = Path(path)
    with _open(p, "EFFIC") as hdul:
        if "EFFERR" not in hdul:
            raise InputDataError(f"{p}: no EFFERR extension (not a UNIFMAP file)")
        return UniformityMap(
            efficiency=np.asarray(hdul["EFFIC"].data, np.float64),
            error=np.asarray(hdul["EFFERR"].data, np.float64),
        )


def module_map(shape: tuple[int, int], module_shape: tuple[int, int]) -> NDArray[np.int64]:
    """Return the module index of every pixel (modules numbered along Z first).

    ``module_shape`` is the pixels of one module along Y and Z (ECLAIRs: 8 x 4, the
    instrument file's ``detector_plane.module_shape``).
    """
    ny, nz = shape
    my, mz = module_shape
    if ny % my or nz % mz:
        raise InputDataError(f"a {shape} plane is not tiled by {module_shape} modules")
    iy, iz = np.indices(shape)
    return np.asarray((iy // my) * (nz // mz) + iz // mz, dtype=np.int64)


def read_dead_time_fit(path: str | Path) -> DeadTimeFit:
    """Read a DEADTIME file into a module table (a plain DEADTIME file: NaN errors and chi2).

    Rows whose ``DETNAM`` is not a module name (``MODnnn``) are ignored; a file without any
    module row gives an empty table with ``DEADDEF`` kept as the only dead time known
    (``file_plane_dead_time``, what ``plane_equivalent`` then returns).
    """
    p = Path(path)
    with _open(p, "DEADTIME") as hdul:
        h = hdul["DEADTIME"].header
        d = hdul["DEADTIME"].data
        names = {c.upper() for c in d.columns.names}
        det = [str(n).strip().upper() for n in d["DETNAM"]]
        rows = [i for i, n in enumerate(det) if n.startswith("MOD") and n[3:].isdigit()]

        def col(name: str) -> NDArray[np.float64]:
            if name not in names:
                return np.full(len(rows), np.nan)
            return np.asarray(d[name], np.float64)[rows]

        tau = np.asarray(d["DEADTIME"], np.float64)[rows]
        n_mod = int(h.get("NMODULES", max(len(rows), 1)))
        return DeadTimeFit(
            modules=np.array([int(det[i][3:]) for i in rows], np.int64),
            tau=tau,
            tau_err=col("DT_ERR"),
            rate0=col("RATE0"),
            chi2=col("CHI2"),
            ndof=np.nan_to_num(col("NDOF"), nan=0.0).astype(np.int64),
            n_modules=n_mod,
            file_plane_dead_time=float(h.get("DEADDEF", 0.0)),
            model=str(h.get("DEADTYPE", "NONPARALYZABLE")).strip().upper(),
            delta_deviance=float(h.get("DELTADEV", float("nan"))),
            model_decided=bool(h["MODELDEC"]) if "MODELDEC" in h else None,
        )
