"""The housekeeping simulator: every injected anomaly raises its alarm, none without one;
files round-trip through the readers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.simulation import housekeeping as sim
from svomflow.tasks.monitoring.definitions import load_definitions
from svomflow.tasks.monitoring.hkfiles import read_hk_file
from svomflow.tasks.monitoring.limits import check_parameter, rules_for

START = datetime(2026, 1, 1, tzinfo=UTC)


def _alarms(stream: sim.HkStream) -> tuple[list[tuple[str, str, float]], int]:
    """Raised alarms (parameter, rule, time) of the pure checks, and how many stay open."""
    defs = load_definitions()[stream.instrument]
    out = []
    still_open = 0
    for p in defs.parameters:
        v = stream.values[p.name]
        ok = np.isfinite(v)
        rules = rules_for(p.soft, p.hard, p.persistence, p.hysteresis, p.stuck_after)
        for r in check_parameter(stream.times[ok], v[ok], rules):
            out += [(p.name, r.rule.kind, tr.time) for tr in r.transitions if tr.action == "raise"]
            still_open += r.carry.active
    return out, still_open


@pytest.mark.parametrize(("instrument", "days", "seed"), [("ECLAIRS", 30, 11), ("COLIBRI", 30, 12)])
def test_every_anomaly_raises_its_alarm_and_none_is_false(
    instrument: str, days: int, seed: int
) -> None:
    stream = sim.simulate(instrument, START, days, seed=seed, anomalies_per_day=2.0)
    kinds = {a.kind for a in stream.anomalies}
    assert kinds == {"spike", "step", "excursion", "stuck"}, kinds
    # Poisson(60) anomalies, placed without overlap: at least 40 of them
    assert len(stream.anomalies) >= 40
    alarms, still_open = _alarms(stream)
    score = sim.score(stream.anomalies, alarms, delay_s=10 * stream.cadence_s)
    assert score.missed == () and score.recall == 1.0
    assert score.false_alarms == ()
    # and every alarm cleared once its anomaly was over
    assert still_open == 0
    # hard anomalies raise both levels: more expected alarms than anomalies
    assert score.expected > len(stream.anomalies)


def test_without_anomalies_no_alarm_at_all() -> None:
    for inst in ("ECLAIRS", "COLIBRI"):
        stream = sim.simulate(inst, START, 5, seed=5, anomalies_per_day=0.0)
        assert stream.anomalies == []
        assert _alarms(stream)[0] == []


def test_score_counts_misses_and_false_alarms() -> None:
    a = sim.Anomaly(
        "ECLAIRS", "T_DPIX", "step", 100.0, 200.0, "hard", "high", -12.0, ("soft", "hard")
    )
    s = sim.score([a], [("T_DPIX", "soft", 150.0), ("T_DPIX", "hard", 900.0)], delay_s=30)
    assert (s.expected, s.found, s.recall) == (2, 1, 0.5)
    assert s.missed == ((a, "hard"),) and s.false_alarms == (("T_DPIX", "hard", 900.0),)


def test_orbit_modulation_and_saa_gaps_in_the_rates() -> None:
    stream = sim.simulate("ECLAIRS", START, 1, seed=2, anomalies_per_day=0.0)
    rate = stream.values["RATE_TOTAL"]
    gaps = ~np.isfinite(rate)
    # the SAA takes a few percent of the day; the rate swings with latitude each orbit
    assert 0.01 < gaps.mean() < 0.2
    good = rate[~gaps]
    assert good.max() / good.min() > 1.25
    spectrum = np.abs(np.fft.rfft(np.nan_to_num(stream.values["T_MASK"] - 10.0)))
    freqs = np.fft.rfftfreq(stream.times.size, stream.cadence_s)
    period = 1 / freqs[1:][np.argmax(spectrum[1:])]
    assert period == pytest.approx(97 * 60, rel=0.05)  # the 625 km orbit


@pytest.mark.parametrize("fmt", ["fits", "json"])
def test_files_round_trip_through_the_reader(tmp_path: Path, fmt: str) -> None:
    stream = sim.simulate("COLIBRI", START, 0.25, seed=1, anomalies_per_day=0.0)
    paths = sim.write_files(stream, tmp_path, file_seconds=3600, fmt=fmt)  # type: ignore[arg-type]
    assert len(paths) == 6
    got = read_hk_file(paths[1], ("COLIBRI",))
    assert got.instrument == "COLIBRI"
    cols = {c.name: c for c in got.columns}
    assert set(cols) == set(stream.values)
    sl = slice(60, 120)
    np.testing.assert_allclose(cols["SEEING"].times, stream.times[sl], atol=1e-3)
    np.testing.assert_allclose(cols["SEEING"].values, stream.values["SEEING"][sl], rtol=1e-12)


def test_reader_refuses_foreign_and_broken_files_clearly(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"instrument": "MXT", "samples": [{"time": 0, "X": 1}]}')
    with pytest.raises(InputDataError, match="'MXT' has no housekeeping definitions"):
        read_hk_file(tmp_path / "a.json", ("ECLAIRS", "COLIBRI"))
    (tmp_path / "b.json").write_text('{"instrument": "ECLAIRS", "samples": [{"T": 1}]}')
    with pytest.raises(InputDataError, match=r"samples\[0\]: a sample needs a 'time'"):
        read_hk_file(tmp_path / "b.json")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(InputDataError, match="not readable JSON"):
        read_hk_file(tmp_path / "c.json")
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(InputDataError, match="not a housekeeping file"):
        read_hk_file(tmp_path / "d.txt")
    # a FITS table without a time reference, and a truncated FITS file
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="TIME", format="D", array=[1.0])])
    hdu.header["INSTRUME"] = "ECLAIRS"
    hdu.writeto(tmp_path / "e.fits")
    with pytest.raises(InputDataError, match="no MJDREFI/MJDREF"):
        read_hk_file(tmp_path / "e.fits")
    (tmp_path / "f.fits").write_bytes((tmp_path / "e.fits").read_bytes()[:3000])
    with pytest.raises(InputDataError, match=r"f\.fits"):
        read_hk_file(tmp_path / "f.fits")


def test_long_fits_form_and_tt_times(tmp_path: Path) -> None:
    t_unix = START.timestamp() + np.array([0.0, 10.0, 0.0])
    mjdref = 58849.0  # 2020-01-01
    tt = t_unix - (mjdref - 40587.0) * 86400 + 69.184
    hdu = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="TIME", format="D", array=tt),
            fits.Column(name="PARAMETER", format="12A", array=["T_ELS", "T_ELS", "HV_SECTOR_A"]),
            fits.Column(name="VALUE", format="D", array=[15.0, 15.5, -300.0]),
        ]
    )
    hdu.header.update({"INSTRUME": "ECLAIRS", "MJDREFI": 58849, "MJDREFF": 0.0, "TIMESYS": "TT"})
    hdu.writeto(tmp_path / "long.fits")
    got = {c.name: c for c in read_hk_file(tmp_path / "long.fits").columns}
    np.testing.assert_allclose(got["T_ELS"].times, t_unix[:2], atol=1e-6)
    assert got["HV_SECTOR_A"].values.tolist() == [-300.0]
    doc = {
        "instrument": "colibri",
        "time": ["2026-01-01T00:00:00Z", 1767225610],
        "parameters": {"SEEING": [1.0, None]},
    }
    (tmp_path / "cols.json").write_text(json.dumps(doc))
    c = read_hk_file(tmp_path / "cols.json")
    assert c.instrument == "COLIBRI"
    assert c.columns[0].times.tolist() == [1767225600.0, 1767225610.0]
    assert np.isnan(c.columns[0].values[1]) and c.n_samples == 1
