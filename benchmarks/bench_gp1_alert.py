"""Benchmark GP1 on one 2k x 2k alert image: raw to photometry products, split per step.

One simulated COLIBRI alert frame (2048 x 2048 plus overscan, seeded) with masters equal to
the simulated detector, processed

1. in plain Python, module by module (reduction, findstars, astrometry, photometry,
   subtraction, products), each timed;
2. by the Prefect flow ``gp1_reduction`` on the same frame (fresh output): the difference
   with (1) is the Prefect overhead.

Target: raw to products within 10 s wall on this machine (the requirement is 5 minutes).
Also prints the PSF photometry ratio of our numba fitter against photutils' PSFPhotometry
on the same sources (same model), measured in the same run.

Run ``python -m benchmarks.bench_gp1_alert`` (or the file directly).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits


def _masters(truth: dict, out: Path, band: str) -> dict[str, str]:
    from svomflow.tasks.ccd.master_builders import MasterFrame

    td = Path(truth["truth_dir"])
    det = truth["detector"]
    g = det["gain"]

    def m(kind: str, data: np.ndarray, meta: dict) -> MasterFrame:
        d = np.asarray(data, np.float32)
        return MasterFrame(kind, d, np.full_like(d, 1e-3), np.full(d.shape, 7, np.int16), meta)

    return {
        "BIAS": str(
            m(
                "BIAS",
                fits.getdata(td / "bias_structure.fits"),
                {"RDNOISE": det["read_noise_e"] / g},
            ).write(out / "mbias.fits")
        ),
        "DARK": str(
            m(
                "DARK",
                fits.getdata(td / "dark_rate.fits") / g,
                {"CCDTEMP": det["dark_ref_temperature_c"]},
            ).write(out / "mdark.fits")
        ),
        "FLAT": str(
            m("FLAT", fits.getdata(td / f"flat_{band}.fits"), {}).write(out / "mflat.fits")
        ),
    }


def main() -> None:
    """Run the benchmark and print the figures."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from svomflow.simulation.colibri import ScienceSpec, simulate_colibri_night
    from svomflow.tasks.gp1 import analysis
    from svomflow.tasks.gp1.config import GP1Config
    from svomflow.tasks.gp1.sequence import build_products

    tmp = Path(tempfile.mkdtemp(prefix="bench_gp1_"))
    os.environ.setdefault("SVOMFLOW_HOME", str(tmp / "home"))
    t0 = time.perf_counter()
    truth = simulate_colibri_night(
        tmp / "night", 11, n_bias=5, n_dark=5, n_flat_per_filter=5, flat_filters=["r"],
        science=ScienceSpec(n_frames=1),
    )  # fmt: skip
    print(f"simulated 2k x 2k night in {time.perf_counter() - t0:.1f} s")
    masters = _masters(truth, tmp, "r")
    raw = tmp / "night" / "raw" / truth["science"]["frames"][0]["file"]

    def config(out: str) -> GP1Config:
        cfg = GP1Config(output_dir=out, trigger_time=truth["science"]["trigger_time"])
        cfg.steps.astrometry.reference_catalog = str(tmp / "night" / "refcat")
        cfg.steps.reduction.overrides = masters
        return cfg

    # Warm-up on a copy (numba compilation is cached on disk after the first run ever).
    warm = config(str(tmp / "warm"))
    warm.steps.stacking.enabled = False
    st = analysis.run_reduction(raw, warm)
    for fn in (
        analysis.run_findstars,
        analysis.run_astrometry,
        analysis.run_photometry,
        analysis.run_subtraction,
    ):
        st = fn(st, warm)
    build_products(st["work_dir"], warm)  # imports (prefect, matplotlib) happen once per process

    def plain_run(out: str, cosmic_rays: bool) -> tuple[dict, dict, dict[str, float], float]:
        cfg = config(out)
        cfg.steps.reduction.cosmic_rays = cosmic_rays
        cfg.steps.stacking.enabled = False  # one image: products come from its difference
        steps = [
            ("reduction", None),
            ("findstars", analysis.run_findstars),
            ("astrometry", analysis.run_astrometry),
            ("photometry", analysis.run_photometry),
            ("subtraction", analysis.run_subtraction),
        ]
        times: dict[str, float] = {}
        t_all = time.perf_counter()
        st: dict = {}
        for name, fn in steps:
            t = time.perf_counter()
            st = analysis.run_reduction(raw, cfg) if fn is None else fn(st, cfg)
            times[name] = time.perf_counter() - t
        t = time.perf_counter()
        seq = build_products(st["work_dir"], cfg)
        times["products"] = time.perf_counter() - t
        return st, seq, times, time.perf_counter() - t_all

    st, seq, times, plain = plain_run(str(tmp / "plain"), True)
    _, _, times_fast, plain_fast = plain_run(str(tmp / "plain_fast"), False)
    cfg = config(str(tmp / "plain"))
    print(
        f"\none alert image, {st['n_sources']} sources, {st['astrometry_n']} astrometric "
        f'stars (RMS {st["astrometry_rms_arcsec"]:.3f}"), ZP {st["zp"]:.3f} +- '
        f'{st["zp_err"]:.3f}, FWHM {st["fwhm_arcsec"]:.2f}", 5-sigma limit '
        f"{st['maglim']:.2f}, {st['n_candidates']} candidate(s)"
    )
    tr = seq["transient"]
    if tr is not None:
        ag = truth["science"]["afterglow"]
        d = (
            np.hypot(
                (tr["ALPHA_J2000"] - ag["ra"]) * np.cos(np.deg2rad(ag["dec"])),
                tr["DELTA_J2000"] - ag["dec"],
            )
            * 3600
        )
        print(f'afterglow found {d:.3f}" from the injected position, S/N {tr["SNR"]:.0f}')
    print("\nstep          wall (s), with L.A.Cosmic   without (CR vetting only)")
    for k, v in times.items():
        print(f"  {k:<12s} {v:7.2f}              {times_fast[k]:7.2f}")
    for label, total in (("total", plain), ("total (no L.A.Cosmic)", plain_fast)):
        print(f"  {label:<22s} {total:7.2f}   (target < 10 s: {'OK' if total < 10 else 'MISSED'})")

    # The same image through the Prefect flow, interleaved with plain runs (best of 2 each:
    # the machine is shared, single timings vary by seconds).
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness
    from svomflow.flows.gp1 import gp1_reduction

    def flow_cfg(out: str) -> dict:
        c = config(out)
        c.steps.stacking.enabled = False
        c.steps.reduction.cosmic_rays = False
        return c.model_dump(mode="json")

    flow_best, plain_best = np.inf, np.inf
    with (
        prefect_test_harness(server_startup_timeout=120),
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
    ):
        gp1_reduction(images=[str(raw)], config=flow_cfg(str(tmp / "flow_warm")))
        for rep in range(2):
            plain_best = min(plain_best, plain_run(str(tmp / f"plain_rep{rep}"), False)[3])
            t = time.perf_counter()
            res = gp1_reduction(images=[str(raw)], config=flow_cfg(str(tmp / f"flow{rep}")))
            flow_best = min(flow_best, time.perf_counter() - t)
            assert not res["failed"], res["failed"]
    print(
        f"\nPrefect flow gp1_reduction (no L.A.Cosmic), best of 2: {flow_best:.2f} s wall; "
        f"plain Python best of 2: {plain_best:.2f} s; Prefect overhead "
        f"{flow_best - plain_best:+.2f} s for 6 task runs + 1 flow run"
    )

    # PSF photometry: our numba fitter vs photutils PSFPhotometry, same model and sources.
    from svomflow.tasks.gp1.reduction import read_reduced
    from svomflow.tasks.photometry.extract import estimate_background
    from svomflow.tasks.photometry.measure import fit_psf_photometry, noise_map, psf_photometry
    from svomflow.tasks.photometry.psf import PSFModel

    img = read_reduced(st["reduced"])
    data = np.where(img.mask, 0.0, img.data).astype(float)
    bk = estimate_background(data, cfg.steps.findstars.extract)
    sub = data - bk.back()
    err = noise_map(bk.rms(), sub, st["gain"])
    cat = fits.getdata(st["photometry"], 1)
    x = np.asarray(cat["XWIN_IMAGE"], float)[:300] - 1
    y = np.asarray(cat["YWIN_IMAGE"], float)[:300] - 1
    psf = PSFModel(**st["psf"])
    t = time.perf_counter()
    ours = fit_psf_photometry(sub, x, y, psf, error=err, mask=img.mask)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    peer = psf_photometry(sub, x, y, psf, error=err, mask=img.mask)
    t_peer = time.perf_counter() - t
    ok = (ours["FLAGS_PSF"] == 0) & np.isfinite(peer["FLUX_PSF"]) & (peer["FLUXERR_PSF"] > 0)
    dev = np.abs(ours["FLUX_PSF"] - peer["FLUX_PSF"])[ok] / peer["FLUXERR_PSF"][ok]
    print(
        f"\nPSF photometry of {len(x)} sources: ours {t_ours * 1e3:.0f} ms, photutils "
        f"{t_peer * 1e3:.0f} ms, ratio {t_peer / t_ours:.0f}x; flux agreement median "
        f"{np.median(dev):.3f} sigma, max {np.max(dev):.2f} sigma"
    )
    print(f"\noutputs in {tmp}")


if __name__ == "__main__":
    main()
