"""Publish the MXT products through the product store, each with its provenance.

The MXT steps (:mod:`svomflow.tasks.xray.pipeline`) write their files into a work directory;
this module turns them into recorded, versioned products under
``<out_root>/<obs_id>/MXT/`` (:class:`~svomflow.products.ProductStore`): calibrated events,
the source list, one RMF, per source an ARF, a PHA spectrum (its ``RESPFILE``/``ANCRFILE``
rewritten to the published names) and a light curve, and the PNG previews. Every product
records the input files with checksums, the merged configuration and the calibration files
with the CALDB index version they were selected in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from svomflow.products.content import copy_file, fits_hdus
from svomflow.products.provenance import CalibrationRef, Provenance
from svomflow.products.store import ProductRef, ProductStore

__all__ = ["PRODUCT_TYPES", "calibration_refs", "publish_mxt_products"]

#: Type codes of the MXT products (``{k}``: source number, two digits).
PRODUCT_TYPES: dict[str, str] = {
    "events": "EVT",
    "srclist": "SRCLIST",
    "rmf": "RMF",
    "arf": "ARF_S{k:02d}",
    "spectrum": "SP_S{k:02d}",
    "lightcurve": "LC_S{k:02d}",
    "image_preview": "QIMG",
    "lc_preview": "QLC_S{k:02d}",
}


def calibration_refs(calibration: Mapping[str, Mapping[str, Any]]) -> list[CalibrationRef]:
    """Return the provenance references of resolved calibration files.

    ``calibration`` maps a requirement name to ``{"codename", "path", "sha256",
    "index_version", "override"}`` (what the flow's resolve task returns).
    """
    from svomflow.products.atomic import sha256_file

    refs = []
    for name in sorted(calibration):
        c = calibration[name]
        refs.append(
            CalibrationRef(
                codename=str(c.get("codename") or name.upper()),
                path=str(c["path"]),
                sha256=str(c.get("sha256") or sha256_file(c["path"])),
                index_version=c.get("index_version"),
                override=bool(c.get("override", False)),
            )
        )
    return refs


def publish_mxt_products(
    store: ProductStore,
    *,
    obs_id: str,
    instrument: str,
    provenance: Provenance,
    events_file: str,
    srclist_file: str,
    products: Mapping[str, Any],
) -> dict[str, Any]:
    """Publish the work files of one MXT run; return the product references by kind.

    Parameters
    ----------
    store
        Where products go (output root and database).
    obs_id, instrument
        Product identity (``instrument`` is the header's ``INSTRUME``, e.g. ``MXT``).
    provenance
        Inputs, merged configuration and calibration files of the run.
    events_file, srclist_file
        Calibrated event file and source list written by the steps.
    products
        What :func:`~svomflow.tasks.xray.pipeline.step_products` returned (``rmf``,
        ``arfs``, ``spectra``, ``lightcurves``, ``previews``: paths, one per source for
        the per-source lists, the image preview first in ``previews``).

    Returns
    -------
    dict
        ``events``, ``srclist``, ``rmf``: one :class:`ProductRef` each; ``arfs``,
        ``spectra``, ``lightcurves``: lists per source; ``previews``: image first, then one
        light-curve preview per source.
    """

    def pub(content: Any, code: str, ext: str = "fits") -> ProductRef:
        return store.publish(
            content,
            type_code=code,
            instrument=instrument,
            obs_id=obs_id,
            provenance=provenance,
            ext=ext,
        )

    t = PRODUCT_TYPES
    out: dict[str, Any] = {
        "events": pub(fits_hdus(events_file), t["events"]),
        "srclist": pub(fits_hdus(srclist_file), t["srclist"]),
    }
    rmf = pub(fits_hdus(products["rmf"]), t["rmf"])
    out["rmf"] = rmf
    out["arfs"], out["spectra"], out["lightcurves"] = [], [], []
    for k, (arf_path, pha_path, lc_path) in enumerate(
        zip(products["arfs"], products["spectra"], products["lightcurves"], strict=True), start=1
    ):
        arf = pub(fits_hdus(arf_path), t["arf"].format(k=k))
        pha_hdus = fits_hdus(pha_path)
        # the response files are published next to the spectrum: point at their real names
        spec = next(h for h in pha_hdus if h.name == "SPECTRUM")
        spec.header["RESPFILE"] = Path(rmf.path).name
        spec.header["ANCRFILE"] = Path(arf.path).name
        out["arfs"].append(arf)
        out["spectra"].append(pub(pha_hdus, t["spectrum"].format(k=k)))
        out["lightcurves"].append(pub(fits_hdus(lc_path), t["lightcurve"].format(k=k)))
    previews: Sequence[str] = products["previews"]
    out["previews"] = []
    if previews:
        out["previews"].append(pub(copy_file(previews[0]), t["image_preview"], "png"))
        for k, png in enumerate(previews[1:], start=1):
            out["previews"].append(pub(copy_file(png), t["lc_preview"].format(k=k), "png"))
    return out
