"""Spectral extraction from events, grouping, written OGIP files and bad-input errors."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from svomflow.errors import InputDataError
from svomflow.products.ogip import TimeReference
from svomflow.products.ogip_spectra import read_pha
from svomflow.tasks.coded_mask.response import eclairs_response, write_eclairs_rsp
from svomflow.tasks.xband.events import read_xband_events
from svomflow.tasks.xband.fitting import DatasetSpec, fit_datasets, load_datasets
from svomflow.tasks.xband.spectra import (
    detector_background,
    extract_spectrum,
    group_channels,
    write_spectra,
)

TREF = TimeReference(59945.0, "TT", "s")


def test_grouping_reaches_the_target_and_skips_bad_channels() -> None:
    rng = np.random.default_rng(1)
    counts = rng.poisson(3.0, 200).astype(float)
    quality = np.zeros(200, dtype=np.int16)
    quality[:7] = 5
    g = group_channels(counts, quality, min_counts=20, min_channels=4)
    assert np.all(g[:7] == 1)
    starts = np.flatnonzero(g == 1)
    starts = starts[starts >= 7]
    bounds = np.append(starts, 200)
    sums = [counts[a:b].sum() for a, b in itertools.pairwise(bounds)]
    widths = np.diff(bounds)
    assert min(sums) >= 20 and widths.min() >= 4
    # the unfinished tail was merged: every group but possibly none falls short
    assert counts[7:].sum() == pytest.approx(sum(sums))


@pytest.fixture(scope="module")
def events(bright_burst: dict[str, Any]) -> Any:
    return read_xband_events(bright_burst["files"], t0=bright_burst["t0"])


def _write(tmp: Path, spectra: list, respfile: str, name: str = "ecl") -> tuple[Path, Path]:
    return write_spectra(
        spectra,
        tmp / f"{name}.pha",
        tmp / f"{name}_bak.pha",
        telescope="SVOM",
        instrument="ECLAIRS",
        timeref=TREF,
        t0=1.0e8,
        respfile=respfile,
    )


def test_extraction_counts_and_background_scaling(events: Any, tmp_path: Path) -> None:
    ecl = events.get("eclairs")
    off = [(-15.0, -3.0), (15.0, 25.0)]
    bkg = detector_background(ecl, 0, off, (4.0, 150.0))
    s = extract_spectrum(ecl, bkg, (-2.0, 12.0), min_counts=10, min_channels=6)
    n_in = np.count_nonzero((ecl.time >= -2.0) & (ecl.time < 12.0))
    assert s.counts.sum() == n_in
    n_off = sum(np.count_nonzero((ecl.time >= a) & (ecl.time < b)) for a, b in off)
    assert s.bkg_counts.sum() == n_off
    # the burst-free part of the source interval predicts the background: the expected
    # background per second matches the off-source rate (slow modulation only)
    rate_off = n_off / 22.0
    assert s.expected_background / 14.0 == pytest.approx(rate_off, rel=0.02)
    src, bak = _write(tmp_path, [s, s], "none")
    row2 = read_pha(f"{src}{{2}}")
    np.testing.assert_array_equal(row2.counts, s.counts)
    assert row2.backfile == f"{bak.name}{{2}}"
    b2 = read_pha(bak, row=2)
    assert b2.exposure * b2.backscal[0] / row2.exposure == pytest.approx(
        s.counts.sum() and s.bkg_counts.sum() / s.expected_background
    )


def test_empty_interval_names_the_event_file(events: Any) -> None:
    ecl = events.get("eclairs")
    bkg = detector_background(ecl, 0, [(-15.0, -3.0)], (4.0, 150.0))
    with pytest.raises(InputDataError, match=r"eclairs_l1_events\.fits.*empty interval"):
        extract_spectrum(ecl, bkg, (2.0, 2.0))
    with pytest.raises(InputDataError, match=r"eclairs_l1_events\.fits.*no good time"):
        extract_spectrum(ecl, bkg, (100.0, 110.0))
    empty = replace(
        ecl, time=ecl.time[:0], pi=ecl.pi[:0], detector=ecl.detector[:0], energy=ecl.energy[:0]
    )
    with pytest.raises(InputDataError, match=r"eclairs_l1_events\.fits.*no counts"):
        extract_spectrum(empty, bkg, (2.0, 3.0))


def _ecl_spectrum(events: Any, tmp: Path, validity: tuple[float, float]) -> tuple[Path, Path, Any]:
    ecl = events.get("eclairs")
    bkg = detector_background(ecl, 0, [(-15.0, -3.0), (15.0, 25.0)], (4.0, 150.0))
    s = extract_spectrum(ecl, bkg, (-2.0, 12.0), min_counts=10, min_channels=6)
    rsp = write_eclairs_rsp(tmp / "ecl.rsp", eclairs_response(0.12, 0.07), validity=validity)
    src, _ = _write(tmp, [s], rsp.name)
    return src, rsp, s


def test_channel_mismatch_between_pha_and_response_names_both_files(
    events: Any, tmp_path: Path
) -> None:
    from svomflow.simulation.grm_response import grm_response, write_grm_rsp

    src, _, _ = _ecl_spectrum(events, tmp_path, (0.0, 2e8))
    lo, hi, m, eb = grm_response(np.array([1.0, 0.0, 0.0]), detector="GRD01")
    grm_rsp = write_grm_rsp(tmp_path / "grd01.rsp", lo, hi, m, eb, detector="GRD01")
    spec = DatasetSpec(str(src), None, str(grm_rsp), (4.0, 150.0), "eclairs", "eclairs")
    with pytest.raises(
        InputDataError, match=r"ecl\.pha has 1024 channels but the response .*grd01\.rsp has 128"
    ):
        load_datasets([spec])


def test_response_not_covering_the_interval_names_the_response(events: Any, tmp_path: Path) -> None:
    src, rsp, _ = _ecl_spectrum(events, tmp_path, (0.0, 10.0))
    spec = DatasetSpec(str(src), None, str(rsp), (4.0, 150.0), "eclairs", "eclairs")
    with pytest.raises(
        InputDataError, match=r"ecl\.rsp: the response is valid over \[0\.0, 10\.0\]"
    ):
        load_datasets([spec])


def test_zero_count_bins_with_chi_square_name_the_spectrum(events: Any, tmp_path: Path) -> None:
    _, rsp, s = _ecl_spectrum(events, tmp_path, (0.0, 2e8))
    counts = s.counts.copy()
    counts[400:420] = 0.0
    bkg = s.bkg_counts.copy()
    bkg[400:420] = 0.0
    s0 = replace(s, counts=counts, bkg_counts=bkg, grouping=np.ones_like(s.grouping))
    src, _ = _write(tmp_path, [s0], rsp.name, name="zero")
    spec = DatasetSpec(str(src), None, str(rsp), (4.0, 150.0), "eclairs", "eclairs")
    kw = dict(
        label="t",
        interval=(-2.0, 12.0),
        model="pl",
        fallback_model=None,
        cross_norm=True,
        errors=False,
        flux_bands=[],
        flux_samples=0,
        seed=0,
    )
    with pytest.raises(InputDataError, match=r"zero\.pha.*zero counts"):
        fit_datasets([spec], stat="chi2", **kw)
    # a Poisson statistic takes the same spectrum
    assert fit_datasets([spec], stat="wstat", **kw).result.converged
