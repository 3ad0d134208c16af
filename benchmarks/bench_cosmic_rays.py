"""Benchmark: L.A.Cosmic on a 2k x 2k alert image, whole frame vs the pre-screened regions.

The same simulated COLIBRI alert frame as ``bench_gp1_alert`` (seed 11) is reduced without
cosmic-ray cleaning, then its cosmic rays are detected

* on the whole frame (astroscrappy, the peer: what the reduction did before), and
* on the regions the pre-screen keeps (``ReductionConfig.cr_prescreen``, the default),

and the two masks are compared pixel by pixel. Target: the same mask, and the cleaning no
longer dominating the 5 s raw-to-products budget of one alert image.

Run ``python -m benchmarks.bench_cosmic_rays``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from benchmarks._report import load, result


def main() -> None:
    """Simulate one alert frame, reduce it, time both cleanings, compare the masks."""
    from svomflow.instruments.ccd_camera import load_camera
    from svomflow.products.ccd_masters import read_master
    from svomflow.simulation.colibri import ScienceSpec, simulate_colibri_night
    from svomflow.tasks.ccd.reduce import (
        DQ_BITS,
        MasterSet,
        ReductionConfig,
        _cosmic_rays,
        cosmic_ray_boxes,
        reduce_frame,
    )

    from benchmarks.bench_gp1_alert import _masters

    with tempfile.TemporaryDirectory(prefix="bench_cr_") as tmp:
        root = Path(tmp)
        os.environ.setdefault("SVOMFLOW_HOME", str(root / "home"))
        truth = simulate_colibri_night(
            root / "night", 11, n_bias=5, n_dark=5, n_flat_per_filter=5, flat_filters=["r"],
            science=ScienceSpec(n_frames=1),
        )  # fmt: skip
        paths = _masters(truth, root, "r")
        masters = MasterSet(*(read_master(paths[k]) for k in ("BIAS", "DARK", "FLAT")))
        camera = load_camera()
        raw = root / "night" / "raw" / truth["science"]["frames"][0]["file"]
        with fits.open(raw) as hdul:
            data, header = hdul[0].data.astype(float), hdul[0].header
        t = time.perf_counter()
        red = reduce_frame(data, header, camera, masters, ReductionConfig(cosmic_rays=False))
        t_reduce = time.perf_counter() - t
    rn_e = float(masters.bias.meta.get("RDNOISE", camera.read_noise_adu)) * camera.gain
    sci, dq = red.sci.astype(np.float64), red.dq
    tiled_cfg = ReductionConfig()
    cosmic_ray_boxes(sci[:64, :64].astype(np.float32), rn_e, tiled_cfg)  # compile (cached)
    times: dict[str, float] = {}
    masks = {}
    for name, cfg in (("whole frame", ReductionConfig(cr_prescreen=False)), ("tiled", tiled_cfg)):
        t = time.perf_counter()
        masks[name] = (_cosmic_rays(sci, dq, rn_e, cfg) & DQ_BITS["COSMIC_RAY"]) > 0
        times[name] = time.perf_counter() - t
    t = time.perf_counter()
    boxes = cosmic_ray_boxes(np.nan_to_num(sci).astype(np.float32), rn_e, tiled_cfg)
    t_screen = time.perf_counter() - t
    area = sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes) / sci.size
    diff = int(np.count_nonzero(masks["tiled"] != masks["whole frame"]))
    ratio = times["whole frame"] / times["tiled"]
    print(
        f"{load()}; frame {sci.shape[1]} x {sci.shape[0]}, reduction without cleaning {t_reduce:.2f} s"
    )
    print(
        f"L.A.Cosmic whole frame (peer): {times['whole frame']:.2f} s, {masks['whole frame'].sum()} pixels"
    )
    print(
        f"pre-screened regions         : {times['tiled']:.2f} s ({t_screen:.2f} s pre-screen, "
        f"{len(boxes)} regions, {area:.0%} of the frame), {masks['tiled'].sum()} pixels"
    )
    print(f"speed-up {ratio:.1f}x; pixels whose flag differs: {diff}")
    result("GP1 cosmic rays on a 2k x 2k alert image: same mask as the whole frame",
           f"{diff} pixels differ of {masks['whole frame'].sum()} flagged", "-", diff == 0)  # fmt: skip
    result("GP1 cosmic rays: pre-screened regions vs whole-frame L.A.Cosmic",
           f"{times['tiled']:.2f} s ({area:.0%} of the frame)",
           f"{ratio:.1f}x faster than the whole frame ({times['whole frame']:.2f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
