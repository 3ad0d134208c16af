"""Benchmark ECLAIRs simulation and imaging against plain NumPy peers (ratios, one run).

Cases (seeded):

* simulate a 100 s bright burst with background (about 1e6 events): wall time and events/s.
* shadowgram of 1e6 events in a band and interval: numba one-pass kernel vs NumPy boolean
  selection + ``np.histogram2d``.
* correlation of an 80x80 shadowgram with the 138x138 pixel-grid mask: FFT
  (:class:`Correlator`) vs numba direct sum (the reference).
* one sky image (all FFT terms) and one full localisation (image + shadow-model fit).

Run ``python -m benchmarks.bench_eclairs`` (or the file directly).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from svomflow.config import load_instrument
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.coded_mask import MaskGeometry
from svomflow.simulation.eclairs import simulate_eclairs
from svomflow.simulation.photons import PhotonList
from svomflow.tasks.coded_mask._kernels import accumulate_shadowgram, correlate_direct
from svomflow.tasks.coded_mask.imaging import MaskModel, make_shadowgram, sky_image
from svomflow.tasks.coded_mask.position import localise


def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    """Run the cases and print times and ratios."""
    inst = load_instrument("eclairs")
    geom = MaskGeometry.from_instrument(inst)
    model = MaskModel.from_geometry(geom)
    att = Attitude(120.0, 30.0, 10.0)
    rng = np.random.default_rng(1)
    n = 2_500_000
    ra, dec = att.from_projected(0.2, -0.1)
    t = np.sort(1000.0 + rng.exponential(20.0, n))
    e = 4.0 * (1 - rng.random(n)) ** (-1 / 0.6)
    burst = PhotonList(t, e, float(ra), float(dec), area_cm2=1100.0, label="grb")

    def sim() -> Any:
        return simulate_eclairs(
            [burst], attitude=att, t_start=990.0, t_stop=1100.0, rng=np.random.default_rng(2)
        )

    sim()  # warm-up (numba compile, diffuse map)
    t_sim, ev = _best_of(sim, 2)
    print(
        f"simulate 110 s bright burst: {len(ev):,} events in {t_sim:.2f} s "
        f"({len(ev) / t_sim / 1e6:.2f} M events/s, incl. rate trigger)"
    )

    y, z, tt, ee = (
        ev.y.astype(np.int64),
        ev.z.astype(np.int64),
        np.ascontiguousarray(ev.time, dtype=np.float64),  # the kernel's declared types
        ev.energy_kev.astype(float),
    )

    def numba_sg() -> Any:
        return accumulate_shadowgram(y, z, tt, ee, 1000.0, 1020.0, 4.0, 50.0, 80, 80)

    def numpy_sg() -> Any:
        s = (tt >= 1000.0) & (tt < 1020.0) & (ee >= 4.0) & (ee < 50.0)
        return np.histogram2d(y[s], z[s], bins=[np.arange(81), np.arange(81)])[0]

    numba_sg()
    t_nb, a = _best_of(numba_sg, 5)
    t_np, b = _best_of(numpy_sg, 5)
    assert np.array_equal(a, b.astype(np.int64))
    print(
        f"shadowgram of {len(ev):,} events: numba {t_nb * 1e3:.1f} ms, "
        f"NumPy {t_np * 1e3:.1f} ms, ratio {t_np / t_nb:.1f}x"
    )

    counts = a.astype(float)
    correlate_direct(counts[:4, :4], model.grid[:6, :6])
    t_fft, c1 = _best_of(lambda: model.correlator(counts), 20)
    t_dir, c2 = _best_of(lambda: correlate_direct(counts, model.grid), 1)
    assert np.allclose(c1, c2, atol=1e-6)
    print(
        f"correlation 80x80 with 138x138: FFT {t_fft * 1e3:.2f} ms, "
        f"numba direct {t_dir * 1e3:.0f} ms, ratio {t_dir / t_fft:.0f}x"
    )

    sg = make_shadowgram(
        tt,
        y,
        z,
        ee,
        shape=geom.shape,
        band_kev=(4.0, 50.0),
        interval=(1000.0, 1020.0),
        background_interval=(990.0, 999.0),
        gti=ev.gti,
    )
    t_img, _ = _best_of(lambda: sky_image(sg, model), 5)
    t_loc, pos = _best_of(lambda: localise(sg, model, att), 3)
    print(
        f"sky image {t_img * 1e3:.1f} ms; localisation (image + fit) {t_loc * 1e3:.0f} ms, "
        f"S/N {pos.snr:.0f}, r90 {pos.r90_arcmin:.1f} arcmin"
    )


if __name__ == "__main__":
    main()
