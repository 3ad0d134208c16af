"""GP1 on fpack'd alert images: the same reduction as the plain frame, routing, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import load_camera
from svomflow.operations.gp1_watch import GP1Watcher
from svomflow.products.ccd_masters import MasterFrame
from svomflow.tasks.gp1.config import GP1Config, GP1WatchConfig, ReductionModule
from svomflow.tasks.gp1.inputs import read_image_file
from svomflow.tasks.gp1.reduction import reduce_pixels

SHAPE = (64, 96)  # trimmed image; the camera adds 32 overscan columns


def alert_frame(path: Path) -> Path:
    """A raw uint16 alert frame: sky, a few stars, a cosmic ray, a saturated star."""
    rng = np.random.default_rng(7)
    data = rng.normal(1100.0, 6.0, (SHAPE[0], SHAPE[1] + 32))
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    for x, y, f in [(20.3, 30.1, 4000.0), (70.8, 12.6, 900.0), (50.0, 50.0, 9e5)]:
        data[:, : SHAPE[1]] += (
            f / (2 * np.pi * 1.5**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 4.5)
        )
    data[40, 10] += 3000.0  # a cosmic ray
    data[:, SHAPE[1] :] = rng.normal(1000.0, 5.0, (SHAPE[0], 32))
    h = fits.Header()
    for k, v in {
        "INSTRUME": "DDRAGO-B",
        "EXPTYPE": "object",
        "OBSERVER": "svom",
        "EXPTIME": 60.0,
        "DATE-OBS": "2026-11-24T00:42:00.000",
        "FILTER": "r",
        "CCD-TEMP": -100.0,
        "TRIGID": "sb1",
    }.items():
        h[k] = v
    fits.PrimaryHDU(np.clip(data, 0, 65535).astype(np.uint16), header=h).writeto(path)
    return path


def fpack(src: Path, dst: Path, compression_type: str = "RICE_1") -> Path:
    """Write ``src``'s primary image as fpack does: empty primary, then a CompImageHDU."""
    with fits.open(src) as hdul:
        comp = fits.CompImageHDU(
            hdul[0].data, header=hdul[0].header, compression_type=compression_type
        )
        fits.HDUList([fits.PrimaryHDU(), comp]).writeto(dst)
    return dst


def masters(out: Path) -> dict[str, str]:
    """Bias, dark and flat masters with structure, so that each step changes the pixels."""
    rng = np.random.default_rng(2)

    def write(kind: str, data: np.ndarray, meta: dict) -> str:
        d = data.astype(np.float32)
        m = MasterFrame(kind, d, np.full_like(d, 1e-3), np.full(d.shape, 5, np.int16), meta)
        return str(m.write(out / f"{kind.lower()}.fits"))

    return {
        "BIAS": write("BIAS", rng.normal(3.0, 1.0, SHAPE), {"RDNOISE": 5.0}),
        "DARK": write("DARK", rng.uniform(0.0, 0.01, SHAPE), {"CCDTEMP": -100.0}),
        "FLAT": write("FLAT", rng.uniform(0.95, 1.05, SHAPE), {}),
    }


@pytest.mark.parametrize("compression", ["RICE_1", "GZIP_2"])
@pytest.mark.parametrize("with_masters", [True, False])
def test_fpacked_alert_reduces_to_the_same_image(tmp_path, compression, with_masters):
    cam = load_camera()
    plain = alert_frame(tmp_path / "alert.fits")
    fz = fpack(plain, tmp_path / "alert.fits.fz", compression)
    files = masters(tmp_path) if with_masters else {}
    cal = CalibrationSet.from_files({f"{cam.name}:{k}": v for k, v in files.items()})
    cfg = ReductionModule()
    a = reduce_pixels(read_image_file(plain, cam), cam, cfg, cal)
    b = reduce_pixels(read_image_file(fz, cam), cam, cfg, cal)
    assert a.header["REDLEVEL"] == ("full" if with_masters else "overscan")
    np.testing.assert_array_equal(b.data, a.data)
    np.testing.assert_array_equal(b.mask, a.mask)
    assert dict(b.header) == dict(a.header)
    assert b.calibration == a.calibration
    assert not [k for k in b.header if k.startswith("Z") or k == "XTENSION"]


def test_damaged_fpacked_alert_fails_naming_the_file(tmp_path):
    cam = load_camera()
    fz = fpack(alert_frame(tmp_path / "alert.fits"), tmp_path / "alert.fits.fz")
    blob = fz.read_bytes()
    cut = tmp_path / "cut.fits.fz"
    cut.write_bytes(blob[: len(blob) - 3000])
    with pytest.raises(InputDataError, match=r"cut\.fits\.fz: .*truncated"):
        read_image_file(cut, cam)


def test_watcher_routes_fpacked_alerts_by_their_compressed_header(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    fpack(alert_frame(tmp_path / "a.fits"), inp / "a.fits.fz")
    # Complete FITS, but no image in it: recorded as failed with the reason, not routed.
    table = fits.BinTableHDU.from_columns([fits.Column("A", "E", array=[1.0])])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(inp / "b.fits.fz")
    calls: list[tuple[str, str]] = []
    cfg = GP1Config(name="alerts", route={"EXPTYPE": "object", "OBSERVER": "svom"})
    wcfg = GP1WatchConfig(
        input_dir=str(inp),
        output_dir=str(tmp_path / "out"),
        settle_seconds=0.1,
        poll_seconds=0.1,
        use_polling=True,
        pipelines=[cfg],
    )
    w = GP1Watcher(wcfg, lambda p, c: calls.append((p.name, c.name)))
    w.run(until_idle=0.5)
    status = {Path(r["path"]).name: (r["status"], r["reason"]) for r in w.ledger.rows()}
    assert calls == [("a.fits.fz", "alerts")]
    assert status["a.fits.fz"][0] == "done"
    assert status["b.fits.fz"][0] == "failed"
    assert status["b.fits.fz"][1].endswith("b.fits.fz: no HDU holds an image")
