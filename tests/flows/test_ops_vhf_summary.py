"""The VHF summary: key numbers with errors and units, T0 in UTC, the HTML page, the typed form."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.flows.vhf_summary import key_numbers, summary_html, t0_utc

OUT = {
    "t0": 100000002.010,
    "t90_band_kev": [50.0, 300.0],
    "t90_instrument": "GRM",
    "t90": 39.283,
    "t90_err": 0.804,
    "peak_flux": {
        "1.024": {"rate": 3348.2, "rate_err": 62.5, "start": 13.75, "unit": "counts/s"},
        "0.064": {"rate": 3869.7, "rate_err": 265.6, "start": 15.67, "unit": "counts/s"},
    },
    "spectrum": {
        "GRM": {
            "model": "cpl",
            "parameters": {"epeak": {"value": 161.95, "error_low": -2.62, "error_high": 2.72}},
            "energy_flux": {
                "band_keV": [10.0, 1000.0],
                "value": 9.483e-07,
                "error_low": -8.97e-09,
                "error_high": 8.19e-09,
            },
            "interval": [0.78, 40.06],
        }
    },
    "hardness_ratio": {
        "ratio": 0.791,
        "error": 0.0082,
        "soft_band_kev": [50.0, 100.0],
        "hard_band_kev": [100.0, 300.0],
    },
    "hardness_ratio_joint": None,
    "positions": {
        "ECLAIRS": {"ra_deg": 157.5755, "dec_deg": 23.8335, "r90_arcmin": 3.04},
        "GRM": {"ra_deg": 158.88, "dec_deg": 23.40, "error_radius_90_deg": 8.5},
    },
    "classification": {"class": "long", "p_short": 0.006},
    "flags": [],
}


def test_t0_utc_from_the_file_time_reference(tmp_path: Path) -> None:
    path = tmp_path / "ev.fits"
    hdr = fits.Header({"MJDREFI": 59945, "MJDREFF": 0.0, "TIMESYS": "TT"})
    cols = fits.ColDefs([fits.Column("TIME", "D", array=np.zeros(1))])
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols, header=hdr)]).writeto(path)
    # MJD 59945 TT = 2023-01-01T00:00:00 TT; TT - UTC = 69.184 s (no leap second since 2017)
    expected = datetime(2023, 1, 1) + timedelta(seconds=100000002.010 - 69.184)
    got = datetime.fromisoformat(t0_utc([str(path)], 100000002.010) or "")
    assert abs((got - expected).total_seconds()) < 1e-3


def test_t0_utc_absent_reference_is_none(tmp_path: Path) -> None:
    path = tmp_path / "plain.fits"
    fits.PrimaryHDU().writeto(path)
    assert t0_utc([str(path)], 10.0) is None


def test_key_numbers_carry_errors_and_units() -> None:
    rows = key_numbers(OUT, "2026-03-03T09:45:32.826")
    assert rows["T0 (UTC)"] == "2026-03-03T09:45:32.826"
    assert rows["T0 (mission time)"] == "100000002.010 s"
    assert rows["T90 (GRM, 50-300 keV)"] == "39.28 ± 0.80 s"
    assert next(k for k in rows if k.startswith("peak flux")).endswith("0.064 s)")
    assert rows["peak flux (GRM, 0.064 s)"] == "3870 ± 265.6 counts/s at T0+15.67 s"
    assert rows["Epeak (GRM, cpl)"] == "161.9 (−2.6 +2.7) keV"
    # fluence = energy flux x interval length (39.28 s)
    fluence = rows["fluence (GRM, 10-1000 keV, 0.8 to 40.1 s)"]
    assert fluence.startswith(f"{9.483e-07 * (40.06 - 0.78):.3e}") and fluence.endswith("erg/cm²")
    assert rows["hardness 100-300/50-100 keV"] == "0.791 ± 0.0082"
    assert rows["position GRM (RA, Dec J2000)"] == "158.8800°, +23.4000°, r90 8.5 deg"
    assert rows["position ECLAIRS (RA, Dec J2000)"].endswith("r90 3.04 arcmin")
    assert rows["class"] == "long (P(short) 0.006)"


def test_summary_page_links_relative_to_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "B" / "ECLGRM"
    png = tmp_path / "B" / "ECL" / "QLCPLOT_ECL_B_v01.png"
    page = summary_html("B<1>", {"T0 (UTC)": "x & y"}, [("QLCPLOT_ECL", str(png))], folder)
    assert '<img src="../ECL/QLCPLOT_ECL_B_v01.png"' in page
    assert "B&lt;1&gt;" in page and "x &amp; y" in page  # escaped


def test_vhf_deployment_form_is_typed() -> None:
    from prefect.utilities.callables import parameter_schema
    from svomflow.flows.vhf import vhf_quick_analysis

    schema = parameter_schema(vhf_quick_analysis.fn).model_dump()
    config = schema["properties"]["config"]
    refs = str(config)
    assert "VHFConfig" in refs
    assert "lc_dt_s" in str(schema["definitions"]["VHFConfig"]["properties"])


@pytest.mark.parametrize("name", ["vhf_quick_analysis", "xband_analysis"])
def test_runs_are_named_after_what_they_process(name: str) -> None:
    from svomflow.flows.registry import get_spec

    flow = get_spec(name).load() if hasattr(get_spec(name), "load") else None
    if flow is None:
        import importlib

        module, attr = get_spec(name).entrypoint.split(":")
        flow = getattr(importlib.import_module(module), attr)
    assert "{obs_id}" in str(flow.flow_run_name)
