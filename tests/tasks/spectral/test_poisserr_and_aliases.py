"""Integer counts with STAT_ERR and POISSERR = F take Poisson statistics; model aliases."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from svomflow.cli.main import app
from svomflow.errors import InputDataError
from svomflow.tasks import spectral as sp
from svomflow.tasks.spectral.dataset import SpectrumDataset
from svomflow.tasks.spectral.models import MODEL_ALIASES, SumModel, make_model
from typer.testing import CliRunner

runner = CliRunner()
TRUTH = {"K": 0.05, "index": -1.6}


def _with_stat_err(ds: SpectrumDataset, err: np.ndarray) -> SpectrumDataset:
    src = ds.source
    src.stat_err, src.poisserr = err, False
    return ds


@pytest.mark.parametrize("stat", ["cstat", "wstat", "pgstat"])
def test_integer_counts_with_stat_err_fit_as_poisson(synth, synthetic_response, stat):
    """As XSPEC and sherpa: the STAT_ERR column of integer counts is ignored by C-stat."""
    rng = np.random.default_rng(11)
    plain = synth.simulate("pl", TRUTH, rng, synthetic_response)
    ref = sp.fit(plain, "pl", stat=stat)
    rng = np.random.default_rng(11)
    ciao = synth.simulate("pl", TRUTH, rng, synthetic_response)
    _with_stat_err(ciao, np.sqrt(np.maximum(ciao.source.counts, 1.0)))
    res = sp.fit(ciao, "pl", stat=stat)  # refused before issue 13
    assert res.stat == pytest.approx(ref.stat, rel=1e-12)
    assert res.parameters["index"].value == pytest.approx(ref.parameters["index"].value, rel=1e-9)
    assert abs(res.parameters["index"].value - TRUTH["index"]) < 4 * res.parameters["index"].error


def test_non_integer_counts_with_stat_err_are_refused_for_cstat(synth, synthetic_response):
    ds = synth.simulate("pl", TRUTH, np.random.default_rng(3), synthetic_response)
    ds.source.counts = ds.source.counts * 0.37  # mask-weighted-like
    _with_stat_err(ds, np.full(ds.source.n_channels, 2.0))
    with pytest.raises(InputDataError, match="non-integer counts"):
        sp.fit(ds, "pl", stat="cstat")
    assert sp.default_statistic(ds) == "chi2"
    assert sp.fit(ds, "pl", stat="chi2").converged


def _ciao_like_files(tmp_path, synth, synthetic_response):
    """A type I PHA with integer COUNTS, STAT_ERR and POISSERR = F, plus its response."""
    from svomflow.products.ogip import rsp_hdus, write_hdulist

    resp = synthetic_response
    ds = synth.simulate("pl", TRUTH, np.random.default_rng(5), resp, bkg_rate=0.0)
    counts = ds.source.counts.astype(np.int32)
    cols = [
        fits.Column("CHANNEL", "J", array=np.arange(1, counts.size + 1, dtype=np.int32)),
        fits.Column("COUNTS", "J", array=counts),
        fits.Column("STAT_ERR", "E", array=np.sqrt(np.maximum(counts, 1))),
    ]
    hdu = fits.BinTableHDU.from_columns(cols, name="SPECTRUM")
    for k, v in {
        "HDUCLASS": "OGIP",
        "HDUCLAS1": "SPECTRUM",
        "HDUVERS": "1.2.1",
        "POISSERR": False,
        "EXPOSURE": ds.source.exposure,
        "BACKSCAL": 1.0,
        "AREASCAL": 1.0,
        "CORRSCAL": 0.0,
        "DETCHANS": counts.size,
        "CHANTYPE": "PI",
        "BACKFILE": "none",
        "RESPFILE": "none",
        "ANCRFILE": "none",
        "CORRFILE": "none",
        "TELESCOP": "CHANDRA",
        "INSTRUME": "ACIS",
    }.items():
        hdu.header[k] = v
    pha = tmp_path / "ciao.pha"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(pha)
    rsp = write_hdulist(
        rsp_hdus(
            resp.energ_lo,
            resp.energ_hi,
            resp.matrix,
            np.column_stack([resp.e_min, resp.e_max]),
            telescope="CHANDRA",
            instrument="ACIS",
            detector="ACIS-S3",
        ),
        tmp_path / "ciao.rsp",
    )
    return pha, rsp


def test_cli_fits_a_ciao_style_spectrum_with_cstat(tmp_path, synth, synthetic_response):
    pha, rsp = _ciao_like_files(tmp_path, synth, synthetic_response)
    out = runner.invoke(
        app,
        ["spectrum", "fit", "--pha", str(pha), "--rsp", str(rsp), "--model", "po", "--no-errors"],
    )
    assert out.exit_code == 0, out.output
    assert "model pl  cstat =" in out.output
    assert "all channels (no default known)" in out.output


@pytest.mark.parametrize(
    ("alias", "ours"),
    [
        ("powerlaw", "pl"),
        ("po", "pl"),
        ("cutoffpl", "cpl"),
        ("comp", "cpl"),
        ("grbm", "band"),
        ("bbody", "bb"),
        ("bbodyrad", "bb"),
        ("BAND", "band"),
        ("SBPL", "sbpl"),
        ("PL", "pl"),
    ],
)
def test_xspec_and_gbm_catalog_names_are_aliases(alias, ours):
    assert make_model(alias).name == ours


def test_sum_of_aliases_and_unknown_names():
    m = make_model("cutoffpl + bbodyrad")
    assert isinstance(m, SumModel) and m.name == "cpl+bb"
    assert m.param_names == ["K_1", "index_1", "epeak_1", "K_2", "kt_2"]
    with pytest.raises(InputDataError, match="grbm"):
        make_model("zashift")
    assert set(MODEL_ALIASES.values()) <= {"pl", "cpl", "band", "sbpl", "bb"}
