"""The science delivery pipeline: read the products not judged yet, judge them, record.

``read`` is the I/O: svomflow's products database (current versions of the types that have
rules, their announcements from the outbox) and their files' header keywords, and the science
database (what was judged already). The step :func:`~svomflow.tasks.validation.science.judge`
is pure. :func:`record_verdicts` writes the outcome to the science database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.config.base import StepConfig
from svomflow.config.loader import (
    deep_merge,
    format_validation_error,
    packaged_pipeline_defaults,
    parse_set_overrides,
    read_yaml_mapping,
)
from svomflow.errors import ConfigError
from svomflow.products.announcements import (
    ProductAnnouncement,
    announcement_for,
    parse_announcement,
)
from svomflow.products.database import OutboxRow, ProductRow, make_engine, select_products
from svomflow.products.science_db import (
    DeliveredProduct,
    Outcome,
    RefusedProduct,
    lookup,
    make_science_engine,
    record_delivery,
    record_refusal,
)
from svomflow.tasks.step import Observation, Pipeline, Runner
from svomflow.tasks.validation.rules import ScienceValidationConfig
from svomflow.tasks.validation.science import Candidate, SkyCircle, Verdict, judge

__all__ = [
    "SCIENCE_PIPELINE",
    "DeliveryInputs",
    "DeliveryReport",
    "DeliveryRequest",
    "Judgement",
    "ScienceDeliveryConfig",
    "load_delivery_config",
    "read_delivery",
    "record_verdicts",
]


class ScienceDeliveryConfig(StepConfig):
    """Configuration of the science delivery flow."""

    validation: ScienceValidationConfig = ScienceValidationConfig()


def load_delivery_config(
    files: Sequence[str | Path] = (), overrides: Sequence[str] | Mapping[str, Any] = ()
) -> ScienceDeliveryConfig:
    """Return the configuration: packaged rules (science_validation.yaml), files, overrides."""
    from pydantic import ValidationError

    merged: dict[str, Any] = {"validation": packaged_pipeline_defaults("science_validation")}
    for f in files:
        merged = deep_merge(merged, read_yaml_mapping(f))
    extra = overrides if isinstance(overrides, Mapping) else parse_set_overrides(overrides)
    merged = deep_merge(merged, extra)
    try:
        return ScienceDeliveryConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


@dataclass(frozen=True)
class DeliveryRequest:
    """Which products to offer (types with rules, one burst or all), and the two databases."""

    types: tuple[str, ...]
    obs_id: str | None = None
    database_url: str | None = None
    science_database_url: str | None = None
    rejudge_refused: bool = False


@dataclass(frozen=True)
class Offer:
    """A candidate with what its delivery records (its announcement, its record time)."""

    candidate: Candidate
    announcement: ProductAnnouncement
    created: datetime


@dataclass(frozen=True)
class DeliveryInputs:
    """The versions to judge and the positions of their bursts (by obs id)."""

    offers: tuple[Offer, ...]
    positions: Mapping[str, tuple[SkyCircle, ...]]


@dataclass(frozen=True)
class Judgement:
    """The pipeline's outcome: what was offered and the verdict on each (same order)."""

    inputs: DeliveryInputs
    verdicts: tuple[Verdict, ...]


@dataclass
class DeliveryReport:
    """What one delivery pass did."""

    delivered: list[str] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)
    flagged: dict[str, list[str]] = field(default_factory=dict)
    already: int = 0

    def summary(self) -> str:
        """Return one line: counts of delivered, flagged, refused and already judged."""
        return (
            f"{len(self.delivered)} delivered ({len(self.flagged)} flagged), "
            f"{len(self.refused)} refused, {self.already} already judged"
        )


def _keywords(path: str) -> dict[str, float | int | str | bool]:
    """Return the scalar header keywords of every HDU of a FITS file (the first one wins)."""
    from astropy.io import fits

    out: dict[str, float | int | str | bool] = {}
    try:
        with fits.open(path, memmap=False) as hdul:
            for hdu in hdul:
                for key, value in hdu.header.items():
                    if key and key not in out and isinstance(value, bool | int | float | str):
                        if isinstance(value, float) and not math.isfinite(value):
                            continue
                        out[key] = value
    except (OSError, ValueError, TypeError):
        return {}  # unreadable: the completeness rules refuse it with the missing keywords
    return out


def _announcement(row: ProductRow, payloads: Mapping[str, str]) -> ProductAnnouncement:
    """Return the version's announcement with its key values read now by today's rules.

    The link is the one announced (the output root is not known here); a version recorded
    before announcements existed gets a file:// link.
    """
    ann = announcement_for(
        product_id=row.id,
        type_code=row.type_code,
        instrument=row.instrument,
        obs_id=row.obs_id,
        version=row.version,
        path=row.path,
        checksum=row.checksum,
        created=row.created,
        out_root=Path(row.path).parent,
        flow_name=row.flow_name,
        flow_run_id=row.flow_run_id,
    )
    if row.id in payloads:
        ann = ann.model_copy(update={"url": parse_announcement(payloads[row.id]).url})
    return ann


def _circle(ann: ProductAnnouncement) -> SkyCircle | None:
    pos = ann.position
    if pos is None:
        return None
    return SkyCircle(
        pos.ra_deg,
        pos.dec_deg,
        pos.error_radius_deg,
        type_code=ann.type_code,
        instrument=ann.instrument,
        product_id=ann.product_id,
    )


def read_delivery(request: DeliveryRequest, _cal: CalibrationSet | None = None) -> DeliveryInputs:
    """Return the current versions of the request's types not judged yet, and their positions."""
    engine = make_engine(request.database_url)
    science = make_science_engine(request.science_database_url)
    wanted = set(request.types)
    with Session(engine) as s:
        rows = [r for r in select_products(s, obs_id=request.obs_id) if r.type_code in wanted]
        ids = [r.id for r in rows]
        payloads: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            stmt = select(OutboxRow.product_id, OutboxRow.payload).where(
                col(OutboxRow.product_id).in_(chunk)
            )
            payloads.update(dict(s.exec(stmt).all()))
    offers: list[Offer] = []
    positions: dict[str, list[SkyCircle]] = {}
    with Session(science) as ss:
        for row in rows:
            ann = _announcement(row, payloads)
            circle = _circle(ann)
            if circle is not None:
                positions.setdefault(row.obs_id, []).append(circle)
            judged = lookup(ss, row.id)
            if judged is not None and not (
                request.rejudge_refused and isinstance(judged, RefusedProduct)
            ):
                continue
            cand = Candidate(
                product_id=row.id,
                type_code=row.type_code,
                instrument=row.instrument,
                obs_id=row.obs_id,
                version=row.version,
                keywords=_keywords(row.path),
                values=dict(ann.key_values),
                position=circle,
            )
            offers.append(Offer(cand, ann, row.created))
    return DeliveryInputs(tuple(offers), {k: tuple(v) for k, v in positions.items()})


def _record_one(offer: Offer, verdict: Verdict, science_database_url: str | None) -> Outcome:
    engine = make_science_engine(science_database_url)
    c, ann = offer.candidate, offer.announcement
    if not verdict.accepted:
        refusal = RefusedProduct(
            product_id=c.product_id,
            type_code=c.type_code,
            instrument=c.instrument,
            obs_id=c.obs_id,
            version=c.version,
            reasons=list(verdict.reasons),
        )
        return record_refusal(engine, refusal)
    pos = ann.position
    product = DeliveredProduct(
        product_id=c.product_id,
        type_code=c.type_code,
        instrument=c.instrument,
        obs_id=c.obs_id,
        version=c.version,
        checksum=ann.checksum,
        url=ann.url,
        ra_deg=pos.ra_deg if pos else None,
        dec_deg=pos.dec_deg if pos else None,
        error_radius_deg=pos.error_radius_deg if pos else None,
        error_confidence=pos.error_confidence if pos else None,
        key_values=dict(ann.key_values),
        flags=list(verdict.flags),
        created=offer.created,
    )
    return record_delivery(engine, product)


def record_verdicts(judgement: Judgement, science_database_url: str | None) -> DeliveryReport:
    """Record each verdict in the science database (idempotent); return what happened."""
    report = DeliveryReport()
    for offer, verdict in zip(judgement.inputs.offers, judgement.verdicts, strict=True):
        outcome = _record_one(offer, verdict, science_database_url)
        if outcome.result == "already":
            report.already += 1
        elif outcome.result == "delivered":
            report.delivered.append(outcome.product_id)
            if verdict.flags:
                report.flagged[outcome.product_id] = list(verdict.flags)
        else:
            report.refused[outcome.product_id] = list(verdict.reasons)
    return report


def _observe(request: DeliveryRequest) -> Observation:
    return Observation(instruments=(), time="2000-01-01T00:00:00")


def _plan(
    runner: Runner, inputs: DeliveryInputs, config: ScienceDeliveryConfig, cal: CalibrationSet
) -> Judgement:
    if not inputs.offers:
        return Judgement(inputs, ())
    verdicts = runner.run(
        judge,
        [o.candidate for o in inputs.offers],
        inputs.positions,
        config=config.validation,
    )
    return Judgement(inputs, tuple(verdicts))


SCIENCE_PIPELINE: Pipeline[DeliveryRequest, DeliveryInputs, ScienceDeliveryConfig, Judgement] = (
    Pipeline(
        flow_name="science_delivery",
        config=ScienceDeliveryConfig,
        steps=(judge,),
        observe=_observe,
        read=read_delivery,
        plan=_plan,
    )
)
