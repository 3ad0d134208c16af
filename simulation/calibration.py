"""The simulator's true calibration of ECLAIRs and the GRM, written as CALDB files and registered.

A simulation uses calibration values (channel bounds, dead and noisy pixels, dead time, the
response model's parameters); the pipelines must analyse its files with exactly those, taken
from the CALDB like real data's. :func:`eclairs_calibration` and :func:`grm_calibration`
collect them from a simulation; :func:`write_and_register` writes the files next to the L1
files and registers them in the CALDB of the run's home (``$SVOMFLOW_CALDB`` or
``$SVOMFLOW_HOME/caldb``), so that ``svomflow simulate X`` followed by ``svomflow vhf`` or
``svomflow xband`` needs no option.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from svomflow.config import InstrumentDefinition
from svomflow.instruments.channels import EnergyBounds
from svomflow.instruments.dead_time import DeadTime
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.instruments.grm_response import GRMResponseModel
from svomflow.instruments.pixels import PixelMap
from svomflow.products.calibration_files import (
    write_badpix,
    write_dead_time,
    write_ebounds,
    write_response_model,
)

if TYPE_CHECKING:
    from svomflow.simulation.scenario import ScenarioContext

__all__ = [
    "SIMULATION_VALID_FROM",
    "eclairs_calibration",
    "grm_calibration",
    "register_calibration",
    "write_and_register",
    "write_calibration",
    "write_calibration_files",
]

#: Validity start of simulated calibration files: before every simulated observation.
SIMULATION_VALID_FROM = "2020-01-01T00:00:00"

_WRITERS: dict[str, Any] = {
    "EBOUNDS": write_ebounds,
    "BADPIX": write_badpix,
    "DEADTIME": write_dead_time,
    "RSPPAR": write_response_model,
}


def _bounds(e_lo: NDArray[np.float64], e_hi: NDArray[np.float64]) -> EnergyBounds:
    # the L1 files store EBOUNDS in single precision: the CALDB file holds the same numbers
    return EnergyBounds(
        0,
        np.asarray(e_lo, np.float32).astype(np.float64),
        np.asarray(e_hi, np.float32).astype(np.float64),
    )


def eclairs_calibration(
    inst: InstrumentDefinition,
    dead_pixels: NDArray[np.bool_],
    noisy_pixels: NDArray[np.bool_] | None = None,
) -> dict[str, object]:
    """Collect the calibration an ECLAIRs simulation used: channels, bad pixels, dead time, response."""
    resp = EclairsResponse.from_instrument(inst)
    dead = np.asarray(dead_pixels, dtype=bool)
    noisy = np.zeros_like(dead) if noisy_pixels is None else np.asarray(noisy_pixels, bool)
    return {
        "EBOUNDS": _bounds(*resp.channel_bounds()),
        "BADPIX": PixelMap(dead=dead, noisy=noisy),
        "DEADTIME": DeadTime({}, default=float(inst.get("dead_time_s", 0.0))),
        "RSPPAR": resp,
    }


def grm_calibration(
    inst: InstrumentDefinition,
    channel_edges_kev: NDArray[np.float64],
    dead_time_s: Mapping[str, float],
) -> dict[str, object]:
    """Collect the calibration a GRM simulation used: channels, dead time per detector, response model."""
    edges = np.asarray(channel_edges_kev, dtype=np.float64)
    return {
        "EBOUNDS": _bounds(edges[:-1], edges[1:]),
        "DEADTIME": DeadTime(dict(dead_time_s), default=float(inst.get("dead_time_s", 0.0))),
        "RSPPAR": GRMResponseModel.from_instrument(inst),
    }


def write_calibration(
    objects: Mapping[str, object], out_dir: str | Path, inst: InstrumentDefinition
) -> dict[str, Path]:
    """Write each calibration object as a CALDB file ``<instrument>_<code>.fits`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for code, obj in objects.items():
        path = out / f"{inst.name}_{code.lower()}.fits"
        _WRITERS[code](path, obj, telescope=inst.telescope, instrument=inst.instrument)
        paths[code] = path
    return paths


# cards that change with the moment of writing, not with the content
_WRITE_TIME_CARDS = frozenset({"CHECKSUM", "DATASUM", "DATE"})


def fits_content_digest(path: str | Path) -> str:
    """Return a SHA-256 of a FITS file's content, blind to when it was written.

    Astropy's ``CHECKSUM`` comment and the ``DATE`` card carry the time of writing, so two
    runs of the same simulation write files that differ by those bytes only; this digest
    covers every other header card and the data of every HDU.
    """
    import hashlib

    from astropy.io import fits

    digest = hashlib.sha256()
    with fits.open(path, memmap=False, checksum=False) as hdul:
        for hdu in hdul:
            for card in hdu.header.cards:
                if card.keyword not in _WRITE_TIME_CARDS:
                    digest.update(card.image.encode("ascii", "replace"))
            digest.update(b"|data|")
            if hdu.data is not None:
                digest.update(hdu.data.tobytes() if hasattr(hdu.data, "tobytes") else b"")
    return digest.hexdigest()


def register_calibration(
    files: Mapping[str, Path],
    inst: InstrumentDefinition,
    *,
    caldb_root: str | Path | None = None,
    valid_from: str = SIMULATION_VALID_FROM,
) -> dict[str, str]:
    """Register calibration files in a CALDB (default: the home's) unless already current.

    A file with the content of the entry the CALDB currently selects for its code (same
    checksum, or the same :func:`fits_content_digest`) is not registered again, so repeated simulations do not grow the index; a different one
    is registered and, being the newest registration, is selected from then on.

    Returns
    -------
    dict
        ``{code: "registered" | "already current"}``.
    """
    from svomflow.atomic import sha256_file
    from svomflow.calibration.caldb import open_caldb
    from svomflow.errors import CalibrationNotFoundError

    db = open_caldb(caldb_root)
    out: dict[str, str] = {}
    for code, path in files.items():
        try:
            current = db.select(code, instrument=inst.instrument, time=valid_from)
            same = current.sha256 == sha256_file(path) or (
                fits_content_digest(current.path) == fits_content_digest(path)
            )
        except CalibrationNotFoundError:
            same = False
        if same:
            out[code] = "already current"
            continue
        db.register(
            path,
            telescope=inst.telescope,
            instrument=inst.instrument,
            codename=code,
            valid_from=valid_from,
            description=f"simulated true {code} of {inst.name}",
        )
        out[code] = "registered"
    return out


def write_and_register(
    objects: Mapping[str, object],
    out_dir: str | Path,
    inst: InstrumentDefinition,
    *,
    caldb_root: str | Path | None = None,
) -> dict[str, str]:
    """Write the calibration files and register them; return ``{code: file name}``."""
    paths = write_calibration(objects, out_dir, inst)
    register_calibration(paths, inst, caldb_root=caldb_root)
    return {code: p.name for code, p in paths.items()}


def write_calibration_files(
    objects: Mapping[str, object], ctx: ScenarioContext, inst: InstrumentDefinition
) -> dict[str, str]:
    """Write a scenario's calibration files; register them unless the run says not to."""
    if ctx.register_calibration:
        return write_and_register(objects, ctx.out_dir, inst)
    paths = write_calibration(objects, ctx.out_dir, inst)
    return {code: p.name for code, p in paths.items()}
