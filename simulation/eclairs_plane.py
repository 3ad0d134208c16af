"""The ECLAIRs detection plane for calibration: per-pixel gain/offset, thresholds, lines.

A :class:`PlaneTruth` is drawn once from a seed: the 80 x 80 CdTe pixels in modules of
8 x 4 (one 32-channel ASIC per module, an assumption), each pixel with its own gain
(keV per raw ADC channel) and offset (keV) that drift slowly and linearly over days, and a
low threshold set by its ASIC's baseline, the pixel's own scatter and the DAC setting of the
SBN table. :func:`simulate_spectra` accumulates the counts per pixel and ADC channel over an
exposure: calibration-source lines on the ground (241Am 59.54 keV, 109Cd 22.1 and 88.03
keV), fluorescence/activation lines of the instrumental background in flight (an assumption:
:data:`FLIGHT_LINES`), a continuum, and the electronic noise rising towards the threshold,
cut by the discriminator (an error-function edge). The resolution follows the instrument
file: FWHM^2 = noise^2 + c E with 1.6 keV at 60 keV.

Every random draw comes from the seed: the same seed gives the same plane and spectra.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import erfc, ndtr
from svomflow.config import load_instrument
from svomflow.products.eic_calibration_files import PixelGain, PixelSpectra
from svomflow.tasks.eic.gain import plane_layout

__all__ = [
    "FLIGHT_LINES",
    "GROUND_LINES",
    "Line",
    "PlaneModel",
    "PlaneTruth",
    "add_adc_column",
    "expected_spectra",
    "make_plane",
    "run_eclairs_plane",
    "simulate_spectra",
    "true_gain_table",
]


@dataclass(frozen=True)
class Line:
    """A line: energy (keV), counts per pixel per hour, and what it is."""

    energy_kev: float
    rate_per_hour: float
    label: str


#: Calibration sources on the ground (rates per pixel assumed for a source at ~1 m).
GROUND_LINES: tuple[Line, ...] = (
    Line(22.1, 900.0, "109Cd Ag K-alpha"),
    Line(59.54, 700.0, "241Am gamma"),
    Line(88.03, 200.0, "109Cd gamma"),
)
#: In-flight background lines: ASSUMED (CdTe fluorescence, lead/tungsten shield fluorescence,
#: an activation line); their strengths are assumptions, not flight measurements.
FLIGHT_LINES: tuple[Line, ...] = (
    Line(23.17, 40.0, "Cd K-alpha fluorescence (assumed)"),
    Line(27.47, 25.0, "Te K-alpha fluorescence (assumed)"),
    Line(59.32, 12.0, "W K-alpha1 shield fluorescence (assumed)"),
    Line(74.97, 30.0, "Pb K-alpha1 shield fluorescence (assumed)"),
    Line(84.94, 10.0, "Pb K-beta1 shield fluorescence (assumed)"),
)


@dataclass(frozen=True)
class PlaneModel:
    """How pixels scatter and drift, and what the spectra hold (every value an assumption).

    Attributes
    ----------
    gain_kev, gain_spread
        Mean gain (keV per ADC channel) and its relative pixel-to-pixel scatter (1 sigma).
    module_gain_spread
        Relative scatter of the module means (pixels of a module share part of their gain).
    offset_sigma_kev
        Pixel offsets (keV) scatter around 0 by this.
    gain_drift_per_day, gain_drift_sigma_per_day
        Relative gain drift per day: mean and pixel scatter.
    offset_drift_kev_per_day
        Offset drift (keV/day, pixel scatter around 0).
    n_adc
        ADC channels (the last one collects the overflow).
    noise_fwhm_kev, fwhm_at_60_kev
        Resolution: FWHM^2 = noise^2 + c E, with FWHM(60 keV) = ``fwhm_at_60_kev``.
    asic_threshold_kev, asic_threshold_sigma_kev, pixel_threshold_sigma_kev
        Threshold at DAC 0: ASIC baseline (mean, scatter) plus the pixel's own scatter.
    dac_step_kev
        Threshold step per DAC unit.
    threshold_width_kev
        Width (1 sigma) of the discriminator edge.
    noise_rate_per_hour, noise_scale_kev
        Electronic noise counts above the threshold: rate per pixel and e-folding energy.
    continuum_per_hour
        Continuum counts per pixel per hour between 4 and 150 keV (E^-1).
    """

    gain_kev: float = 0.16
    gain_spread: float = 0.03
    module_gain_spread: float = 0.02
    offset_sigma_kev: float = 0.6
    gain_drift_per_day: float = 1.0e-3
    gain_drift_sigma_per_day: float = 5.0e-4
    offset_drift_kev_per_day: float = 0.005
    n_adc: int = 1024
    noise_fwhm_kev: float = 0.8
    fwhm_at_60_kev: float = 1.6
    asic_threshold_kev: float = 1.5
    asic_threshold_sigma_kev: float = 0.4
    pixel_threshold_sigma_kev: float = 0.15
    dac_step_kev: float = 0.25
    threshold_width_kev: float = 0.15
    noise_rate_per_hour: float = 3000.0
    noise_scale_kev: float = 0.6
    continuum_per_hour: float = 300.0

    @classmethod
    def from_instrument(cls, name: str = "eclairs", **changes: float) -> PlaneModel:
        """Return the model with the resolution of the instrument file (and ``changes``)."""
        inst = load_instrument(name)
        base = {
            "noise_fwhm_kev": float(
                inst.get("detector_plane.energy_resolution_noise_fwhm_kev", 0.8)
            ),
            "fwhm_at_60_kev": float(
                inst.get("detector_plane.energy_resolution_fwhm_kev_at_60", 1.6)
            ),
        }
        return cls(**{**base, **changes})  # type: ignore[arg-type]

    def sigma_kev(self, energy: NDArray[np.floating] | float) -> NDArray[np.float64]:
        """Return the Gaussian width (keV, 1 sigma) of a line at ``energy``."""
        c = (self.fwhm_at_60_kev**2 - self.noise_fwhm_kev**2) / 60.0
        fwhm = np.sqrt(self.noise_fwhm_kev**2 + c * np.maximum(np.asarray(energy, float), 0.0))
        return np.asarray(fwhm / 2.3548, dtype=np.float64)


@dataclass
class PlaneTruth:
    """The true state of a simulated plane (arrays ``[Y, Z]``; day 0 = ``epoch``)."""

    model: PlaneModel
    epoch: _dt.datetime
    module: NDArray[np.int32]
    asic_channel: NDArray[np.int32]
    gain0: NDArray[np.float64]
    offset0: NDArray[np.float64]
    gain_rate: NDArray[np.float64]
    offset_rate: NDArray[np.float64]
    threshold0_kev: NDArray[np.float64]
    dac: NDArray[np.int16] = field(default_factory=lambda: np.zeros((0, 0), np.int16))

    def days(self, when: _dt.datetime) -> float:
        """Return the days since the epoch."""
        return (when - self.epoch).total_seconds() / 86400.0

    def gain(self, when: _dt.datetime) -> NDArray[np.float64]:
        """Return the true gains (keV per ADC channel) at ``when``."""
        return self.gain0 * (1.0 + self.gain_rate * self.days(when))

    def offset(self, when: _dt.datetime) -> NDArray[np.float64]:
        """Return the true offsets (keV) at ``when``."""
        return self.offset0 + self.offset_rate * self.days(when)

    def threshold_kev(self, dac: NDArray[np.integer] | None = None) -> NDArray[np.float64]:
        """Return the true low thresholds (keV) with DAC settings ``dac`` (default: current)."""
        d = self.dac if dac is None else dac
        return self.threshold0_kev + self.model.dac_step_kev * np.asarray(d, dtype=float)


def make_plane(
    seed: int,
    model: PlaneModel | None = None,
    *,
    epoch: _dt.datetime = _dt.datetime(2026, 1, 1, tzinfo=_dt.UTC),
    instrument: str = "eclairs",
    dac: int = 8,
) -> PlaneTruth:
    """Draw a plane: layout from the instrument file, gains, offsets, drifts, thresholds."""
    model = model or PlaneModel.from_instrument(instrument)
    inst = load_instrument(instrument)
    ny = int(inst.get("detector_plane.npix_y"))
    nz = int(inst.get("detector_plane.npix_z"))
    shape = tuple(int(v) for v in inst.get("detector_plane.module_shape"))
    module, chan = plane_layout(ny, nz, (shape[0], shape[1]))
    rng = np.random.default_rng(seed)
    n_mod = int(module.max()) + 1
    mod_gain = 1.0 + model.module_gain_spread * rng.standard_normal(n_mod)
    pix_spread = np.sqrt(max(model.gain_spread**2 - model.module_gain_spread**2, 0.0))
    gain0 = model.gain_kev * mod_gain[module] * (1.0 + pix_spread * rng.standard_normal((ny, nz)))
    offset0 = model.offset_sigma_kev * rng.standard_normal((ny, nz))
    gain_rate = model.gain_drift_per_day + model.gain_drift_sigma_per_day * rng.standard_normal(
        (ny, nz)
    )
    offset_rate = model.offset_drift_kev_per_day * rng.standard_normal((ny, nz))
    asic_base = model.asic_threshold_kev + model.asic_threshold_sigma_kev * rng.standard_normal(
        n_mod
    )
    thr0 = asic_base[module] + model.pixel_threshold_sigma_kev * rng.standard_normal((ny, nz))
    return PlaneTruth(
        model=model,
        epoch=epoch,
        module=module,
        asic_channel=chan,
        gain0=gain0,
        offset0=offset0,
        gain_rate=gain_rate,
        offset_rate=offset_rate,
        threshold0_kev=thr0,
        dac=np.full((ny, nz), dac, dtype=np.int16),
    )


def expected_spectra(
    truth: PlaneTruth,
    when: _dt.datetime,
    exposure_s: float,
    lines: tuple[Line, ...] = GROUND_LINES,
) -> NDArray[np.float64]:
    """Return the expected counts ``[Y, Z, ADC]`` accumulated over ``exposure_s`` from ``when``.

    The gain and offset are those at the middle of the exposure.
    """
    m = truth.model
    mid = when + _dt.timedelta(seconds=exposure_s / 2.0)
    g = truth.gain(mid)[..., None]
    o = truth.offset(mid)[..., None]
    hours = exposure_s / 3600.0
    edges = np.arange(m.n_adc + 1, dtype=np.float64)
    e_edge = g * edges[None, None, :] + o  # [Y, Z, n+1] keV at channel edges
    e_mid = 0.5 * (e_edge[..., 1:] + e_edge[..., :-1])
    counts = np.zeros(e_mid.shape)
    n = m.n_adc
    for line in lines:
        # the line only where it is not negligible: +-7 sigma around its channel
        s = float(m.sigma_kev(line.energy_kev))
        x = (line.energy_kev - o[..., 0]) / g[..., 0]
        half = int(np.ceil(7.0 * s / float(g.min()))) + 2
        idx = np.clip(
            np.floor(x).astype(np.int64)[..., None] + np.arange(-half, half + 1), 0, n - 1
        )
        lo_e = np.take_along_axis(e_edge, idx, -1)
        hi_e = np.take_along_axis(e_edge, idx + 1, -1)
        part = ndtr((hi_e - line.energy_kev) / s) - ndtr((lo_e - line.energy_kev) / s)
        # clipped indices repeat only at the ADC range's ends, where the line is negligible
        add = np.take_along_axis(counts, idx, -1) + line.rate_per_hour * hours * part
        np.put_along_axis(counts, idx, add, -1)
    # continuum E^-1 between 4 and 150 keV (and on below, to meet the threshold)
    lo = np.clip(e_edge[..., :-1], 0.5, 150.0)
    hi = np.clip(e_edge[..., 1:], 0.5, 150.0)
    counts += m.continuum_per_hour * hours * np.log(hi / lo) / np.log(150.0 / 4.0)
    # electronic noise (falls exponentially with energy) and the discriminator's edge: only
    # the low channels matter (15 keV above the highest threshold the noise is < 1e-10)
    thr = truth.threshold_kev()[..., None]
    top = int(np.clip(np.ceil(np.max((thr[..., 0] + 15.0 - o[..., 0]) / g[..., 0])), 1, n))
    el = e_edge[..., : top + 1]
    a = np.exp(-np.clip(el[..., :-1], 0.0, None) / m.noise_scale_kev)
    b = np.exp(-np.clip(el[..., 1:], 0.0, None) / m.noise_scale_kev)
    norm = np.exp(-thr / m.noise_scale_kev)  # the noise rate is quoted above the threshold
    counts[..., :top] += m.noise_rate_per_hour * hours * (a - b) / norm
    # the discriminator: nothing below the threshold, an error-function edge
    counts[..., :top] *= 0.5 * erfc(
        -(e_mid[..., :top] - thr) / (np.sqrt(2.0) * m.threshold_width_kev)
    )
    return counts


def simulate_spectra(
    truth: PlaneTruth,
    when: _dt.datetime,
    exposure_s: float,
    rng: np.random.Generator,
    *,
    mode: str = "ground",
) -> PixelSpectra:
    """Draw calibration spectra (Poisson counts) of the plane over ``exposure_s`` from ``when``."""
    lines = GROUND_LINES if mode == "ground" else FLIGHT_LINES
    mu = expected_spectra(truth, when, exposure_s, lines)
    counts = rng.poisson(mu).astype(np.int32)
    return PixelSpectra(counts, when, float(exposure_s), truth.dac.copy(), mode)


def true_gain_table(truth: PlaneTruth, when: _dt.datetime) -> PixelGain:
    """Return the true gains and offsets at ``when`` as a ``PIXGAIN`` table (no errors)."""
    g = truth.gain(when)
    return PixelGain(
        gain=g,
        offset=truth.offset(when),
        gain_err=np.zeros_like(g),
        offset_err=np.zeros_like(g),
        n_lines=np.zeros(g.shape, np.int16),
        fallback=np.zeros(g.shape, bool),
        reason=np.full(g.shape, "", dtype="<U60"),
        module=truth.module,
    )


def run_eclairs_plane(ctx: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Scenario runner: calibration spectra of one plane on several days, with their truth.

    Options (``instrument_options.eclairs_plane``): ``days`` (list of days after the plane's
    epoch), ``exposure_h`` (accumulation per file), ``mode`` (``ground``/``flight``),
    ``gain_jump`` (relative gain step applied from ``jump_day`` on, a high-voltage change),
    ``start`` (ISO date of day 0) and any :class:`PlaneModel` field. Writes
    ``eic_plane/spectra_dNNN.fits`` and the true gain tables ``eic_plane/truth_pixgain_dNNN.fits``
    (at the middle of each accumulation) for the bench.
    """
    from svomflow.products.eic_calibration_files import write_pixel_gain, write_pixel_spectra

    opts = dict(ctx.options)
    days = [float(d) for d in opts.pop("days", [0.0, 7.0, 14.0])]
    exposure = float(opts.pop("exposure_h", 2.0)) * 3600.0
    mode = str(opts.pop("mode", "ground"))
    jump = float(opts.pop("gain_jump", 0.0))
    jump_day = float(opts.pop("jump_day", float("inf")))
    start = _dt.datetime.fromisoformat(str(opts.pop("start", "2026-01-01"))).replace(tzinfo=_dt.UTC)
    model = PlaneModel.from_instrument("eclairs", **{k: float(v) for k, v in opts.items()})
    truth = make_plane(int(rng.integers(0, 2**31 - 1)), model, epoch=start)
    out = Path(ctx.out_dir) / "eic_plane"
    out.mkdir(parents=True, exist_ok=True)
    files, truths = [], []
    for day in days:
        plane = replace(truth, gain0=truth.gain0 * (1.0 + jump)) if day >= jump_day else truth
        when = start + _dt.timedelta(days=day)
        spectra = simulate_spectra(plane, when, exposure, rng, mode=mode)
        name = f"d{day:05.1f}".replace(".", "p")
        files.append(
            str(
                write_pixel_spectra(
                    out / f"spectra_{name}.fits", spectra, telescope="SVOM", instrument="ECLAIRS"
                )
            )
        )
        mid = when + _dt.timedelta(seconds=exposure / 2.0)
        truths.append(
            str(
                write_pixel_gain(
                    out / f"truth_pixgain_{name}.fits",
                    true_gain_table(plane, mid),
                    telescope="SVOM",
                    instrument="ECLAIRS",
                )
            )
        )
    return {
        "spectra_files": files,
        "truth_gain_files": truths,
        "days": days,
        "mode": mode,
        "exposure_s": exposure,
        "median_gain_day0": float(np.median(truth.gain0)),
        "gain_jump": jump,
        "jump_day": jump_day,
    }


def add_adc_column(path: str | Path, truth: PlaneTruth, when: _dt.datetime) -> Path:
    """Add the raw ADC channel of every event to an ECLAIRs L1 file (in place).

    Each event's measured energy (``ENERGY``) becomes the ADC channel its pixel records with
    the plane's true gain and offset at ``when``: what the analysis turns back into energies
    through a ``PIXGAIN`` table (the file's ``PI`` stays as written).
    """
    from astropy.io import fits
    from svomflow.products.eclairs_l1 import ADC_COLUMN
    from svomflow.products.ogip import write_hdulist

    p = Path(path)
    with fits.open(p, memmap=False) as hdul:
        hdus = [h.copy() for h in hdul]
    idx = next(i for i, h in enumerate(hdus) if h.name == "EVENTS")
    ev = hdus[idx]
    y = np.asarray(ev.data["Y"], dtype=np.int64)
    z = np.asarray(ev.data["Z"], dtype=np.int64)
    energy = np.asarray(ev.data["ENERGY"], dtype=np.float64)
    x = (energy - truth.offset(when)[y, z]) / truth.gain(when)[y, z]
    adc = np.clip(np.floor(x), 0, truth.model.n_adc - 1).astype(np.int16)
    cols = [*ev.columns, fits.Column(ADC_COLUMN, "I", array=adc)]
    new = fits.BinTableHDU.from_columns(cols, header=ev.header, name="EVENTS")
    hdus[idx] = new
    return write_hdulist(hdus, p)
