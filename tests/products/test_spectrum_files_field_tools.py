"""Our spectrum files carry what the field's readers need (issue 13).

X-band PHA/BAK products have the ``EBOUNDS`` and ``GTI`` extensions GBM's spectrum files
carry, so gdt-core's PHA reader (package ``astro-gdt``) and XSPEC open them with their
responses; the VHF light curves open with stingray. gdt-core pins ``matplotlib~=3.10``
and is not in the test extra: its checks skip with that reason where it is absent.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from svomflow.tasks import spectral as sp

GDT_MISSING = (
    "astro-gdt is not installed (it pins matplotlib~=3.10, so it is not in the test extra)"
)


@pytest.fixture(scope="module")
def xband_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PHA, BAK and RSP products of the main interval of a simulated ECLAIRs + GRM burst."""
    from svomflow.simulation.xband_mc import analyse_main, simulate_burst

    tmp = tmp_path_factory.mktemp("xband_products")
    b = simulate_burst(tmp / "sim", seed=11)
    out = analyse_main(b)
    files: dict[str, Path] = {}
    products = [*out.spectra.products, *getattr(out.responses, "products", [])]
    for p in products:
        path = tmp / f"{p.type_code}_{p.instrument}.fits"
        p.model.write(path)
        files[f"{p.type_code}_{p.instrument}"] = path
    return files


def _grm_names(files: dict[str, Path]) -> list[str]:
    return sorted(k for k in files if k.startswith("PHA_GRM"))


def test_pha_and_bak_carry_ebounds_and_gti(xband_files: dict[str, Path]) -> None:
    names = _grm_names(xband_files)
    assert names, sorted(xband_files)
    for name in names:
        for kind in ("PHA", "BAK"):
            with fits.open(xband_files[name.replace("PHA", kind, 1)]) as h:
                assert [x.name for x in h][1:] == ["SPECTRUM", "EBOUNDS", "GTI"]
                spec, eb, gti = h["SPECTRUM"], h["EBOUNDS"], h["GTI"]
                assert eb.header["DETCHANS"] == spec.header["DETCHANS"] == len(eb.data)
                assert np.all(eb.data["E_MAX"] > eb.data["E_MIN"])
                start, stop = gti.data["START"], gti.data["STOP"]
                assert np.all(stop > start)
                # the spectra's intervals (mission seconds) lie inside the GTI
                t_lo = np.atleast_1d(
                    spec.data["TSTART"] if "TSTART" in spec.columns.names else spec.header["TSTART"]
                )
                assert start.min() <= t_lo.min() + 1e-6
                assert gti.header["MJDREFI"] + gti.header["MJDREFF"] > 0


def test_pha_opens_with_gdt_core(xband_files: dict[str, Path]) -> None:
    if importlib.util.find_spec("gdt") is None:
        pytest.skip(GDT_MISSING)
    from gdt.core.pha import Bak, Pha

    for name in _grm_names(xband_files):
        with fits.open(xband_files[name]) as h:
            n_rows = len(h["SPECTRUM"].data)
        if n_rows > 1:
            continue  # gdt-core's Pha is one spectrum; XSPEC reads rows as file{n}
        pha = Pha.open(str(xband_files[name]))
        ours = sp.load(xband_files[name], bak=False, rsp=xband_files[name.replace("PHA", "RSP", 1)])
        assert pha.num_chans == ours.source.n_channels
        assert pha.data.counts.sum() == pytest.approx(ours.source.counts.sum())
        Bak.open(str(xband_files[name.replace("PHA", "BAK", 1)]))


def _vhf_lightcurve(tmp_path: Path) -> Any:
    from svomflow.products.ogip import (
        LightCurve,
        TimeReference,
        lightcurve_hdu,
        primary_hdu,
        write_hdulist,
    )

    t = np.arange(0.0, 20.0, 0.064)
    rate = 100.0 + 50.0 * np.exp(-((t - 8.0) ** 2))
    lc = LightCurve(
        time=t,
        timedel=np.full(t.size, 0.064),
        rate=rate,
        error=np.sqrt(rate / 0.064),
        fracexp=np.ones(t.size),
        gti=np.array([[0.0, 20.0]]),
        timeref=TimeReference(59945.0, "TT", "s"),
        band_kev=(15.0, 150.0),
        timezero=1000.0,
    )
    hdu = lightcurve_hdu(lc, telescope="SVOM", instrument="GRM", extname="RATE")
    return write_hdulist(
        [primary_hdu(telescope="SVOM", instrument="GRM"), hdu], tmp_path / "lc.fits"
    ), rate


@pytest.mark.filterwarnings("ignore::UserWarning")  # stingray warns on every FITS read
def test_lightcurve_opens_with_stingray(tmp_path: Path) -> None:
    if importlib.util.find_spec("stingray") is None:
        pytest.skip("stingray is not installed (pip install stingray)")
    from stingray import Lightcurve

    path, rate = _vhf_lightcurve(tmp_path)
    lc = Lightcurve.read(str(path), fmt="hea")
    assert lc.n == rate.size
    assert np.allclose(lc.countrate, rate, rtol=1e-5)
    assert lc.dt == pytest.approx(0.064)
