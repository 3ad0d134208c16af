"""Monte Carlo: fold a known spectrum, Poisson-sample, fit; bias and error coverage."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.tasks import spectral as sp

TRUE_CPL = {"K": 0.05, "index": -0.8, "epeak": 300.0}


def _trials(synth, n_trials, seed, profile=False):
    rng = np.random.default_rng(seed)
    resp = synth.gaussian_response()
    pulls, inside = {"epeak": [], "index": []}, {"epeak": [], "index": []}
    for t in range(n_trials):
        ds = synth.simulate("cpl", TRUE_CPL, rng, resp, exposure=10.0, name=f"t{t}")
        res = sp.fit(ds, "cpl", stat="wstat")
        if profile:
            sp.errors(res, params=["epeak", "index"])
        for name in ("epeak", "index"):
            p = res.parameters[name]
            d = p.value - TRUE_CPL[name]
            pulls[name].append(d / p.error)
            if profile:
                inside[name].append(
                    p.error_low <= -d <= p.error_high or (-p.error_high <= d <= -p.error_low)
                )
            else:
                inside[name].append(abs(d) <= p.error)
    return {k: np.array(v) for k, v in pulls.items()}, {k: np.mean(v) for k, v in inside.items()}


def test_cpl_recovery_bias_and_coverage(synth):
    n = 100
    pulls, coverage = _trials(synth, n, seed=7)
    for name in ("epeak", "index"):
        # Unbiased: mean pull within 3 standard errors of 0; coverage of the 1-sigma
        # interval within 3 binomial sigmas of 68.3 %.
        assert abs(pulls[name].mean()) < 3.0 / np.sqrt(n) + 0.1, name
        assert abs(coverage[name] - 0.683) < 3 * np.sqrt(0.683 * 0.317 / n), name


@pytest.mark.slow
def test_cpl_profile_error_coverage_large(synth):
    n = 400
    pulls, coverage = _trials(synth, n, seed=11, profile=True)
    for name in ("epeak", "index"):
        assert abs(pulls[name].mean()) < 3.0 / np.sqrt(n) + 0.05
        assert abs(coverage[name] - 0.683) < 3 * np.sqrt(0.683 * 0.317 / n)


def test_band_recovery_on_bright_burst(synth):
    rng = np.random.default_rng(3)
    truth = {"K": 0.2, "alpha": -0.7, "beta": -2.4, "epeak": 250.0}
    ds = synth.simulate("band", truth, rng, synth.gaussian_response(), exposure=20.0)
    res = sp.errors(sp.fit(ds, "band", stat="cstat"))
    for name in ("alpha", "beta", "epeak"):
        p = res.parameters[name]
        d = truth[name] - p.value
        assert p.error_low * 3 <= d <= p.error_high * 3, name
    assert res.statistic == "wstat"
