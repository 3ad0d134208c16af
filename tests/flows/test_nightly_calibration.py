"""The nightly master-calibration flow on small simulated nights (Prefect test harness)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from svomflow.calibration.caldb import open_caldb
from svomflow.flows.nightly_calibration import nightly_master_calibration
from svomflow.instruments.ccd_camera import load_camera
from svomflow.simulation.colibri import expected_science_electrons, simulate_colibri_night
from svomflow.tasks.ccd.reduce import DQ_BITS, ReductionConfig

pytestmark = pytest.mark.integration

SIZE = (96, 128)
KW = dict(
    size=SIZE, n_bias=5, n_dark=5, dark_exposures=(60.0,), n_flat_per_filter=5, flat_filters=("r",)
)


def test_nightly_flow_promotes_good_and_rejects_bad(prefect_harness, tmp_path):
    caldb_root = str(tmp_path / "caldb")
    out = str(tmp_path / "calib")
    n1 = tmp_path / "n1"
    truth1 = simulate_colibri_night(n1, seed=1, night="2026-11-23", science=True, **KW)
    s1 = nightly_master_calibration(
        "2026-11-23", str(n1 / "raw"), out_dir=out, caldb_root=caldb_root
    )
    assert s1["status"] == "done"
    verdicts = {g["type"]: g["passed"] for g in s1["groups"]}
    assert verdicts == {"bias": True, "dark": True, "flat": True}, s1["groups"]
    db = open_caldb(caldb_root)
    first_bias = db.select("BIAS", instrument="DDRAGO-B", time="2026-11-24T12:00:00")

    # masters, QC reports and QC history are products of the night, with provenance
    from svomflow.products import ProductStore

    rows = {(r.type_code, r.instrument): r for r in ProductStore(out).list(obs_id="2026-11-23")}
    masters = [inst for code, inst in rows if code == "MASTER"]
    assert len(masters) == 3 and any(code == "QCHIST" for code, _ in rows)
    assert any(code == "QCPLOT" for code, _ in rows)
    assert all(("QC", i) in rows and ("QCJSON", i) in rows for i in masters)
    dark = rows[("MASTER", next(i for i in masters if i.startswith("DDRAGO-B-dark")))]
    assert len(dark.provenance["inputs"]) == 5  # the five raw darks, with checksums
    used = {c["codename"]: c for c in dark.provenance["calibration"]}
    assert used["BIAS"]["sha256"] == first_bias.sha256
    assert used["BIAS"]["index_version"] is not None
    assert dark.provenance["config"]["min_frames"] is not None
    assert Path(dark.path).parent == Path(out).resolve() / "2026-11-23" / dark.instrument

    # The science frame of night 1 reduces with masters picked by time from the CALDB.
    sci_file = Path(truth1["raw_dir"]) / truth1["science"]["frames"][0]["file"]
    l1a = _reduce_with_caldb(sci_file, tmp_path / "l1a.fits", db)
    from astropy.io import fits

    with fits.open(l1a) as h:
        sci, var, dq = h["SCI"].data, h["VAR"].data, h["DQ"].data
        assert h[0].header["CALBIAS"] == Path(first_bias.path).name
    expected = expected_science_electrons(truth1, 0)
    good = dq == 0
    z2 = ((sci - expected) ** 2 / var)[good]
    assert abs(z2.mean() - 1.0) < 6 * np.sqrt(2.0 / z2.size) + 0.02, z2.mean()

    # Night 2: light leak in the biases, saturated flats -> both rejected, darks fine.
    n2 = tmp_path / "n2"
    simulate_colibri_night(
        n2, seed=2, night="2026-11-24", science=False, bad_calibration=True, **KW
    )
    s2 = nightly_master_calibration(
        "2026-11-24", str(n2 / "raw"), out_dir=out, caldb_root=caldb_root
    )
    by_type = {g["type"]: g for g in s2["groups"]}
    assert not by_type["bias"]["passed"]
    assert any("fraction_beyond_6sigma" in r for r in by_type["bias"]["reasons"])
    assert not by_type["flat"]["passed"]
    assert (
        Path(by_type["bias"]["candidate"]).exists() and Path(by_type["bias"]["qc_report"]).exists()
    )
    # The previous master stays the one selected after night 2.
    after = db.select("BIAS", instrument="DDRAGO-B", time="2026-11-25T12:00:00")
    assert after.sha256 == first_bias.sha256
    hist = Table.read(s2["qc"]["history"])
    assert len(hist) == 6 and hist["PASSED"].sum() == 4
    assert all(Path(p).exists() for p in s2["qc"]["plots"])


def _reduce_with_caldb(raw_file: Path, out: Path, db) -> Path:
    """Reduce a raw frame to L1a with the masters the CALDB selects for its header."""
    from svomflow.calibration.calibration_set import CalibrationSet
    from svomflow.products.catalogue import FitsModel
    from svomflow.products.ccd_frames import read_raw
    from svomflow.tasks.ccd.reduce import (
        frame_master_selections,
        l1a_hdus,
        masters_for_frame,
        reduce_frame,
    )

    cam = load_camera()
    raw, header = read_raw(raw_file, cam)
    selections = frame_master_selections(header, cam)
    reqs = [r for s in selections.values() for r in s.requirements(optional=False)]
    cal = CalibrationSet.resolve(reqs, header["DATE-OBS"], caldb=db)
    masters, missing = masters_for_frame(selections, cal)
    assert masters is not None, missing
    frame = reduce_frame(raw, header, cam, masters, ReductionConfig(cosmic_rays=False))
    FitsModel.from_hdus(l1a_hdus(frame, masters)).write(out)
    return out


def test_nightly_flow_empty_night(prefect_harness, tmp_path):
    n = tmp_path / "n"
    simulate_colibri_night(
        n, seed=3, n_bias=0, n_dark=0, n_flat_per_filter=0, size=(32, 32), science=True
    )
    s = nightly_master_calibration(
        "2026-11-23", str(n / "raw"), out_dir=str(tmp_path / "o"), caldb_root=str(tmp_path / "c")
    )
    assert s["status"] == "empty" and "nothing to do" in s["message"]


def test_reduction_flags(tmp_path):
    """Saturated pixels and hot pixels are flagged; cosmic rays found by L.A.Cosmic."""
    from svomflow.products.ccd_frames import read_raw
    from svomflow.tasks.ccd.master_builders import (
        build_master_bias,
        build_master_dark,
        build_master_flat,
    )
    from svomflow.tasks.ccd.reduce import MasterSet, reduce_frame

    truth = simulate_colibri_night(tmp_path, seed=4, **{**KW, "size": (128, 128)})
    cam = load_camera()
    raw = Path(truth["raw_dir"])
    files = {
        k: [raw / f["file"] for f in truth["calibration_frames"] if f["type"] == k]
        for k in ("bias", "dark", "flat")
    }
    b = build_master_bias(files["bias"], cam)
    d = build_master_dark(files["dark"], cam, b)
    f = build_master_flat(files["flat"], cam, b, d)
    data, header = read_raw(raw / truth["science"]["frames"][0]["file"], cam)
    data = data.astype(np.float64)
    data[5, 5] = np.nan
    data[10, 10] = 65000
    data[40, 41] += 2000.0  # a one-pixel cosmic-ray hit on the sky
    red = reduce_frame(data, header, cam, MasterSet(b, d, f), ReductionConfig())
    assert red.dq[5, 5] & DQ_BITS["NONFINITE"] and np.isnan(red.sci[5, 5])
    assert red.dq[10, 10] & DQ_BITS["SATURATED"]
    assert red.dq[40, 41] & DQ_BITS["COSMIC_RAY"]
    from svomflow.simulation.colibri import read_truth_map

    rate = read_truth_map(truth, "dark_rate")
    assert np.all(red.dq[rate > 2.0] & DQ_BITS["BAD"])
    assert not np.any(red.dq[rate < 0.01] & DQ_BITS["BAD"])
