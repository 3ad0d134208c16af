"""The CALDB code names svomflow knows, each with what it holds and how it is loaded.

A step declares the code names it needs (:func:`svomflow.tasks.step.step`); the adapter
selects one file per code and instrument in the flow's first task and loads it here into the
data object the step receives. Loaders live in the layers below (instrument models, product
readers) and are named by import path, so that this table stays cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from svomflow.errors import ConfigError

__all__ = ["CODES", "CalibrationCode", "calibration_code", "load_calibration_file"]


@dataclass(frozen=True)
class CalibrationCode:
    """A CALDB code name: what its files hold and the loader of its data object.

    Attributes
    ----------
    codename
        The CALDB ``CAL_CNAM`` value (upper case).
    description
        One line: what the file holds (``docs/`` lists it).
    loader
        ``"module:function"`` of a function ``(path) -> object``.
    """

    codename: str
    description: str
    loader: str

    def load(self, path: str | Path) -> Any:
        """Read a file of this code into its data object."""
        module, func = self.loader.split(":")
        fn: Callable[[Path], Any] = getattr(import_module(module), func)
        return fn(Path(path))


CODES: dict[str, CalibrationCode] = {
    c.codename: c
    for c in (
        # ECLAIRs and GRM (written by the simulator; products/calibration_files.py has the formats)
        CalibrationCode("EBOUNDS", "energy bounds of the PI channels (channel to energy)", "svomflow.products.calibration_files:read_ebounds"),
        CalibrationCode("BADPIX", "dead and noisy pixels of a detector plane", "svomflow.products.calibration_files:read_badpix"),
        CalibrationCode("DEADTIME", "dead time per recorded event, per detector", "svomflow.products.calibration_files:read_dead_time"),
        CalibrationCode("RSPPAR", "parameters of the instrument's response model", "svomflow.products.calibration_files:read_response_model"),
        # MXT (CALDB files written by the simulator, later by the instrument centre)
        CalibrationCode("GAIN", "per-column gain and offset of the MXT CCD", "svomflow.instruments.mxt_calibration:read_gain"),
        CalibrationCode("CTI", "charge-transfer inefficiency vs energy of the MXT CCD", "svomflow.instruments.mxt_calibration:read_cti"),
        CalibrationCode("PATTERN", "energy recovered per event pattern (multiplicity)", "svomflow.instruments.mxt_calibration:read_pattern"),
        CalibrationCode("PSF", "MXT point-spread function (King profile vs energy)", "svomflow.instruments.mxt_calibration:read_psf"),
        # CCD camera masters (built and promoted by the nightly calibration flow)
        CalibrationCode("BIAS", "master bias frame of a CCD camera (per readout mode)", "svomflow.products.ccd_masters:read_master"),
        CalibrationCode("DARK", "master dark-current frame (rate, per temperature and exposure)", "svomflow.products.ccd_masters:read_master"),
        CalibrationCode("FLAT", "master flat field of a CCD camera (per filter)", "svomflow.products.ccd_masters:read_master"),
        CalibrationCode("PIXGAIN", "ECLAIRs gain and offset per pixel (raw ADC channel to keV)", "svomflow.products.eic_calibration_files:read_pixel_gain"),
        CalibrationCode("BANDTAB", "ECLAIRs on-board energy-band bounds in ADC channels, per pixel", "svomflow.products.eic_calibration_files:read_band_table"),
        CalibrationCode("SBNTHR", "ECLAIRs low-threshold (SBN) DAC settings per ASIC channel", "svomflow.products.eic_calibration_files:read_threshold_table"),
        CalibrationCode("SAACONT", "SAA contour: polygons (lon, lat) where the ECLAIRs rate exceeds the level", "svomflow.products.eic_saa_files:read_saa_contour"),
        CalibrationCode("UNIFMAP", "ECLAIRs imaging uniformity map: relative efficiency per pixel with its error", "svomflow.products.eic_pixel_files:read_uniformity"),
        CalibrationCode("TRIGTHR", "on-board rate-trigger threshold table (band, timescale, sigma)", "svomflow.products.eic_saa_files:read_trigger_thresholds"),
        CalibrationCode("OBSRCCAT", "on-board known-source catalogue (names, positions)", "svomflow.products.eic_saa_files:read_onboard_catalogue"),
    )
}  # fmt: skip


def calibration_code(codename: str) -> CalibrationCode:
    """Return the declaration of a CALDB code name.

    Raises
    ------
    ConfigError
        For a code name no loader is declared for.
    """
    key = codename.strip().upper()
    if key not in CODES:
        raise ConfigError(
            f"unknown CALDB code name {codename!r}; known: {', '.join(sorted(CODES))}"
        )
    return CODES[key]


def load_calibration_file(codename: str, path: str | Path) -> Any:
    """Load a calibration file of ``codename`` into its data object."""
    return calibration_code(codename).load(path)
