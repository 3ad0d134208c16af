"""Steps on the whole burst: the cross-instrument hardness ratio and the crude class.

Their products carry the joint instrument code (``QHR_ECLGRM``, ``CRCLASS_ECLGRM``) and
derive from every input file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.products.burst_events import InstrumentEvents
from svomflow.products.catalogue import FitsModel, Product
from svomflow.products.catalogue.instrument_codes import joint_code
from svomflow.tasks.classification import CrudeClass, classify
from svomflow.tasks.step import step
from svomflow.tasks.timing import HardnessRatio, hardness_ratio, net_counts, uniform_bins
from svomflow.tasks.vhf import fits_products as fp
from svomflow.tasks.vhf.bands import clip_band, energy_range_kev
from svomflow.tasks.vhf.config import ClassificationStepConfig, JointHardnessStepConfig
from svomflow.tasks.vhf.curves import InstrumentTiming
from svomflow.tasks.vhf.timing import band_times, manual_background

__all__ = [
    "Classification",
    "JointHardness",
    "classification",
    "joint_hardness",
    "primary_instrument",
]

Position = tuple[float, float, float]  # RA, Dec, 90 % radius (deg)


@dataclass
class JointHardness:
    """Hard band of one instrument over the soft band of another (None: a band is missing)."""

    ratio: HardnessRatio | None
    products: list[Product] = field(default_factory=list)


@step(
    name="joint-hardness",
    config=JointHardnessStepConfig,
    calibration=("EBOUNDS",),
    outputs=("QHR",),
)
def joint_hardness(
    soft: InstrumentEvents,
    soft_timing: InstrumentTiming,
    hard: InstrumentEvents,
    hard_timing: InstrumentTiming,
    head: fp.ProductHeader,
    *,
    config: JointHardnessStepConfig,
    calibration: CalibrationSet,
) -> JointHardness:
    """Cross-instrument hardness ratio (QHR_ECLGRM) over the soft instrument's burst interval.

    Each band's background is fitted on its instrument's off-source intervals; a band
    outside its instrument's channels gives no ratio.
    """
    jc = config.joint_hardness
    interval = soft_timing.burst_interval
    nets = []
    for d, t, band in (
        (soft, soft_timing, jc.soft_band_kev),
        (hard, hard_timing, jc.hard_band_kev),
    ):
        b = clip_band(band, energy_range_kev(d, calibration))
        if b is None:
            return JointHardness(None)
        ev = d.events
        tb = band_times(ev, b)
        assert t.curve.background is not None
        bk = manual_background(
            uniform_bins(tb, t.dt_s, ev.gti), t.curve.background, config.background
        )
        nets.append((net_counts(tb, ev.gti, bk, interval), b))
    (ns, bs), (nh, bh) = nets
    hr = hardness_ratio(nh, ns, hard_band_kev=bh, soft_band_kev=bs, interval=interval)
    flags = [] if hr.reliable else ["soft band below 3 sigma"]
    qhr = Product(
        "QHR",
        joint_code([soft.name, hard.name]),
        FitsModel.from_hdus(fp.hardness_hdus(hr, head, flags=flags)),
    )
    return JointHardness(hr, [qhr])


def primary_instrument(timings: Mapping[str, InstrumentTiming], catalogs: Mapping[str, str]) -> str:
    """Instrument whose T90 is reported at top level and classified (catalog order, else first)."""
    for name in catalogs:
        t = timings.get(name)
        if t is not None and t.durations is not None:
            return name
    for name, t in timings.items():
        if t.durations is not None:
            return name
    return next(iter(timings))


@dataclass
class Classification:
    """The crude class (None without a T90: why, in ``flags``) of the primary instrument."""

    crude: CrudeClass | None
    instrument: str | None
    flags: list[str] = field(default_factory=list)
    products: list[Product] = field(default_factory=list)


@step(name="classification", config=ClassificationStepConfig, outputs=("CRCLASS",))
def classification(
    timings: dict[str, InstrumentTiming],
    position: Position | None,
    head: fp.ProductHeader,
    *,
    config: ClassificationStepConfig,
) -> Classification:
    """Crude class of the burst from the primary instrument's T90 (CRCLASS).

    The T90 mixture is the one of the instrument's catalog (``classification_catalogs``);
    the hardness, the detectors' net counts (particle flag) and the position (known source)
    are used when known.
    """
    name = primary_instrument(timings, config.classification_catalogs)
    t = timings[name]
    if t.durations is None:
        return Classification(None, None, ["no T90 in any instrument: not classified"])
    catalog = config.classification_catalogs.get(name, config.classification.catalog)
    cfg = config.classification.model_copy(update={"catalog": catalog})
    d = t.durations
    err = d.t90_err if np.isfinite(d.t90_err) else 0.0
    hr = t.hardness.ratio if t.hardness is not None and t.hardness.reliable else None
    nets = {k: (v.net, v.net_err) for k, v in t.detector_net.items()}
    c = classify(d.t90, err, cfg, hardness=hr, detector_net_counts=nets, position=position)
    row: list[fp.Column] = [
        ("CLASS", c.klass, "", "crude class"),
        ("P_SHORT", c.p_short, "", "probability of a short GRB"),
        ("T90", c.t90, "s", "T90 used"),
        ("INSTRUMENT", name, "", "instrument of the T90"),
        ("CATALOG", c.catalog, "", "T90 mixture (catalog)"),
    ]
    hdus = fp.table_hdus(head, extname="CLASS", rows=[row], flags=list(c.flags))
    return Classification(
        c, name, [], [Product("CRCLASS", head.instrument, FitsModel.from_hdus(hdus))]
    )
