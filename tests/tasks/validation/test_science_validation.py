"""The science validation gate (pure): completeness, ranges, consistency between products."""

from __future__ import annotations

import math

import numpy as np
import pytest
from svomflow.tasks.validation.pipeline import load_delivery_config
from svomflow.tasks.validation.rules import Consistency, ScienceValidationConfig, TypeRules
from svomflow.tasks.validation.science import (
    Candidate,
    SkyCircle,
    angular_separation_deg,
    judge,
    validate_product,
)

KW = {"TELESCOP": "SVOM", "PRODTYPE": "OTPO", "PRODVER": 1, "CFGHASH": "abc"}


def _otpo(ra: float, dec: float, radius: float = 0.5 / 3600, **kw: object) -> Candidate:
    return Candidate(
        product_id="gp1",
        type_code="OTPO",
        instrument="CAM",
        obs_id="sb1",
        version=1,
        keywords={**KW, **kw},  # type: ignore[dict-item]
        position=SkyCircle(ra, dec, radius, "OTPO", "CAM", "gp1"),
    )


def test_the_separation_matches_the_haversine_formula() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        ra1, ra2 = rng.uniform(0, 360, 2)
        d1, d2 = rng.uniform(-90, 90, 2)
        r1, r2, t1, t2 = map(math.radians, (ra1, ra2, d1, d2))
        hav = (
            math.sin((t2 - t1) / 2) ** 2
            + math.cos(t1) * math.cos(t2) * math.sin((r2 - r1) / 2) ** 2
        )
        ref = math.degrees(2 * math.asin(min(1.0, math.sqrt(hav))))
        assert angular_separation_deg(ra1, d1, ra2, d2) == pytest.approx(ref, abs=1e-9)
    # across RA = 0 and at the pole
    assert angular_separation_deg(359.9, 0.0, 0.1, 0.0) == pytest.approx(0.2, abs=1e-12)
    assert angular_separation_deg(10.0, 90.0, 200.0, 90.0) == pytest.approx(0.0, abs=1e-9)


def test_the_packaged_rules_load_and_cover_the_position_products() -> None:
    cfg = load_delivery_config().validation
    for code in ("QPO", "PO", "SRCLIST", "OTPO"):
        assert "position" in cfg.types[code].required_values
    assert load_delivery_config(overrides=["validation.types.QT90.ranges.T90=[0, 1]"])


def test_gp1_position_inside_the_alert_region_or_flagged() -> None:
    cfg = load_delivery_config().validation
    # an MXT r90 of 60 arcsec around (150, 20); a broad ECLAIRs circle
    refs = [
        SkyCircle(150.0, 20.0, 60 / 3600, "SRCLIST", "MXT", "mxt"),
        SkyCircle(150.05, 20.02, 0.15, "QPO", "ECL", "qpo"),
    ]
    # uniform points on the sky near the centre: inside iff the separation <= 60"
    rng = np.random.default_rng(11)
    inside = flagged = 0
    for _ in range(300):
        ra = 150.0 + rng.uniform(-120, 120) / 3600 / math.cos(math.radians(20.0))
        dec = 20.0 + rng.uniform(-120, 120) / 3600
        v = validate_product(_otpo(ra, dec), refs, cfg)
        sep = angular_separation_deg(ra, dec, 150.0, 20.0) * 3600
        assert v.accepted, v.reasons  # flagged, never refused: the rule's action is "flag"
        if sep <= 60.0:
            inside += 1
            assert v.flags == ()
        else:
            flagged += 1
            assert len(v.flags) == 1 and "outside its error radius 1.00'" in v.flags[0]
    # the smallest circle (MXT) is the reference, not the ECLAIRs one; both cases happened
    assert inside > 50 and flagged > 50


def test_a_refusing_consistency_rule_and_no_reference() -> None:
    cfg = ScienceValidationConfig(
        types={
            "OTPO": TypeRules(
                consistency=[
                    Consistency(
                        check="inside_error_region", reference_types=["QPO"], action="refuse"
                    )
                ]
            )
        }
    )
    far = validate_product(_otpo(10.0, 10.0), [SkyCircle(20.0, 10.0, 0.1, "QPO", "ECL", "q")], cfg)
    assert not far.accepted and "outside its error radius 6.00'" in far.reasons[0]
    # nothing to compare with: delivered with a flag that says so
    alone = validate_product(_otpo(10.0, 10.0), [], cfg)
    assert alone.accepted and alone.flags == ("no QPO position of sb1 to check against",)


def test_completeness_and_ranges_give_every_reason() -> None:
    cfg = load_delivery_config().validation
    cand = Candidate(
        product_id="t90",
        type_code="QT90",
        instrument="ECL",
        obs_id="sb1",
        version=2,
        keywords={"PRODTYPE": "QT90", "PRODVER": 2},
        values={"T90": -0.3, "T90_ERR": float("nan")},
    )
    v = validate_product(cand, [], cfg)
    assert not v.accepted
    assert set(v.reasons) == {
        "keyword CFGHASH missing",
        "T90 = -0.3 outside [0, 10000]",
        "T90_ERR is not finite",
    }
    good = Candidate(
        **{
            **cand.__dict__,
            "keywords": {**cand.keywords, "CFGHASH": "x"},
            "values": {"T90": 0.4, "T90_ERR": 0.08},
        }
    )
    assert validate_product(good, [], cfg).accepted


def test_the_step_judges_each_candidate_with_its_bursts_positions() -> None:
    cfg = load_delivery_config().validation
    a = _otpo(150.0, 20.0)
    b = Candidate(**{**_otpo(150.0, 20.0).__dict__, "product_id": "b", "obs_id": "sb2"})
    refs = {"sb1": (SkyCircle(150.0, 20.0, 0.01, "QPO", "ECL", "q1"),)}
    va, vb = judge.run([a, b], refs, config=cfg)
    assert va.accepted and va.flags == ()
    assert vb.accepted and vb.flags == ("no SRCLIST/PO/QPO position of sb2 to check against",)
    assert validate_product(Candidate("x", "NOPE", "ECL", "sb1", 1), [], cfg).reasons == (
        "no rules for NOPE",
    )


def test_a_gp1_sequence_product_is_checked_against_its_bursts_positions() -> None:
    cfg = load_delivery_config().validation
    seq = Candidate(
        **{**_otpo(150.0, 20.0).__dict__, "obs_id": "sb1_r", "keywords": {**KW, "TRIGID": "sb1"}}
    )
    refs = {"sb1": (SkyCircle(150.5, 20.0, 0.1, "QPO", "ECL", "q1"),)}
    (v,) = judge.run([seq], refs, config=cfg)
    assert v.accepted and "from the QPO ECL position, outside its error radius 6.00'" in v.flags[0]
    (w,) = judge.run([seq], refs, config=cfg.model_copy(update={"burst_keywords": []}))
    assert w.flags == ("no SRCLIST/PO/QPO position of sb1_r to check against",)
