"""ECLAIRs instrument-centre calibration files: formats, data objects, readers and writers.

Three CALDB codes and one input format, each a FITS file whose primary header names its
telescope, instrument and code (``CCNM0001``):

* ``PIXGAIN``: table ``PIXGAIN``, one row per pixel (``Y``, ``Z``, ``MODULE``), the linear
  channel-to-energy relation ``E [keV] = GAIN * (ADC + 0.5) + OFFSET`` of its raw ADC
  channel (``OFFSET``: the energy of the lower edge of channel 0), their errors and
  covariance (``GO_COV``), ``NLINES`` (lines used) and ``FALLBACK``/``REASON`` (the module's values were used,
  and why);
* ``BANDTAB``: table ``BANDTAB``, per pixel the ADC channel bounds ``CHAN_LO``/``CHAN_HI``
  (vectors, one element per band) of the on-board energy bands; table ``BANDS`` names the
  bands and their energies (``NAME``, ``E_MIN``, ``E_MAX`` keV);
* ``SBNTHR``: table ``SBNTHR``, per ASIC channel (``ASIC``, ``CHANNEL``; pixel ``Y``, ``Z``)
  the low-threshold DAC setting ``DAC``, the noise edge measured with the previous setting
  ``EDGE_KEV``, the threshold expected with the new one ``PRED_KEV`` and ``TARGET_KEV``;
* calibration spectra (input, ``EICSPEC``): image ``SPECTRA`` (int32, ``[Y, Z, ADC]``) of
  counts per pixel and raw ADC channel accumulated over ``EXPOSURE`` s from ``DATE-OBS``, and
  image ``DAC`` (the threshold settings during the accumulation).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits
from numpy.typing import NDArray
from svomflow.errors import InputDataError
from svomflow.products.ogip import MALFORMED_FILE_ERRORS, primary_hdu, write_hdulist

__all__ = [
    "BandTable",
    "PixelGain",
    "PixelSpectra",
    "ThresholdTable",
    "band_table_hdus",
    "pixel_gain_hdus",
    "read_band_table",
    "read_pixel_gain",
    "read_pixel_spectra",
    "read_threshold_table",
    "threshold_table_hdus",
    "write_band_table",
    "write_pixel_gain",
    "write_pixel_spectra",
    "write_threshold_table",
]


@dataclass(frozen=True)
class PixelSpectra:
    """Counts per pixel and raw ADC channel accumulated over an exposure (calibration data).

    Attributes
    ----------
    counts
        ``[Y, Z, ADC]`` counts.
    start
        Start of the accumulation (UTC).
    exposure_s
        Accumulation time (s).
    dac
        ``[Y, Z]`` low-threshold DAC settings during the accumulation.
    mode
        ``ground`` (calibration sources) or ``flight`` (background lines).
    """

    counts: NDArray[np.int32]
    start: _dt.datetime
    exposure_s: float
    dac: NDArray[np.int16]
    mode: str = "ground"

    @property
    def shape(self) -> tuple[int, int]:
        """Plane shape ``(ny, nz)``."""
        return int(self.counts.shape[0]), int(self.counts.shape[1])


@dataclass(frozen=True)
class PixelGain:
    """Per-pixel linear channel-to-energy relation ``E = gain * x + offset`` (keV).

    ``x`` is the continuous ADC coordinate: channel ``i`` spans ``[i, i + 1)``, so an event in
    channel ``i`` has on average the energy ``gain * (i + 0.5) + offset``. All arrays are
    ``[Y, Z]``; ``reason`` is empty for a pixel fitted on its own lines.
    """

    gain: NDArray[np.float64]
    offset: NDArray[np.float64]
    gain_err: NDArray[np.float64]
    offset_err: NDArray[np.float64]
    n_lines: NDArray[np.int16]
    fallback: NDArray[np.bool_]
    reason: NDArray[np.str_]
    module: NDArray[np.int32]
    gain_offset_cov: NDArray[np.float64] | None = None

    def energy_error(self, energy_kev: float) -> NDArray[np.float64]:
        """Return the ``[Y, Z]`` error (keV, 1 sigma) of the energy of a line at ``energy_kev``.

        From the gain and offset errors and their covariance (taken as 0 when unknown).
        """
        x = self.channel(energy_kev)
        cov = 0.0 if self.gain_offset_cov is None else self.gain_offset_cov
        var = (x * self.gain_err) ** 2 + self.offset_err**2 + 2.0 * x * cov
        return np.asarray(np.sqrt(np.maximum(var, 0.0)), dtype=np.float64)

    def energy(
        self, y: NDArray[np.integer], z: NDArray[np.integer], adc: NDArray[np.floating]
    ) -> NDArray[np.float64]:
        """Return the energy (keV) of events from their pixel and raw ADC channel (its middle)."""
        x = np.asarray(adc, dtype=np.float64) + 0.5
        return np.asarray(self.gain[y, z] * x + self.offset[y, z], dtype=np.float64)

    def channel(self, energy_kev: float | NDArray[np.floating]) -> NDArray[np.float64]:
        """Return ``[Y, Z]`` (or ``[Y, Z, n]``) continuous ADC coordinates of energies."""
        e = np.asarray(energy_kev, dtype=np.float64)
        if e.ndim == 0:
            return np.asarray((e - self.offset) / self.gain)
        return np.asarray((e[None, None, :] - self.offset[..., None]) / self.gain[..., None])


@dataclass(frozen=True)
class BandTable:
    """On-board energy bands in ADC channels, per pixel.

    Attributes
    ----------
    names, e_min, e_max
        The bands (keV).
    chan_lo, chan_hi
        ``[Y, Z, band]`` first and last ADC channel of each band (inclusive).
    """

    names: tuple[str, ...]
    e_min: NDArray[np.float64]
    e_max: NDArray[np.float64]
    chan_lo: NDArray[np.int16]
    chan_hi: NDArray[np.int16]


@dataclass(frozen=True)
class ThresholdTable:
    """Low-threshold (SBN) settings per ASIC channel; arrays are ``[Y, Z]``."""

    asic: NDArray[np.int32]
    channel: NDArray[np.int32]
    dac: NDArray[np.int16]
    edge_kev: NDArray[np.float64]
    predicted_kev: NDArray[np.float64]
    target_kev: float
    flag: NDArray[np.str_]


def _primary(
    code: str, telescope: str, instrument: str, extra: list[tuple[str, object, str]]
) -> fits.PrimaryHDU:
    return primary_hdu(
        telescope=telescope,
        instrument=instrument,
        extra=[("CCNM0001", code, "calibration code name"), *extra],
    )


def _pixel_columns(ny: int, nz: int) -> tuple[NDArray[np.int16], NDArray[np.int16]]:
    yy, zz = np.meshgrid(np.arange(ny), np.arange(nz), indexing="ij")
    return yy.ravel().astype(np.int16), zz.ravel().astype(np.int16)


def _open(path: str | Path, extname: str) -> fits.HDUList:
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"calibration file not found: {p}")
    try:
        hdul = fits.open(p, memmap=False)
        hdul[extname]
    except MALFORMED_FILE_ERRORS as exc:
        raise InputDataError(
            f"{p}: not a readable file with a {extname} extension ({exc})"
        ) from None
    return hdul


def _grid(data: fits.FITS_rec, name: str, ny: int, nz: int) -> NDArray[np.generic]:
    out = np.zeros((ny, nz, *np.asarray(data[name]).shape[1:]), dtype=np.asarray(data[name]).dtype)
    out[np.asarray(data["Y"], dtype=int), np.asarray(data["Z"], dtype=int)] = data[name]
    return out


def write_pixel_spectra(
    path: str | Path, spectra: PixelSpectra, *, telescope: str, instrument: str
) -> Path:
    """Write calibration spectra (``SPECTRA`` and ``DAC`` images)."""
    head = primary_hdu(
        telescope=telescope,
        instrument=instrument,
        extra=[
            (
                "DATE-OBS",
                spectra.start.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "start (UTC)",
            ),
            ("EXPOSURE", float(spectra.exposure_s), "[s] accumulation time"),
            ("CALMODE", spectra.mode, "ground (sources) or flight (bkg lines)"),
        ],
    )
    sp = fits.ImageHDU(np.asarray(spectra.counts, dtype=np.int32), name="SPECTRA")
    sp.header["BUNIT"] = "count"
    dac = fits.ImageHDU(np.asarray(spectra.dac, dtype=np.int16), name="DAC")
    return write_hdulist([head, sp, dac], path)


def read_pixel_spectra(path: str | Path) -> PixelSpectra:
    """Read calibration spectra written by :func:`write_pixel_spectra`.

    Raises
    ------
    InputDataError
        For a missing or malformed file.
    """
    with _open(path, "SPECTRA") as h:
        try:
            counts = np.asarray(h["SPECTRA"].data, dtype=np.int32)
            dac = np.asarray(h["DAC"].data, dtype=np.int16)
            start = _dt.datetime.fromisoformat(str(h[0].header["DATE-OBS"])).replace(tzinfo=_dt.UTC)
            exposure = float(h[0].header["EXPOSURE"])
            mode = str(h[0].header.get("CALMODE", "ground"))
        except (KeyError, ValueError, TypeError) as exc:
            raise InputDataError(f"{path}: malformed calibration spectra ({exc})") from None
    if counts.ndim != 3 or dac.shape != counts.shape[:2]:
        raise InputDataError(f"{path}: SPECTRA must be [Y, Z, ADC] and DAC [Y, Z]")
    return PixelSpectra(counts, start, exposure, dac, mode)


def write_pixel_gain(
    path: str | Path, table: PixelGain, *, telescope: str, instrument: str
) -> Path:
    """Write a ``PIXGAIN`` file."""
    return write_hdulist(pixel_gain_hdus(table, telescope=telescope, instrument=instrument), path)


def pixel_gain_hdus(table: PixelGain, *, telescope: str, instrument: str) -> list[Any]:
    """Return the HDUs of a ``PIXGAIN`` file."""
    ny, nz = table.gain.shape
    y, z = _pixel_columns(ny, nz)
    cols = [
        fits.Column("Y", "I", array=y),
        fits.Column("Z", "I", array=z),
        fits.Column("MODULE", "J", array=table.module.ravel()),
        fits.Column("GAIN", "D", unit="keV/chan", array=table.gain.ravel()),
        fits.Column("OFFSET", "D", unit="keV", array=table.offset.ravel()),
        fits.Column("GAIN_ERR", "D", unit="keV/chan", array=table.gain_err.ravel()),
        fits.Column("OFFSET_ERR", "D", unit="keV", array=table.offset_err.ravel()),
        fits.Column(
            "GO_COV",
            "D",
            unit="keV2/chan",
            array=(
                np.zeros(table.gain.size)
                if table.gain_offset_cov is None
                else table.gain_offset_cov.ravel()
            ),
        ),
        fits.Column("NLINES", "I", array=table.n_lines.ravel()),
        fits.Column("FALLBACK", "L", array=table.fallback.ravel()),
        fits.Column("REASON", "60A", array=np.array([str(r)[:60] for r in table.reason.ravel()])),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="PIXGAIN")
    hdu.header["PLANE_NY"] = ny
    hdu.header["PLANE_NZ"] = nz
    hdu.header["GAINMODL"] = ("E = GAIN * (ADC + 0.5) + OFFSET", "keV, per pixel")
    head = _primary("PIXGAIN", telescope, instrument, [])
    return [head, hdu]


def read_pixel_gain(path: str | Path) -> PixelGain:
    """Read a ``PIXGAIN`` file.

    Raises
    ------
    InputDataError
        For a missing or malformed file, or a non-positive gain.
    """
    with _open(path, "PIXGAIN") as h:
        hdu = h["PIXGAIN"]
        try:
            ny, nz = int(hdu.header["PLANE_NY"]), int(hdu.header["PLANE_NZ"])
            d = hdu.data
            out = PixelGain(
                gain=_grid(d, "GAIN", ny, nz).astype(np.float64),
                offset=_grid(d, "OFFSET", ny, nz).astype(np.float64),
                gain_err=_grid(d, "GAIN_ERR", ny, nz).astype(np.float64),
                offset_err=_grid(d, "OFFSET_ERR", ny, nz).astype(np.float64),
                n_lines=_grid(d, "NLINES", ny, nz).astype(np.int16),
                fallback=_grid(d, "FALLBACK", ny, nz).astype(bool),
                reason=_grid(d, "REASON", ny, nz).astype(str),
                module=_grid(d, "MODULE", ny, nz).astype(np.int32),
                gain_offset_cov=(
                    _grid(d, "GO_COV", ny, nz).astype(np.float64)
                    if "GO_COV" in d.columns.names
                    else None
                ),
            )
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InputDataError(f"{path}: malformed PIXGAIN table ({exc})") from None
    if not np.all(out.gain > 0):
        raise InputDataError(f"{path}: PIXGAIN has non-positive gains")
    return out


def write_band_table(
    path: str | Path, table: BandTable, *, telescope: str, instrument: str
) -> Path:
    """Write a ``BANDTAB`` file."""
    return write_hdulist(band_table_hdus(table, telescope=telescope, instrument=instrument), path)


def band_table_hdus(table: BandTable, *, telescope: str, instrument: str) -> list[Any]:
    """Return the HDUs of a ``BANDTAB`` file."""
    ny, nz, nb = table.chan_lo.shape
    y, z = _pixel_columns(ny, nz)
    pix = fits.BinTableHDU.from_columns(
        [
            fits.Column("Y", "I", array=y),
            fits.Column("Z", "I", array=z),
            fits.Column("CHAN_LO", f"{nb}I", array=table.chan_lo.reshape(-1, nb)),
            fits.Column("CHAN_HI", f"{nb}I", array=table.chan_hi.reshape(-1, nb)),
        ],
        name="BANDTAB",
    )
    pix.header["PLANE_NY"] = ny
    pix.header["PLANE_NZ"] = nz
    bands = fits.BinTableHDU.from_columns(
        [
            fits.Column("NAME", "16A", array=np.array(table.names)),
            fits.Column("E_MIN", "E", unit="keV", array=table.e_min),
            fits.Column("E_MAX", "E", unit="keV", array=table.e_max),
        ],
        name="BANDS",
    )
    return [_primary("BANDTAB", telescope, instrument, []), pix, bands]


def read_band_table(path: str | Path) -> BandTable:
    """Read a ``BANDTAB`` file."""
    with _open(path, "BANDTAB") as h:
        try:
            hdu = h["BANDTAB"]
            ny, nz = int(hdu.header["PLANE_NY"]), int(hdu.header["PLANE_NZ"])
            b = h["BANDS"].data
            return BandTable(
                names=tuple(str(n) for n in b["NAME"]),
                e_min=np.asarray(b["E_MIN"], dtype=np.float64),
                e_max=np.asarray(b["E_MAX"], dtype=np.float64),
                chan_lo=_grid(hdu.data, "CHAN_LO", ny, nz).astype(np.int16),
                chan_hi=_grid(hdu.data, "CHAN_HI", ny, nz).astype(np.int16),
            )
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InputDataError(f"{path}: malformed BANDTAB file ({exc})") from None


def write_threshold_table(
    path: str | Path, table: ThresholdTable, *, telescope: str, instrument: str
) -> Path:
    """Write an ``SBNTHR`` file."""
    return write_hdulist(
        threshold_table_hdus(table, telescope=telescope, instrument=instrument), path
    )


def threshold_table_hdus(table: ThresholdTable, *, telescope: str, instrument: str) -> list[Any]:
    """Return the HDUs of an ``SBNTHR`` file."""
    ny, nz = table.dac.shape
    y, z = _pixel_columns(ny, nz)
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column("ASIC", "J", array=table.asic.ravel()),
            fits.Column("CHANNEL", "J", array=table.channel.ravel()),
            fits.Column("Y", "I", array=y),
            fits.Column("Z", "I", array=z),
            fits.Column("DAC", "I", array=table.dac.ravel()),
            fits.Column("EDGE_KEV", "D", unit="keV", array=table.edge_kev.ravel()),
            fits.Column("PRED_KEV", "D", unit="keV", array=table.predicted_kev.ravel()),
            fits.Column("FLAG", "40A", array=np.array([str(f)[:40] for f in table.flag.ravel()])),
        ],
        name="SBNTHR",
    )
    hdu.header["PLANE_NY"] = ny
    hdu.header["PLANE_NZ"] = nz
    hdu.header["TARGET"] = (float(table.target_kev), "[keV] target low threshold")
    return [_primary("SBNTHR", telescope, instrument, []), hdu]


def read_threshold_table(path: str | Path) -> ThresholdTable:
    """Read an ``SBNTHR`` file."""
    with _open(path, "SBNTHR") as h:
        try:
            hdu = h["SBNTHR"]
            ny, nz = int(hdu.header["PLANE_NY"]), int(hdu.header["PLANE_NZ"])
            d = hdu.data
            return ThresholdTable(
                asic=_grid(d, "ASIC", ny, nz).astype(np.int32),
                channel=_grid(d, "CHANNEL", ny, nz).astype(np.int32),
                dac=_grid(d, "DAC", ny, nz).astype(np.int16),
                edge_kev=_grid(d, "EDGE_KEV", ny, nz).astype(np.float64),
                predicted_kev=_grid(d, "PRED_KEV", ny, nz).astype(np.float64),
                target_kev=float(hdu.header["TARGET"]),
                flag=_grid(d, "FLAG", ny, nz).astype(str),
            )
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise InputDataError(f"{path}: malformed SBNTHR file ({exc})") from None
