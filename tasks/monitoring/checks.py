"""The steps of the ingestion and limit-check flows (pure).

* :func:`prepare_ingest` cleans what was read from housekeeping files before it is stored:
  parameters configured as ignored are dropped, samples with no valid time too, and files left
  with nothing are reported;
* :func:`check_limits` applies every rule of every parameter (:mod:`.limits`) to the
  samples not checked yet, from the states carried since the last check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field
from svomflow.config.base import StepConfig
from svomflow.tasks.monitoring.hkfiles import HkColumn, HkFileData
from svomflow.tasks.monitoring.limits import Carry, CheckResult, LimitRule, check
from svomflow.tasks.step import step

__all__ = [
    "CheckConfig",
    "CheckInputs",
    "CheckOutcome",
    "IngestBatch",
    "IngestConfig",
    "ParamCheckInput",
    "ParamCheckResult",
    "check_limits",
    "prepare_ingest",
]


class CheckConfig(StepConfig):
    """Configuration of the limit checks."""

    stuck: bool = Field(default=True, description="apply the stuck-value rule")


class IngestConfig(StepConfig):
    """Configuration of the ingestion."""

    ignore_parameters: tuple[str, ...] = Field(
        default=(), description="parameters of the files not stored"
    )


@dataclass(frozen=True)
class ParamCheckInput:
    """One parameter's rules, carried states, last checked times and new samples.

    ``checked_until[k]`` is the time up to which rule ``k`` was checked (None: never).
    """

    param_id: int
    instrument: str
    name: str
    rules: tuple[LimitRule, ...]
    carries: tuple[Carry, ...]
    checked_until: tuple[float | None, ...]
    times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class CheckInputs:
    """Every parameter of an instrument with samples to check."""

    instrument: str
    parameters: tuple[ParamCheckInput, ...]


@dataclass(frozen=True)
class ParamCheckResult:
    """The results of one parameter's rules (``None``: rule not applied, nothing new)."""

    param: ParamCheckInput
    results: tuple[CheckResult | None, ...]
    last_time: float


@dataclass(frozen=True)
class CheckOutcome:
    """Results of a check of one instrument."""

    instrument: str
    parameters: tuple[ParamCheckResult, ...]

    @property
    def n_samples(self) -> int:
        """Return the number of samples checked."""
        return sum(int(p.param.times.size) for p in self.parameters)


@step(name="check-limits", config=CheckConfig)
def check_limits(inputs: CheckInputs, *, config: CheckConfig) -> CheckOutcome:
    """Apply each parameter's rules to its samples after each rule's last checked time."""
    out = []
    for p in inputs.parameters:
        results: list[CheckResult | None] = []
        for rule, carry, since in zip(p.rules, p.carries, p.checked_until, strict=True):
            keep = p.times > since if since is not None else np.ones(p.times.size, bool)
            if (rule.kind == "stuck" and not config.stuck) or not keep.any():
                results.append(None)
                continue
            results.append(check(p.times[keep], p.values[keep], rule, carry))
        out.append(ParamCheckResult(p, tuple(results), float(p.times[-1])))
    return CheckOutcome(inputs.instrument, tuple(out))


@dataclass(frozen=True)
class IngestBatch:
    """Files read (cleaned) and files refused with the reason."""

    files: tuple[HkFileData, ...]
    failed: tuple[tuple[str, str], ...]


@step(name="prepare-ingest", config=IngestConfig)
def prepare_ingest(batch: IngestBatch, *, config: IngestConfig) -> IngestBatch:
    """Drop ignored parameters and samples without a valid time; report emptied files."""
    ignored = set(config.ignore_parameters)
    files = []
    failed = list(batch.failed)
    for f in batch.files:
        cols = []
        for c in f.columns:
            if c.name in ignored:
                continue
            ok = np.isfinite(c.times)
            cols.append(HkColumn(c.name, c.times[ok], c.values[ok]))
        if not any(np.isfinite(c.values).any() for c in cols):
            failed.append((f.source, f"{f.source}: no valid housekeeping sample to store"))
            continue
        files.append(HkFileData(f.instrument, tuple(cols), f.source))
    return IngestBatch(tuple(files), tuple(failed))
