"""CALDB files of the burst instruments (ECLAIRs, GRM): formats, readers and writers.

Four code names, each a FITS file with a primary header naming its telescope, instrument and
code (``CCNM0001``) and one data extension:

* ``EBOUNDS``: the OGIP ``EBOUNDS`` table (``CHANNEL``, ``E_MIN``, ``E_MAX`` in keV) that turns
  PI channels into energies;
* ``BADPIX``: ``BADPIX`` table of pixels (``Y``, ``Z``) with their ``STATUS`` (``DEAD``:
  switched off, records nothing; ``NOISY``: records a spurious rate); ``PLANE_NY``/``PLANE_NZ``
  give the plane's shape;
* ``DEADTIME``: ``DEADTIME`` table (``DETNAM``, ``DEADTIME`` in s per recorded event), with
  ``DEADDEF`` for detectors not listed;
* ``RSPPAR``: the parameters of an instrument's response model; ``RSPMODEL`` names the model
  (``NAI_SCINTILLATOR`` for the GRM, ``CDTE_PLANE`` for ECLAIRs). Numbers are stored in
  double-precision table columns so that a model read back computes exactly the same
  response as the one written.

The simulator writes these files with the true values it simulated and registers them in the
CALDB; the analysis loads them through :mod:`svomflow.calibration.codes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.instruments.channels import EnergyBounds
from svomflow.instruments.dead_time import DeadTime
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.instruments.grm_response import GRMGeometry, GRMResponseModel
from svomflow.instruments.pixels import PixelMap
from svomflow.products.ogip import MALFORMED_FILE_ERRORS, ebounds_hdu, primary_hdu, write_hdulist

__all__ = [
    "read_badpix",
    "read_dead_time",
    "read_ebounds",
    "read_ebounds_hdu",
    "read_response_model",
    "write_badpix",
    "write_dead_time",
    "write_ebounds",
    "write_response_model",
]

ResponseModel = GRMResponseModel | EclairsResponse


def _primary(code: str, telescope: str, instrument: str) -> fits.PrimaryHDU:
    return primary_hdu(
        telescope=telescope,
        instrument=instrument,
        extra=[("CCNM0001", code, "calibration code name")],
    )


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
        raise InputDataError(f"{path}: no {extname} extension (not a {extname} calibration file)")
    return hdul


# --------------------------------------------------------------------------- EBOUNDS
def write_ebounds(
    path: str | Path, bounds: EnergyBounds, *, telescope: str, instrument: str
) -> Path:
    """Write an ``EBOUNDS`` calibration file."""
    eb = ebounds_hdu(
        bounds.e_min,
        bounds.e_max,
        telescope=telescope,
        instrument=instrument,
        first_channel=bounds.first_channel,
    )
    return write_hdulist([_primary("EBOUNDS", telescope, instrument), eb], path)


def read_ebounds_hdu(hdu: fits.BinTableHDU) -> EnergyBounds:
    """Read an OGIP EBOUNDS extension (of a calibration, event or response file)."""
    d = hdu.data
    ch = np.asarray(d["CHANNEL"], dtype=np.int64)
    if ch.size and np.any(np.diff(ch) != 1):
        raise InputDataError("EBOUNDS channels are not consecutive")
    return EnergyBounds(
        first_channel=int(ch[0]) if ch.size else 0,
        e_min=np.asarray(d["E_MIN"], dtype=np.float64),
        e_max=np.asarray(d["E_MAX"], dtype=np.float64),
    )


def read_ebounds(path: str | Path) -> EnergyBounds:
    """Load an ``EBOUNDS`` calibration file (CALDB loader)."""
    with _open(Path(path), "EBOUNDS") as hdul:
        return read_ebounds_hdu(hdul["EBOUNDS"])


# --------------------------------------------------------------------------- BADPIX
def write_badpix(path: str | Path, pixels: PixelMap, *, telescope: str, instrument: str) -> Path:
    """Write a ``BADPIX`` calibration file (dead and noisy pixels)."""
    dead = np.argwhere(pixels.dead)
    noisy = np.argwhere(pixels.noisy & ~pixels.dead)
    yz = np.concatenate([dead, noisy]).astype(np.int16).reshape(-1, 2)
    status = np.array(["DEAD"] * len(dead) + ["NOISY"] * len(noisy), dtype="U5")
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("Y", "I", array=yz[:, 0]),
            fits.Column("Z", "I", array=yz[:, 1]),
            fits.Column("STATUS", "5A", array=status),
        ],
        name="BADPIX",
    )
    ny, nz = pixels.shape
    hdu.header["PLANE_NY"] = (ny, "pixels along Y")
    hdu.header["PLANE_NZ"] = (nz, "pixels along Z")
    hdu.header["COMMENT"] = "DEAD: switched off (no events); NOISY: spurious rate near threshold"
    return write_hdulist([_primary("BADPIX", telescope, instrument), hdu], path)


def read_badpix(path: str | Path) -> PixelMap:
    """Load a ``BADPIX`` calibration file (CALDB loader)."""
    p = Path(path)
    with _open(p, "BADPIX") as hdul:
        h = hdul["BADPIX"].header
        d = hdul["BADPIX"].data
        try:
            shape = (int(h["PLANE_NY"]), int(h["PLANE_NZ"]))
        except KeyError as exc:
            raise InputDataError(f"{p}: BADPIX needs PLANE_NY and PLANE_NZ") from exc
        dead = np.zeros(shape, bool)
        noisy = np.zeros(shape, bool)
        y = np.asarray(d["Y"], dtype=np.int64)
        z = np.asarray(d["Z"], dtype=np.int64)
        status = np.char.strip(np.asarray(d["STATUS"]).astype(str))
        if y.size and (y.min() < 0 or z.min() < 0 or y.max() >= shape[0] or z.max() >= shape[1]):
            raise InputDataError(f"{p}: a bad pixel lies outside the {shape} plane")
        unknown = sorted(set(status.tolist()) - {"DEAD", "NOISY"})
        if unknown:
            raise InputDataError(f"{p}: unknown pixel STATUS {unknown}")
        dead[y[status == "DEAD"], z[status == "DEAD"]] = True
        noisy[y[status == "NOISY"], z[status == "NOISY"]] = True
    return PixelMap(dead=dead, noisy=noisy)


# --------------------------------------------------------------------------- DEADTIME
def write_dead_time(
    path: str | Path, dead_time: DeadTime, *, telescope: str, instrument: str
) -> Path:
    """Write a ``DEADTIME`` calibration file."""
    names = list(dead_time.by_detector)
    width = max([len(n) for n in names] + [1])
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("DETNAM", f"{width}A", array=np.array(names, dtype=f"U{width}")),
            fits.Column(
                "DEADTIME",
                "D",
                unit="s",
                array=np.array([dead_time.by_detector[n] for n in names], dtype=np.float64),
            ),
        ],
        name="DEADTIME",
    )
    hdu.header["DEADDEF"] = (float(dead_time.default), "[s] dead time of detectors not listed")
    hdu.header["DEADTYPE"] = ("NONPARALYZABLE", "dead-time model")
    return write_hdulist([_primary("DEADTIME", telescope, instrument), hdu], path)


def read_dead_time(path: str | Path) -> DeadTime:
    """Load a ``DEADTIME`` calibration file (CALDB loader)."""
    with _open(Path(path), "DEADTIME") as hdul:
        h = hdul["DEADTIME"].header
        d = hdul["DEADTIME"].data
        names = [str(n).strip() for n in d["DETNAM"]]
        values = np.asarray(d["DEADTIME"], dtype=np.float64)
        if np.any(values < 0):
            raise InputDataError(f"{path}: negative dead time")
        return DeadTime(
            by_detector=dict(zip(names, values.tolist(), strict=True)),
            default=float(h.get("DEADDEF", 0.0)),
        )


# --------------------------------------------------------------------------- RSPPAR
def _params_hdu(
    values: Mapping[str, float], units: Mapping[str, str] | None = None
) -> fits.BinTableHDU:
    units = units or {}
    return fits.BinTableHDU.from_columns(
        [
            fits.Column(k, "D", unit=units.get(k), array=np.array([float(v)]))
            for k, v in values.items()
        ],
        name="PARAMS",
    )


def _grm_hdus(model: GRMResponseModel) -> tuple[str, list[fits.BinTableHDU]]:
    g = model.geometry
    params = _params_hdu(
        {
            "AREA": g.area_cm2,
            "THICK": g.thickness_cm,
            "DENSITY": g.density_g_cm3,
            "ANGEXP": g.angular_exponent,
            "FWHM60": g.fwhm_at_60,
            "RESEXP": g.resolution_exponent,
        },
        {"AREA": "cm**2", "THICK": "cm", "DENSITY": "g/cm**3"},
    )
    names = list(model.axes)
    axes = np.array([model.axes[n] for n in names], dtype=np.float64).reshape(-1, 3)
    width = max([len(n) for n in names] + [1])
    det = fits.BinTableHDU.from_columns(
        [
            fits.Column("DETNAM", f"{width}A", array=np.array(names, dtype=f"U{width}")),
            fits.Column("AXIS", "3D", array=axes),
        ],
        name="DETECTORS",
    )
    det.header["COMMENT"] = "AXIS: detector axis, unit vector in the spacecraft frame"
    edges = fits.BinTableHDU.from_columns(
        [fits.Column("E_EDGE", "D", unit="keV", array=np.asarray(g.channel_edges_kev))],
        name="CHANEDGE",
    )
    return "NAI_SCINTILLATOR", [params, det, edges]


def _eclairs_hdus(model: EclairsResponse) -> tuple[str, list[fits.BinTableHDU]]:
    params = _params_hdu(
        {
            "FWHMNOIS": model.fwhm_noise_kev,
            "FWHMSLOP": model.fwhm_slope_kev,
            "THRESH": model.threshold_kev,
            "EMINCHAN": model.e_min_kev,
            "CHANWID": model.channel_width_kev,
            "NCHAN": float(model.n_channels),
            "TIMERES": model.time_resolution_s,
        },
        {
            "FWHMNOIS": "keV",
            "FWHMSLOP": "keV",
            "THRESH": "keV",
            "EMINCHAN": "keV",
            "CHANWID": "keV",
            "TIMERES": "s",
        },
    )
    eff = fits.BinTableHDU.from_columns(
        [
            fits.Column("ENERGY", "D", unit="keV", array=np.asarray(model.eff_energy_kev)),
            fits.Column("EFFIC", "D", array=np.asarray(model.eff_value)),
        ],
        name="EFFICIENCY",
    )
    return "CDTE_PLANE", [params, eff]


def write_response_model(
    path: str | Path, model: ResponseModel, *, telescope: str, instrument: str
) -> Path:
    """Write an ``RSPPAR`` calibration file (a GRM or an ECLAIRs response model)."""
    kind, hdus = _grm_hdus(model) if isinstance(model, GRMResponseModel) else _eclairs_hdus(model)
    prim = _primary("RSPPAR", telescope, instrument)
    prim.header["RSPMODEL"] = (kind, "response model these parameters describe")
    return write_hdulist([prim, *hdus], path)


def _param(hdul: fits.HDUList, key: str) -> float:
    return float(hdul["PARAMS"].data[key][0])


def _read_grm(hdul: fits.HDUList) -> GRMResponseModel:
    det = hdul["DETECTORS"].data
    axes = {
        str(n).strip(): np.asarray(a, dtype=np.float64)
        for n, a in zip(det["DETNAM"], det["AXIS"], strict=True)
    }
    geometry = GRMGeometry(
        area_cm2=_param(hdul, "AREA"),
        thickness_cm=_param(hdul, "THICK"),
        density_g_cm3=_param(hdul, "DENSITY"),
        angular_exponent=_param(hdul, "ANGEXP"),
        fwhm_at_60=_param(hdul, "FWHM60"),
        resolution_exponent=_param(hdul, "RESEXP"),
        channel_edges_kev=tuple(np.asarray(hdul["CHANEDGE"].data["E_EDGE"], np.float64).tolist()),
    )
    return GRMResponseModel(geometry, axes)


def _read_eclairs(hdul: fits.HDUList) -> EclairsResponse:
    eff = hdul["EFFICIENCY"].data
    return EclairsResponse(
        eff_energy_kev=np.asarray(eff["ENERGY"], dtype=np.float64),
        eff_value=np.asarray(eff["EFFIC"], dtype=np.float64),
        fwhm_noise_kev=_param(hdul, "FWHMNOIS"),
        fwhm_slope_kev=_param(hdul, "FWHMSLOP"),
        threshold_kev=_param(hdul, "THRESH"),
        e_min_kev=_param(hdul, "EMINCHAN"),
        channel_width_kev=_param(hdul, "CHANWID"),
        n_channels=int(_param(hdul, "NCHAN")),
        time_resolution_s=_param(hdul, "TIMERES"),
    )


_MODELS: dict[str, Callable[[fits.HDUList], ResponseModel]] = {
    "NAI_SCINTILLATOR": _read_grm,
    "CDTE_PLANE": _read_eclairs,
}


def read_response_model(path: str | Path) -> ResponseModel:
    """Load an ``RSPPAR`` calibration file into its response model (CALDB loader).

    Raises
    ------
    InputDataError
        For an unreadable file, a missing table or an unknown ``RSPMODEL``.
    """
    p = Path(path)
    with _open(p, "PARAMS") as hdul:
        kind = str(hdul[0].header.get("RSPMODEL", "")).strip().upper()
        if kind not in _MODELS:
            raise InputDataError(f"{p}: RSPMODEL {kind!r} is none of {', '.join(sorted(_MODELS))}")
        try:
            return _MODELS[kind](hdul)
        except KeyError as exc:
            raise InputDataError(f"{p}: {kind} parameters incomplete ({exc})") from None
