"""The uniformity map recovers the injected relative efficiency within its own errors."""

from __future__ import annotations

import numpy as np
import pytest
from svomflow.config import load_instrument
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.simulation.eclairs_pixel_health import PixelHealthScenario, simulate_pixel_health
from svomflow.tasks.eic.pixel_health import PixelHealthConfig, pixel_health
from svomflow.tasks.eic.uniformity import (
    UniformityConfig,
    flat_illumination,
    relative_efficiency,
    uniformity_map,
)


@pytest.fixture(scope="module")
def geometry():
    return MaskGeometry.from_instrument(load_instrument("eclairs"))


def _pulls(umap, truth):
    m = umap.measured
    t = truth / truth[m].mean()
    return (umap.efficiency[m] - t[m]) / umap.error[m]


def test_efficiency_recovered_within_errors_with_bad_pixels_left_out(geometry):
    illum = flat_illumination(geometry, 0.86)
    sc = PixelHealthScenario(days=1.0, bin_s=1200.0, noisy_rate=(0.3, 5.0))
    sim = simulate_pixel_health(np.random.default_rng(8), sc)
    health = pixel_health(sim.history, illum, config=PixelHealthConfig())
    res = uniformity_map(sim.history, health, illum, config=UniformityConfig())
    pulls = _pulls(res.umap, sim.efficiency)
    n = pulls.size
    # Poisson errors: pulls of mean 0 and unit spread (5-sigma bands for n ~ 6390 pixels)
    assert abs(pulls.mean()) < 5 / np.sqrt(n)
    assert abs(pulls.std() - 1.0) < 5 / np.sqrt(2 * n)
    # dead pixels have no efficiency; the map is normalised to mean 1
    for p in sim.pixels:
        if p.kind == "dead" and np.isnan(p.onset):
            assert not res.umap.measured[p.y, p.z]
    assert np.nanmean(res.umap.efficiency) == pytest.approx(1.0, abs=1e-12)
    figs = {f.name: f.value for f in res.figures}
    assert figs["efficiency_rms"] == pytest.approx(np.std(sim.efficiency), abs=0.005)
    assert res.products[0].type_code == "PIXUNIF"


def test_wrong_cxb_share_biases_the_map_where_the_mask_exposure_varies(geometry):
    sc = PixelHealthScenario(days=1.0, bin_s=1200.0, n_noisy=0, n_dead=0, n_intermittent=0)
    sim = simulate_pixel_health(np.random.default_rng(9), sc)
    good = np.broadcast_to((sim.history.exposure > 0)[:, None, None], sim.history.counts.shape)
    right = relative_efficiency(sim.history.counts, good, flat_illumination(geometry, 0.86))
    wrong = relative_efficiency(sim.history.counts, good, flat_illumination(geometry, 0.5))
    assert abs(_pulls(right, sim.efficiency).std() - 1.0) < 0.05
    assert _pulls(wrong, sim.efficiency).std() > 1.5


def test_flat_illumination_is_relative(geometry):
    assert np.all(flat_illumination(geometry, 0.0) == 1.0)
    s = flat_illumination(geometry, 0.86)
    assert s.mean() == pytest.approx(1.0) and s.std() > 0.01
    with pytest.raises(ValueError):
        flat_illumination(geometry, 1.5)
