"""The alert's best position and the Bayesian choice of the afterglow (pure functions)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from svomflow.tasks.gp1.alert_position import (
    AlertPosition,
    AssociationConfig,
    BestPosition,
    TransientCandidate,
    angular_separation_arcmin,
    association_cards,
    choose_afterglow,
    radius_at,
    sigma_from_radius,
)

RA0, DEC0 = 150.0, 20.0


def _offset(ra: float, dec: float, dx_arcmin: float, dy_arcmin: float) -> tuple[float, float]:
    """Move by (dx east, dy north) arcmin on the tangent plane (small offsets)."""
    return ra + dx_arcmin / 60.0 / math.cos(math.radians(dec)), dec + dy_arcmin / 60.0


def _pos(source: str, r90: float, *, dx: float = 0.0, dy: float = 0.0, **kw) -> AlertPosition:
    ra, dec = _offset(RA0, DEC0, dx, dy)
    return AlertPosition(
        burst_id="sb26120401",
        ra_deg=ra,
        dec_deg=dec,
        error_radius_arcmin=r90,
        source=source,
        **kw,
    )


def test_radius_conversion_matches_the_rayleigh_containment() -> None:
    # draws of a circular Gaussian: the fraction inside radius_at(P) is P
    rng = np.random.default_rng(1)
    n = 200_000
    r = np.hypot(*rng.normal(0.0, 1.0, (2, n)))
    for p in (0.39347, 0.68, 0.9, 0.95):
        frac = np.mean(r <= radius_at(1.0, p))
        assert abs(frac - p) < 5 * math.sqrt(p * (1 - p) / n)
    assert radius_at(1.0, 0.9) == pytest.approx(2.1460, abs=1e-4)
    assert sigma_from_radius(radius_at(2.5, 0.68), 0.68) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        sigma_from_radius(1.0, 1.0)


def test_best_position_compares_regions_at_a_common_confidence() -> None:
    best = BestPosition("sb26120401")
    assert best.best is None
    assert best.update(_pos("QPO_ECL", 10.0))
    # a 68 % radius of 2.0' is a wider region (sigma 1.32') than a 90 % radius of 2.5' (1.17')
    one_sigma = _pos("PO_GRM", 2.0, confidence=0.68)
    r90 = _pos("PO_ECL", 2.5)
    assert one_sigma.sigma_arcmin > r90.sigma_arcmin
    assert best.update(one_sigma)
    assert best.update(r90)
    assert best.best == r90
    # a larger region arriving later does not replace the best one
    assert not best.update(_pos("QPO_GRM", 600.0))
    assert best.best == r90
    mxt = _pos("SRCLIST_MXT", 1.2, version=1)
    assert best.update(mxt)
    # another burst's position is ignored
    assert not best.update(mxt.model_copy(update={"burst_id": "other", "error_radius_arcmin": 0.1}))
    # a systematic added in quadrature widens the region
    assert _pos("X", 1.2, systematic_arcmin=1.0).sigma_arcmin > mxt.sigma_arcmin
    # a newer version of the same product replaces it even when larger; an older one does not
    assert not best.update(mxt.model_copy(update={"version": 0, "error_radius_arcmin": 0.5}))
    assert best.update(mxt.model_copy(update={"version": 2, "error_radius_arcmin": 3.0}))
    assert best.best == r90
    assert [changed for _, changed in best.history] == [
        True, True, True, False, True, False, False, True,
    ]  # fmt: skip


def _candidates() -> list[TransientCandidate]:
    """An afterglow 4' from an ECLAIRs-like centre, two unrelated variables."""
    out = []
    for i, (dx, dy, snr, alpha) in enumerate(
        [
            (4.0, 0.5, 20.0, 1.1),  # the afterglow (fading)
            (1.0, -0.3, 60.0, -0.1),  # brightest: a constant variable near the centre
            (2.0, 0.0, 15.0, 1.1),  # a fading unrelated flare, nearer the centre
        ]
    ):
        ra, dec = _offset(RA0, DEC0, dx, dy)
        out.append(TransientCandidate(ra, dec, snr, decay_index=alpha, decay_error=0.1, index=i))
    return out


def test_a_better_position_updates_the_choice() -> None:
    cands = _candidates()
    wide = choose_afterglow(cands, _pos("QPO_ECL", 10.0))
    # the wide region holds them all: the fading flare nearer the centre is the most probable
    assert all(c.in_region for c in wide.candidates)
    assert wide.chosen is not None and wide.chosen.candidate.index == 2
    # the constant source is disfavoured by its light curve despite being the brightest
    by = wide.by_index()
    assert by[1].fading_factor < 0.1 < 10.0 < by[0].fading_factor
    # MXT's position on the afterglow (1.2' r90, 0.3' off) moves the choice to it
    mxt = _pos("SRCLIST_MXT", 1.2, dx=4.2, dy=0.4)
    narrow = choose_afterglow(cands, mxt)
    assert narrow.chosen is not None and narrow.chosen.candidate.index == 0
    assert narrow.chosen.probability > 0.95
    assert narrow.chosen.in_region
    # the candidates outside the region are still reported, with their (small) probability
    others = [c for c in narrow.candidates if c.candidate.index != 0]
    assert len(others) == 2 and not any(c.in_region for c in others)
    assert all(0.0 < c.probability < 0.01 for c in others)
    total = sum(c.probability for c in narrow.candidates) + narrow.p_none
    assert total == pytest.approx(1.0)
    assert angular_separation_arcmin(mxt.ra_deg, mxt.dec_deg, cands[0].ra_deg, cands[0].dec_deg) < (
        mxt.radius_arcmin(0.9)
    )
    cards = dict((k, v) for k, v, _ in association_cards(mxt, narrow))
    assert cards["ALRTPOS"] is True and cards["ALRTSRC"] == "SRCLIST_MXT"
    assert cards["INREGION"] is True and cards["PASSOC"] > 0.95
    assert dict((k, v) for k, v, _ in association_cards(None, None)) == {"ALRTPOS": False}


def test_no_candidate_gives_no_choice() -> None:
    choice = choose_afterglow([], _pos("QPO_ECL", 10.0))
    assert choice.chosen is None and choice.p_none == 1.0


def test_probabilities_are_calibrated_on_simulated_fields() -> None:
    # Fields drawn from the model the choice assumes: unrelated variables as a Poisson
    # process of density rho in a disc, the afterglow (with probability q) at a Gaussian
    # offset from the alert position, decay indices from the two populations with a
    # measurement error. The summed probabilities then predict how often the candidate
    # with them is the afterglow, within the binomial scatter.
    cfg = AssociationConfig(variable_density_per_arcmin2=0.05, prior_detected=0.6)
    rng = np.random.default_rng(7)
    pos = _pos("QPO_ECL", 6.0)
    sigma = pos.sigma_arcmin
    radius = 7 * sigma
    pred = obs = var = 0.0
    pred_none = obs_none = var_none = 0.0
    pred_top = obs_top = var_top = 0.0
    for _ in range(600):
        n_var = rng.poisson(cfg.variable_density_per_arcmin2 * math.pi * radius**2)
        rr = radius * np.sqrt(rng.uniform(size=n_var))
        th = rng.uniform(0, 2 * math.pi, n_var)
        xy = list(zip(rr * np.cos(th), rr * np.sin(th), strict=True))
        alphas = list(rng.normal(cfg.variable_decay_mean, cfg.variable_decay_scatter, n_var))
        has_ag = rng.uniform() < cfg.prior_detected
        if has_ag:
            xy.append(tuple(rng.normal(0.0, sigma, 2)))
            alphas.append(rng.normal(cfg.afterglow_decay_mean, cfg.afterglow_decay_scatter))
        cands = []
        for i, ((x, y), a) in enumerate(zip(xy, alphas, strict=True)):
            ra, dec = _offset(RA0, DEC0, x, y)
            err = 0.2
            cands.append(
                TransientCandidate(ra, dec, 10.0, 0.0, a + rng.normal(0, err), err, index=i)
            )
        choice = choose_afterglow(cands, pos, cfg)
        ag_index = len(xy) - 1 if has_ag else None
        for c in choice.candidates:
            pred += c.probability
            var += c.probability * (1 - c.probability)
            obs += c.candidate.index == ag_index
        if choice.chosen is not None:
            p = choice.chosen.probability
            pred_top, var_top = pred_top + p, var_top + p * (1 - p)
            obs_top += choice.chosen.candidate.index == ag_index
        pred_none += choice.p_none
        var_none += choice.p_none * (1 - choice.p_none)
        obs_none += not has_ag
    assert abs(obs - pred) < 4 * math.sqrt(var), (obs, pred, var)
    assert abs(obs_top - pred_top) < 4 * math.sqrt(var_top), (obs_top, pred_top)
    assert abs(obs_none - pred_none) < 4 * math.sqrt(var_none), (obs_none, pred_none)
