"""Provenance of a product: software, configuration, inputs, calibration and the run."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from svomflow import __version__
from svomflow.atomic import sha256_file

__all__ = ["CalibrationRef", "FileRef", "Provenance", "current_flow_run_id"]


class FileRef(BaseModel):
    """An input file with its checksum."""

    path: str
    sha256: str

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FileRef:
        """Checksum ``path`` and return its reference."""
        p = Path(path).resolve()
        return cls(path=str(p), sha256=sha256_file(p))


class CalibrationRef(BaseModel):
    """A calibration file used by a product (from the CALDB or an explicit override).

    ``name`` is the run's name of the selection (``grm:EBOUNDS``; ``<instrument>:<CODE>``
    then any qualifier), which ties the file to an instrument.
    """

    codename: str
    path: str
    sha256: str
    index_version: int | None = None
    override: bool = False
    name: str | None = None


def current_flow_run_id() -> str | None:
    """Return the id of the Prefect flow run we are in, or None outside a flow run."""
    if "prefect" not in sys.modules:
        return None  # no flow run without Prefect: a --no-prefect run does not import it
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except Exception:
        return None
    return str(run_id) if run_id else None


class Provenance(BaseModel):
    """Everything needed to say how a product was made and to re-make it."""

    software: str = Field(default_factory=lambda: f"svomflow {__version__}")
    config: dict[str, Any] = Field(default_factory=dict)
    inputs: list[FileRef] = Field(default_factory=list)
    calibration: list[CalibrationRef] = Field(default_factory=list)
    flow_run_id: str | None = Field(default_factory=current_flow_run_id)
    flow_name: str | None = None
    content: dict[str, Any] = Field(
        default_factory=dict,
        description="what identifies a product made from no input file (an alert's id and checksum)",
    )
    host: str = Field(default_factory=socket.gethostname)
    started: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished: datetime | None = None

    @classmethod
    def start(
        cls,
        *,
        config: BaseModel | Mapping[str, Any] | None = None,
        inputs: Iterable[str | os.PathLike[str] | FileRef] = (),
        calibration: Iterable[CalibrationRef] = (),
        flow_name: str | None = None,
    ) -> Provenance:
        """Begin a provenance record: checksum the inputs and freeze the merged config."""
        if isinstance(config, BaseModel):
            cfg = config.model_dump(mode="json")
        else:
            cfg = json.loads(json.dumps(dict(config or {}), default=str))
        refs = [i if isinstance(i, FileRef) else FileRef.of(i) for i in inputs]
        return cls(config=cfg, inputs=refs, calibration=list(calibration), flow_name=flow_name)

    def identity(self, *, type_code: str, instrument: str, obs_id: str) -> str:
        """Return a hash that is equal exactly when the same product would be made again.

        Inputs are identified by checksum (not path), calibration files by checksum, and the
        configuration and software version are included; run ids, hosts and times are not.
        """
        payload = {
            "type": type_code,
            "instrument": instrument,
            "obs_id": obs_id,
            "software": self.software,
            "config": self.config,
            "inputs": sorted(i.sha256 for i in self.inputs),
            "calibration": sorted((c.codename, c.sha256) for c in self.calibration),
        }
        if self.content:  # only then: identities of products without it stay as they were
            payload["content"] = self.content
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def config_hash(self) -> str:
        """Return a short hash of the configuration (written into FITS headers)."""
        blob = json.dumps(self.config, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
