"""The key numbers the MXT, GP1 and nightly artifacts show, and the MXT run names."""

from __future__ import annotations

import numpy as np
from astropy.io import fits
from svomflow.flows.gp1 import gp1_key_numbers, gp1_run_name
from svomflow.flows.mxt import mxt_key_numbers, run_name
from svomflow.flows.nightly_calibration import nightly_key_numbers
from svomflow.tasks.xray.detect import SourceRecord
from svomflow.tasks.xray.pipeline import MergeSummary, MXTOutcome

# the MXT mission time origin is MJD 59945 TT (2023-01-01); TT - UTC = 69.184 s in 2023
DAY = 86400.0
TT_MINUS_UTC = 69.184


def _pass(path, gti_start: float) -> str:
    ev = fits.BinTableHDU.from_columns(
        [fits.Column("TIME", "D", array=np.array([gti_start + 1.0]))], name="EVENTS"
    )
    ev.header["TELESCOP"], ev.header["INSTRUME"] = "SVOM", "MXT"
    gti = fits.BinTableHDU.from_columns(
        [
            fits.Column("START", "D", array=np.array([gti_start])),
            fits.Column("STOP", "D", array=np.array([gti_start + 500.0])),
        ],
        name="GTI",
    )
    fits.HDUList([fits.PrimaryHDU(), ev, gti]).writeto(path)
    return str(path)


def test_mxt_run_named_after_the_observation_the_products_are_filed_under(tmp_path):
    # the simulator's passes carry no OBS_ID: the products go under MXT<start>, so must the name
    later = _pass(tmp_path / "mxt_l1_pass00.fits", 12345.6)
    earlier = _pass(tmp_path / "mxt_l1_pass01.fits", 12000.2)
    assert run_name({"l1_files": [later, earlier]}) == "mxt-MXT12000"


def _source(**kw: float) -> SourceRecord:
    base = dict(
        x=1.0, y=2.0, ra_deg=187.25, dec_deg=-12.5, r90_arcsec=14.2, counts=321.0,
        counts_err=18.0, band_counts=np.zeros(3), band_counts_err=np.zeros(3), ml=95.3,
        rate=0.0642, rate_err=0.0036, group=0,
    )  # fmt: skip
    base.update(kw)
    return SourceRecord(**base)  # type: ignore[arg-type]


def test_mxt_key_numbers_show_utc_times_positions_and_errors():
    start = 100 * DAY + TT_MINUS_UTC  # 2023-04-11T00:00:00 UTC
    outcome = MXTOutcome(
        mode="general",
        merge=MergeSummary({"n_duplicates": 7}, start, start + 3600.0),
        calibrate_counts={"n_calibrated": 4567},
        sources=[_source(), _source(ra_deg=10.0, dec_deg=41.25, counts=12.0, counts_err=3.5)],
    )
    rows = mxt_key_numbers(outcome)
    assert rows["start (UTC)"] == "2023-04-11T00:00:00.000"
    assert rows["stop (UTC)"] == "2023-04-11T01:00:00.000"
    assert rows["sources"] == "2" and rows["calibrated events"] == "4567"
    assert rows["duplicated rows dropped"] == "7"
    assert rows["S1 (RA, Dec J2000; r90)"] == '187.25000°, -12.50000°; 14.2"'
    assert rows["S1 counts; rate; ML"] == "321 ± 18; 0.0642 ± 0.0036 counts/s; 95.3"
    assert rows["S2 (RA, Dec J2000; r90)"].startswith("10.00000°, +41.25000°")


def test_gp1_key_numbers_show_transient_magnitude_and_limits():
    result = {
        "images": {
            "a.fits": {"zp": 25.0, "maglim": 20.0},
            "b.fits": {"zp": 25.2, "maglim": 21.0},
            "c.fits": {"zp": 25.4, "maglim": 19.5},
        },
        "failed": {"d.fits": "no stars"},
        "skipped": {"bias1.fits": "calibration frame", "bias2.fits": "calibration frame"},
        "sequences": {
            "sb1": {
                "transient": {
                    "ALPHA_J2000": 150.1234567,
                    "DELTA_J2000": 2.5,
                    "SNR": 42.0,
                    "MAG_PSF": 17.456,
                    "MAGERR_PSF": 0.031,
                },
                "stack_maglim": 21.73,
                "decay_index": [1.21, 0.08],
            },
            "sb2": {"transient": None, "stack_maglim": None, "decay_index": None},
            "sb3": {
                "transient": {
                    "ALPHA_J2000": 1.0,
                    "DELTA_J2000": -1.0,
                    "SNR": 288.6,
                    "MAG_PSF": 17.7012,
                    "MAGERR_PSF": 0.0037,
                },
                "stack_maglim": 23.33,
                "decay_index": None,
            },
        },
    }
    rows = gp1_key_numbers(result)
    assert rows["images processed"] == "3" and rows["failed"] == "1"
    assert rows["sequences"] == "3"
    assert rows["calibration frames skipped"] == "2"
    assert rows["zero point (median)"] == "25.20 mag"
    assert rows["limiting magnitude (median, per image)"] == "20.00 mag"
    assert rows["sb1 transient (RA, Dec J2000)"] == "150.123457°, +2.500000°, S/N 42.0"
    assert rows["sb1 transient magnitude"] == "17.46 ± 0.03 mag"
    assert rows["sb1 stack limiting magnitude"] == "21.73 mag"
    assert rows["sb1 decay index"] == "1.21 ± 0.08"
    assert rows["sb2 transient"] == "none found"
    assert rows["sb2 stack limiting magnitude"] == "n/a"
    assert rows["sb3 transient magnitude"] == "17.701 ± 0.004 mag"  # not "± 0.00"
    assert "sb3 decay index" not in rows


def test_gp1_key_numbers_give_times_in_utc_and_mission_time_and_position_errors():
    result = {
        "images": {
            # DATE-OBS carries no zone in FITS: it is UTC; the order of the dict is not time's
            "b.fits": {"date_obs": "2026-11-23T03:17:30.250"},
            "a.fits": {"date_obs": "2026-11-23T03:16:15.250"},
        },
        "failed": {},
        "sequences": {
            "sb1_r": {
                "transient": {
                    "ALPHA_J2000": 187.25,
                    "DELTA_J2000": -12.5,
                    "SNR": 30.0,
                    "POS_ERR": 0.3456,
                },
                "alert_position": {
                    "source": "QPO_ECL",
                    "version": 2,
                    "ra_deg": 187.26,
                    "dec_deg": -12.49,
                    "error_radius_arcmin": 3.0,
                    "confidence": 0.9,
                    "systematic_arcmin": 0.5,
                },
                "candidates": [
                    {"probability": 0.2, "separation_arcmin": 2.0},
                    {"probability": 0.8, "separation_arcmin": 0.75},
                ],
                "stack_maglim": None,
                "decay_index": None,
            }
        },
    }
    rows = gp1_key_numbers(result, "2026-11-23T03:14:15.25Z")
    assert rows["T0 (UTC)"] == "2026-11-23T03:14:15.250 UTC"
    # 1422 days after 2023-01-01 TT, plus 3 h 14 min 15.25 s, plus TT - UTC = 69.184 s
    assert rows["T0 (SVOM mission time)"] == "122872524.434 s"
    assert rows["first image DATE-OBS (UTC)"] == "2026-11-23T03:16:15.250 UTC (T0 + 120.0 s)"
    assert rows["last image DATE-OBS (UTC)"] == "2026-11-23T03:17:30.250 UTC (T0 + 195.0 s)"
    assert rows["sb1_r transient (RA, Dec J2000)"] == (
        '187.250000°, -12.500000° ± 0.35" (1σ), S/N 30.0'
    )
    assert rows["sb1_r alert position used"] == (
        "QPO_ECL v2: 187.26000°, -12.49000°, error radius 3 arcmin at 90% (+ 0.5 arcmin systematic)"
    )
    assert rows["sb1_r P(transient is the afterglow)"] == "0.800"
    assert rows["sb1_r transient to alert position"] == "0.75 arcmin"
    # without a trigger time: no T0 rows, DATE-OBS without the delay
    plain = gp1_key_numbers(result)
    assert "T0 (UTC)" not in plain
    assert plain["first image DATE-OBS (UTC)"] == "2026-11-23T03:16:15.250 UTC"


def test_nightly_key_numbers_count_masters_and_show_qc_with_units():
    summary = {
        "night": "2026-11-23",
        "groups": [
            {
                "group": "BIAS_1x1",
                "type": "bias",
                "passed": True,
                "n_frames": 11,
                "reasons": [],
                "level": 1000.4,
                "noise": 5.21,
                "fraction": None,
            },
            {
                "group": "FLAT_R",
                "type": "flat",
                "passed": False,
                "n_frames": 5,
                "reasons": ["fraction_beyond_5sigma 0.2 > 0.01"],
                "level": 20000.0,
                "noise": 0.0123,
                "fraction": 0.2,
            },
        ],
        "promoted": [{"group": "BIAS_1x1"}],
        "refused": [{"group": "DARK_300", "reason": "3 frames < 5"}],
    }
    rows = nightly_key_numbers(summary)
    assert rows["masters built"] == "2" and rows["promoted"] == "1"
    assert rows["rejected by QC"] == "1" and rows["groups refused"] == "1"
    assert rows["BIAS_1x1 (11 frames)"] == (
        "promoted; level 1000 adu, noise 5.21 adu, fraction of pixels off the current master n/a"
    )
    assert rows["FLAT_R (5 frames)"].startswith("rejected: fraction_beyond_5sigma 0.2 > 0.01;")
    assert (
        "noise 0.0123 (relative), fraction of pixels off the current master 0.2"
        in rows["FLAT_R (5 frames)"]
    )
    assert rows["DARK_300"] == "refused: 3 frames < 5"


def test_gp1_run_named_after_the_night_not_its_first_bias_frame(tmp_path):
    raw = tmp_path / "night-2026-11-23" / "colibri" / "raw"
    images = [str(raw / n) for n in ("ddrago-b-bias-001.fits", "ddrago-b-grb-001.fits")]
    assert gp1_run_name(images) == "gp1-night-2026-11-23-n2"
    assert gp1_run_name([images[1]]) == "gp1-ddrago-b-grb-001"
    mixed = [images[1], str(tmp_path / "other" / "x.fits")]
    assert gp1_run_name(mixed) == "gp1-ddrago-b-grb-001-n2"
    assert gp1_run_name([]) == "gp1-none"
