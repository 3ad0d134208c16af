"""Write the VHF products (FITS with provenance, PNG previews) through the product store.

Products (type code, instrument code): ``TT``, ``QCL``, ``QPO``, ``OBLC``, ``QLC``, ``QPF``,
``QT90``, ``QHR`` per instrument; ``QSP`` and ``RSP`` (one per detector, instrument code
``<INST>_<DET>``) for instruments with a response model; ``QHR`` and ``CRCLASS`` with the
joint code (``ECLGRM``); previews ``QLCPLOT`` (light curves) and ``QPOPLOT`` (sky image).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from svomflow.products.ogip import TimeReference, write_rsp
from svomflow.products.provenance import CalibrationRef, FileRef, Provenance
from svomflow.products.store import ProductRef, ProductStore
from svomflow.tasks.vhf import fits_products as fp
from svomflow.tasks.vhf.config import VHFConfig
from svomflow.tasks.vhf.pipeline import VHFResult

__all__ = ["INSTRUMENT_CODES", "instrument_code", "joint_code", "publish_products"]

# Short instrument codes of the mission's product names (TT_ECL, QLC_GRM, QHR_ECLGRM).
INSTRUMENT_CODES = {"ECLAIRS": "ECL", "GRM": "GRM"}


def instrument_code(name: str) -> str:
    """Short code of an instrument in product names (its name when it has none)."""
    return INSTRUMENT_CODES.get(name, name)


def joint_code(names: Sequence[str]) -> str:
    """Code of a product made from several instruments (``ECLGRM``)."""
    return "".join(instrument_code(n) for n in names)


def publish_products(
    result: VHFResult,
    *,
    store: ProductStore,
    obs_id: str,
    config: VHFConfig,
    flow_name: str,
) -> list[ProductRef]:
    """Publish every product of a VHF result; return their references (previews included)."""
    inputs = result.inputs
    t0 = inputs.t0
    timeref = TimeReference(mjdref=inputs.mjdref, timesys=inputs.timesys)
    file_refs = {h.path: FileRef.of(h.path) for d in inputs.instruments.values() for h in d.headers}
    refs: list[ProductRef] = []

    def publish(
        content: Any,
        type_code: str,
        instrument: str,
        files: Sequence[str],
        cal: Sequence[CalibrationRef] = (),
        ext: str = "fits",
    ) -> ProductRef:
        prov = Provenance.start(
            config=config,
            inputs=[file_refs[f] for f in files],
            calibration=list(cal),
            flow_name=flow_name,
        )
        ref = store.publish(
            content,
            type_code=type_code,
            instrument=instrument,
            obs_id=obs_id,
            provenance=prov,
            ext=ext,
        )
        refs.append(ref)
        return ref

    for name, data in inputs.instruments.items():
        code = instrument_code(name)
        files = [h.path for h in data.headers]
        cal = result.calibration.get(name, [])
        tel = data.definition.telescope if data.definition is not None else "UNKNOWN"
        ids = {"telescope": tel, "instrument": name, "timeref": timeref}
        t = result.timings.get(name)
        if t is None:
            continue
        flags = list(data.flags) + list(t.flags)
        image = result.positions.image_trigger.get(name)
        publish(
            fp.trigger_hdus(
                t.trigger, t0=t0, onboard_time=data.trigger_time, image=image, flags=flags, **ids
            ),
            "TT",
            code,
            files,
            cal,
        )
        qp = result.positions.coded_mask.get(name)
        qcl: list[fp.Column] = [
            (
                "RATE_SNR",
                t.trigger.best.significance if t.trigger else None,
                "sigma",
                "best rate trigger",
            ),
            ("IMAGE_SNR", image.snr if image is not None else None, "sigma", "best image trigger"),
            (
                "POSITION_SNR",
                qp.position.snr if qp is not None else None,
                "sigma",
                "coded-mask fit S/N",
            ),
        ]
        publish(
            fp.table_hdus(extname="CONFLVL", rows=[qcl], flags=flags, t0=t0, **ids),
            "QCL",
            code,
            files,
            cal,
        )
        if qp is not None:
            pos = qp.position
            row: list[fp.Column] = [
                ("RA", pos.ra_deg, "deg", "right ascension (J2000)"),
                ("DEC", pos.dec_deg, "deg", "declination (J2000)"),
                ("ERR_RAD", pos.r90_arcmin, "arcmin", "90 % error radius (systematic included)"),
                ("STAT_ERR", pos.stat_arcmin, "arcmin", "statistical term"),
                ("SYS_ERR", pos.sys_arcmin, "arcmin", "systematic term"),
                ("SNR", pos.snr, "sigma", "fit S/N"),
                ("IMAGE_SNR", pos.image_snr, "sigma", "sky-image peak S/N"),
                ("OFFAXIS", pos.off_axis_deg, "deg", "off-axis angle"),
                ("CODING", pos.coding, "", "partial coding fraction"),
                ("COUNTS", pos.counts, "count", "source counts in the interval"),
                ("TSTART", qp.interval[0], "s", "imaged interval start, from T0"),
                ("TSTOP", qp.interval[1], "s", "imaged interval stop, from T0"),
                ("N_NOISY", float(qp.noisy_pixels.sum()), "", "noisy pixels excluded"),
                ("N_DEAD", float(qp.dead_pixels.sum()), "", "dead pixels excluded"),
            ]
            publish(
                fp.table_hdus(
                    extname="POSITION",
                    rows=[row],
                    flags=flags,
                    t0=t0,
                    keywords=[("EMIN", qp.band_kev[0], "[keV]"), ("EMAX", qp.band_kev[1], "[keV]")],
                    **ids,
                ),
                "QPO",
                code,
                files,
                cal,
            )
        gl = result.positions.count_ratio.get(name)
        if gl is not None:
            row = [
                ("RA", gl.ra_deg, "deg", "right ascension (J2000)"),
                ("DEC", gl.dec_deg, "deg", "declination (J2000)"),
                ("ERR_RAD", gl.error_radius_90_deg, "deg", "90 % error radius (systematic incl.)"),
                ("ERR_1SIGMA", gl.error_radius_1sigma_deg, "deg", "1-sigma radius"),
                ("CHI2_MIN", gl.chi2_min, "", "chi-square at the best direction"),
            ]
            publish(
                fp.table_hdus(extname="POSITION", rows=[row], flags=flags, t0=t0, **ids),
                "QPO",
                code,
                files,
                cal,
            )
        publish(
            fp.lightcurve_hdus(
                t.oblc, gti=data.events.gti, t0=t0, flags=flags, with_background=False, **ids
            ),
            "OBLC",
            code,
            files,
            cal,
        )
        publish(
            fp.lightcurve_hdus(
                [t.curve, *t.light_curves], gti=data.events.gti, t0=t0, flags=flags, **ids
            ),
            "QLC",
            code,
            files,
            cal,
        )
        if t.peaks:
            publish(
                fp.peak_flux_hdus(t.peaks, t.band_kev, t0=t0, flags=flags, **ids),
                "QPF",
                code,
                files,
                cal,
            )
        st = t.t90_status
        bkg = t.curve.background
        gti = data.events.gti
        publish(
            fp.t90_hdus(
                t.durations,
                t0=t0,
                flags=flags,
                quality=None if st.measured else (st.quality, st.reason),
                band_kev=t.band_kev,
                source=bkg.source if bkg is not None else None,
                data_span=(float(gti[0, 0]), float(gti[-1, 1])),
                dt_s=t.dt_s,
                **ids,
            ),
            "QT90",
            code,
            files,
            cal,
        )
        if t.hardness is not None:
            hflags = flags + ([] if t.hardness.reliable else ["soft band below 3 sigma"])
            publish(
                fp.hardness_hdus(t.hardness, t0=t0, flags=hflags, **ids), "QHR", code, files, cal
            )
        for r in result.spectrum.responses.get(name, []):

            def rsp_file(path: Path, r: Any = r, defn: Any = data.definition) -> None:
                write_rsp(
                    path,
                    r.e_lo,
                    r.e_hi,
                    r.matrix,
                    r.ebounds,
                    detector=r.detector,
                    direction_radec=r.direction_radec,
                    telescope=defn.telescope,
                    instrument=defn.instrument,
                )

            publish(rsp_file, "RSP", f"{code}_{r.detector}", files, cal, ext="rsp")
        sp = result.spectrum.spectra.get(name)
        if sp is not None:
            q = sp.spectrum
            rows = [
                [
                    ("PARAM", k, "", "parameter"),
                    ("VALUE", v["value"], "", "best fit"),
                    ("ERR_LOW", v["error_low"], "", "lower 1-sigma error (negative)"),
                    ("ERR_HIGH", v["error_high"], "", "upper 1-sigma error"),
                ]
                for k, v in q.parameters.items()
            ]
            keys = [
                ("MODEL", q.model, "photon model"),
                ("STAT", q.statistic, "fit statistic"),
                ("STATVAL", float(q.stat), "statistic at the best fit"),
                ("DOF", int(q.dof), "degrees of freedom"),
                ("TSTART", sp.interval[0], "[s] fitted interval start, from T0"),
                ("TSTOP", sp.interval[1], "[s] fitted interval stop, from T0"),
                ("PIVOT", config.spectrum.pivot_kev, "[keV] pivot of K"),
                ("PHFLUX", _num(q.photon_flux.get("value")), "[ph/cm2/s] photon flux"),
                ("ENFLUX", _num(q.energy_flux.get("value")), "[erg/cm2/s] energy flux"),
                ("FLUXEMIN", float(config.spectrum.flux_band_kev[0]), "[keV] flux band"),
                ("FLUXEMAX", float(config.spectrum.flux_band_kev[1]), "[keV] flux band"),
                ("CONVERGE", bool(q.converged), "fit converged"),
            ]
            sflags = flags + list(q.flags)
            publish(
                fp.table_hdus(
                    extname="SPECPARAM", rows=rows, keywords=keys, flags=sflags, t0=t0, **ids
                ),
                "QSP",
                code,
                files,
                cal,
            )
        if config.previews:
            from svomflow.tasks.vhf.previews import plot_lightcurves, plot_sky_image

            def lc_png(path: Path, t: Any = t, code: str = code) -> None:
                plot_lightcurves(t, path, title=f"{obs_id} {code}")

            publish(lc_png, "QLCPLOT", code, files, cal, ext="png")
            if qp is not None:

                def sky_png(path: Path, data: Any = data, qp: Any = qp, code: str = code) -> None:
                    plot_sky_image(data, qp, path, title=f"{obs_id} {code} sky image")

                publish(sky_png, "QPOPLOT", code, files, cal, ext="png")
    # joint products
    all_files = list(file_refs)
    all_cal = [c for v in result.calibration.values() for c in v]
    jh = result.joint_hardness
    jcode = joint_code(list(inputs.instruments))
    first = next(iter(inputs.instruments.values()))
    jtel = first.definition.telescope if first.definition is not None else "UNKNOWN"
    jids = {"telescope": jtel, "instrument": jcode, "timeref": timeref}
    if jh is not None:
        jflags = [] if jh.reliable else ["soft band below 3 sigma"]
        publish(
            fp.hardness_hdus(jh, t0=t0, flags=jflags, **jids),
            "QHR",
            joint_code(
                [config.joint_hardness.soft_instrument, config.joint_hardness.hard_instrument]
            ),
            all_files,
            all_cal,
        )
    c = result.crude
    if c is not None:
        row = [
            ("CLASS", c.klass, "", "crude class"),
            ("P_SHORT", c.p_short, "", "probability of a short GRB"),
            ("T90", c.t90, "s", "T90 used"),
            ("INSTRUMENT", result.crude_instrument or "", "", "instrument of the T90"),
            ("CATALOG", c.catalog, "", "T90 mixture (catalog)"),
        ]
        publish(
            fp.table_hdus(extname="CLASS", rows=[row], flags=list(c.flags), t0=t0, **jids),
            "CRCLASS",
            jcode,
            all_files,
            all_cal,
        )
    return refs


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None
