"""The numbers of a CCD camera, read once from its instrument definition.

Steps, readers and the simulator receive a :class:`CameraModel` (numbers, header keyword names),
never an instrument name to branch on (ARCHITECTURE.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from svomflow.config import InstrumentDefinition, load_instrument
from svomflow.errors import ConfigError, InputDataError

__all__ = ["CameraModel", "load_camera"]


@dataclass(frozen=True)
class CameraModel:
    """Detector and header description of one CCD camera.

    Attributes
    ----------
    name, telescope, instrument
        Identity (``instrument`` is the INSTRUME keyword value).
    npix_x, npix_y
        Size of the light-sensitive area (columns, rows).
    overscan_columns, overscan_side
        Width of the overscan strip and on which side of each row it lies (``right``/``left``).
    gain
        Gain in electrons per ADU.
    read_noise_e
        Read noise in electrons.
    saturation_adu
        Raw level at or above which a pixel is flagged saturated.
    full_well_e
        Charge a pixel holds before it bleeds along its column.
    dark_ref_temperature_c, dark_doubling_c
        Dark current doubles every ``dark_doubling_c`` degrees above the reference.
    keywords
        Logical name (``exposure_time``) -> FITS keyword (``EXPTIME``).
    exposure_types
        Logical type (``bias``) -> value of the exposure-type keyword.
    """

    name: str
    telescope: str
    instrument: str
    npix_x: int
    npix_y: int
    overscan_columns: int
    overscan_side: str
    gain: float
    read_noise_e: float
    bias_level_adu: float
    saturation_adu: float
    full_well_e: float
    dark_current_e_per_s_at_ref: float
    dark_ref_temperature_c: float
    dark_doubling_c: float
    pixel_scale_arcsec: float
    pixel_size_um: float
    filters: tuple[str, ...]
    zero_points_mag: dict[str, float]
    sky_brightness_mag_arcsec2: dict[str, float]
    keywords: dict[str, str]
    exposure_types: dict[str, str]
    calibration: dict[str, Any] = field(default_factory=dict)
    simulation: dict[str, Any] = field(default_factory=dict)

    @property
    def read_noise_adu(self) -> float:
        """Read noise in ADU."""
        return self.read_noise_e / self.gain

    def kw(self, logical: str) -> str:
        """Return the FITS keyword that holds ``logical`` (``"exposure_time"`` -> ``EXPTIME``)."""
        try:
            return self.keywords[logical]
        except KeyError:
            raise ConfigError(
                f"camera {self.name}: header_keywords has no entry {logical!r}"
            ) from None

    def header_value(self, header: Any, logical: str, default: Any = ...) -> Any:
        """Read the value of ``logical`` from a FITS header, with a clear error if absent."""
        key = self.kw(logical)
        if key in header:
            return header[key]
        if default is not ...:
            return default
        raise InputDataError(f"header keyword {key} ({logical.replace('_', ' ')}) is missing")

    def dark_scale(self, temperature_c: float, reference_c: float) -> float:
        """Return the dark-current ratio between ``temperature_c`` and ``reference_c``."""
        return float(2.0 ** ((temperature_c - reference_c) / self.dark_doubling_c))

    def image_slice(self) -> tuple[slice, slice]:
        """Return the (rows, columns) slices of the light-sensitive area in a raw frame."""
        if self.overscan_side == "right":
            return slice(None), slice(0, -self.overscan_columns or None)
        return slice(None), slice(self.overscan_columns, None)

    def overscan_slice(self) -> tuple[slice, slice]:
        """Return the (rows, columns) slices of the overscan strip in a raw frame."""
        if self.overscan_side == "right":
            return slice(None), slice(-self.overscan_columns, None)
        return slice(None), slice(0, self.overscan_columns)

    @classmethod
    def from_definition(cls, inst: InstrumentDefinition) -> CameraModel:
        """Build the model from an instrument definition (``kind: ccd_camera``)."""
        if inst.kind != "ccd_camera":
            raise ConfigError(f"instrument {inst.name} is a {inst.kind}, not a ccd_camera")
        side = str(inst.get("ccd.overscan_side", "right"))
        if side not in {"right", "left"}:
            raise ConfigError(f"{inst.name}: ccd.overscan_side must be 'right' or 'left'")
        return cls(
            name=inst.name,
            telescope=inst.telescope,
            instrument=inst.instrument,
            npix_x=int(inst.get("ccd.npix_x")),
            npix_y=int(inst.get("ccd.npix_y")),
            overscan_columns=int(inst.get("ccd.overscan_columns")),
            overscan_side=side,
            gain=float(inst.get("ccd.gain_e_per_adu")),
            read_noise_e=float(inst.get("ccd.read_noise_e")),
            bias_level_adu=float(inst.get("ccd.bias_level_adu")),
            saturation_adu=float(inst.get("ccd.saturation_adu")),
            full_well_e=float(inst.get("ccd.full_well_e", 1e99)),
            dark_current_e_per_s_at_ref=float(inst.get("ccd.dark_current_e_per_s_at_ref")),
            dark_ref_temperature_c=float(inst.get("ccd.dark_reference_temperature_c")),
            dark_doubling_c=float(inst.get("ccd.dark_doubling_temperature_c")),
            pixel_scale_arcsec=float(inst.get("ccd.pixel_scale_arcsec")),
            pixel_size_um=float(inst.get("ccd.pixel_size_um", 15.0)),
            filters=tuple(str(f) for f in inst.get("filters", [])),
            zero_points_mag={k: float(v) for k, v in inst.get("zero_points_mag", {}).items()},
            sky_brightness_mag_arcsec2={
                k: float(v) for k, v in inst.get("sky_brightness_mag_arcsec2", {}).items()
            },
            keywords=dict(inst.header_keywords),
            exposure_types={str(k): str(v) for k, v in inst.get("exposure_types", {}).items()},
            calibration=dict(inst.get("calibration", {})),
            simulation=dict(inst.get("simulation", {})),
        )


def load_camera(name: str = "colibri_ddrago_b") -> CameraModel:
    """Load a packaged (or file) camera definition as a :class:`CameraModel`."""
    return CameraModel.from_definition(load_instrument(name))
