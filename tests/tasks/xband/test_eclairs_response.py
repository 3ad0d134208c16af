"""ECLAIRs response for a source position: area formula, redistribution, files, simulator agreement."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.errors import InputDataError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry, cos_theta, mask_pattern, shadow
from svomflow.instruments.eclairs_detector import EclairsResponse
from svomflow.products.ogip_spectra import read_arf, read_response
from svomflow.tasks.coded_mask.response import (
    eclairs_response,
    write_eclairs_arf,
    write_eclairs_rmf,
    write_eclairs_rsp,
)

DETECTOR = EclairsResponse.from_instrument(load_instrument("eclairs"))


def test_effective_area_is_shadow_times_cosine_times_efficiency() -> None:
    inst = load_instrument("eclairs")
    geom = MaskGeometry.from_instrument(inst)
    usable = np.ones(geom.shape, dtype=bool)
    usable[:10, :] = False
    r = eclairs_response(0.12, -0.05, usable_pixels=usable, detector=DETECTOR)
    lit = float(np.sum(shadow(geom, mask_pattern(geom), 0.12, -0.05) * usable))
    expected = geom.pixel_area_cm2 * float(cos_theta(0.12, -0.05)) * lit
    # 10-40 keV: the efficiency table is 1 there
    mid = np.sqrt(r.energ_lo * r.energ_hi)
    sel = (mid > 11) & (mid < 39)
    np.testing.assert_allclose(r.arf_cm2[sel], expected, rtol=1e-12)
    assert r.coding_fraction == pytest.approx(lit / (geom.open_fraction * usable.sum()))
    # below the efficiency table (< 4 keV) nothing is detected
    assert np.all(r.arf_cm2[r.energ_hi <= 4.0] == 0)


def test_redistribution_rows_are_probabilities_inside_the_channels() -> None:
    r = eclairs_response(0.0, 0.0, detector=DETECTOR)
    mid = np.sqrt(r.energ_lo * r.energ_hi)
    rows = r.rmf.sum(axis=1)
    inside = (mid > 8) & (mid < 150)
    np.testing.assert_allclose(rows[inside], 1.0, atol=1e-6)
    # beyond the last channel (163.84 keV) photons are not recorded
    assert np.all(rows[r.energ_lo > 170] < 1e-6)
    # the centroid of a row sits at the photon energy (Gaussian redistribution)
    centre = 0.5 * (r.e_min + r.e_max)
    i = int(np.argmin(np.abs(mid - 60.0)))
    assert np.sum(r.rmf[i] * centre) / rows[i] == pytest.approx(mid[i], rel=2e-3)


def test_rsp_and_rmf_arf_files_round_trip(tmp_path) -> None:
    r = eclairs_response(0.1, 0.05, ra_dec=(150.0, 20.0), detector=DETECTOR)
    rsp = read_response(write_eclairs_rsp(tmp_path / "e.rsp", r, validity=(0.0, 100.0)))
    assert rsp.has_area and rsp.first_channel == 0 and rsp.tstart == 0.0
    np.testing.assert_allclose(rsp.matrix, r.matrix, rtol=1e-6, atol=1e-6 * r.matrix.max())
    rmf = read_response(write_eclairs_rmf(tmp_path / "e.rmf", r))
    both = rmf.with_arf(read_arf(write_eclairs_arf(tmp_path / "e.arf", r)))
    np.testing.assert_allclose(both.matrix, r.matrix, rtol=1e-6, atol=1e-6 * r.matrix.max())


def test_source_outside_the_field_is_a_clear_error() -> None:
    with pytest.raises(InputDataError, match="outside the field"):
        eclairs_response(3.0, 3.0, detector=DETECTOR)


def test_folded_power_law_matches_the_simulator() -> None:
    """Simulated ECLAIRs counts of a power law agree with the response-folded prediction."""
    from svomflow.simulation.eclairs import simulate_eclairs
    from svomflow.simulation.photons import PhotonList

    rng = np.random.default_rng(5)
    att = Attitude(150.0, 20.0, 0.0)
    ty, tz = 0.1, -0.08
    ra, dec = att.from_projected(ty, tz)
    n, lo, hi, g = 400_000, 3.0, 200.0, -1.6
    u = rng.random(n)
    e = (lo ** (g + 1) + u * (hi ** (g + 1) - lo ** (g + 1))) ** (1 / (g + 1))
    photons = PhotonList(np.sort(rng.uniform(0, 10, n)), e, float(ra), float(dec), 1024.0, "pl")
    ev = simulate_eclairs(
        [photons],
        attitude=att,
        t_start=0.0,
        t_stop=10.0,
        rng=rng,
        background=False,
        run_trigger=False,
    )
    r = eclairs_response(ty, tz, detector=DETECTOR)
    # expected photons per cm2 in each response bin, then folded
    integ = (r.energ_hi ** (g + 1) - r.energ_lo ** (g + 1)) / (hi ** (g + 1) - lo ** (g + 1))
    integ[(r.energ_lo < lo) | (r.energ_hi > hi)] = 0.0
    inside = (r.energ_lo >= lo) & (r.energ_hi <= hi)
    # bins straddling the sampling limits: clip to [lo, hi]
    for i in np.flatnonzero(~inside):
        a, b = max(r.energ_lo[i], lo), min(r.energ_hi[i], hi)
        integ[i] = (
            max(b ** (g + 1) - a ** (g + 1), 0.0) / (hi ** (g + 1) - lo ** (g + 1)) if b > a else 0
        )
    pred = (n / 1024.0) * integ @ r.matrix
    edges = np.arange(5.0, 151.0, 5.0)
    centre = 0.5 * (r.e_min + r.e_max)
    obs = np.histogram(centre[ev.pi], edges)[0]
    exp = np.array([pred[(centre >= a) & (centre < b)].sum() for a, b in itertools.pairwise(edges)])
    chi2 = float(np.sum((obs - exp) ** 2 / exp))
    dof = exp.size
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)
    assert obs.sum() == pytest.approx(exp.sum(), rel=5 / np.sqrt(exp.sum()))
