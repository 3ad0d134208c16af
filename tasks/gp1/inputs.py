"""Reading GP1 inputs once: the images, the references of their fields, earlier images.

What :data:`~svomflow.tasks.gp1.pipeline.GP1_PIPELINE` reads before its steps run (I/O,
retried by the adapter on I/O errors only). A bad image is not an error of the run: it is
reported as failed with its reason and the others go on.

* images: plain, gzip'd (``.fits.gz``) or fpack'd (``.fits.fz``) raw frames, or reduced
  images (``REDLEVEL`` in the header; a ``REDIMG`` product) that pass through the reduction;
* references: the field's reference catalogue (a file, or ``<dir>/<OBJECT>.fits``) and the
  reference images of the configuration, each read once;
* earlier images: the analysed images of the same alert sequence that earlier runs
  published under the same output root (the watcher processes one image at a time), so
  the sequence products are rebuilt from every image so far.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from svomflow.errors import InputDataError, SvomflowError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.catalogue import FitsModel, ProductModel, TextModel
from svomflow.products.ccd_frames import READ_ERRORS, image_header, open_image, read_image, read_raw
from svomflow.tasks.astrometry.solve import read_reference_catalog
from svomflow.tasks.gp1.analysis import FieldReferences, ReferenceImage
from svomflow.tasks.gp1.config import GP1Config
from svomflow.tasks.gp1.image_products import image_from_models
from svomflow.tasks.gp1.images import ImageResult, RawImage
from svomflow.tasks.gp1.reduction import sequence_id

__all__ = [
    "image_stem",
    "read_earlier_images",
    "read_image_file",
    "read_references",
    "sequence_of",
]


def image_stem(path: str | Path, header: fits.Header | None = None) -> str:
    """Return an image's name without suffixes (a reduced image keeps its input's)."""
    if header is not None and header.get("IMGSTEM"):
        return str(header["IMGSTEM"])
    return Path(path).name.split(".")[0]


def read_image_file(path: str | Path, camera: CameraModel) -> RawImage:
    """Read one input image: a raw frame (pixels as stored), or a reduced image and its mask.

    Raises
    ------
    InputDataError
        Unreadable, truncated or compressed-corrupt file, or no image in it.
    """
    p = Path(path)
    hdul, index = open_image(p)
    with hdul:
        header = image_header(hdul, index)
        reduced = "REDLEVEL" in header
    if not reduced:
        data, header = read_raw(p, camera)
        return RawImage(str(p.resolve()), image_stem(p), data, header)
    hdul, index = open_image(p)
    with hdul:
        try:
            data = np.array(hdul[index].data, dtype=np.float32)
            mask = np.array(hdul["MASK"].data, dtype=bool) if "MASK" in hdul else ~np.isfinite(data)
        except READ_ERRORS as exc:
            raise InputDataError(f"{p}: cannot read the reduced image ({exc})") from None
    if data.ndim != 2:
        raise InputDataError(f"{p}: expected a 2-D image")
    return RawImage(str(p.resolve()), image_stem(p, header), data, header, mask)


def sequence_of(header: fits.Header, camera: CameraModel, alert_keyword: str) -> str | None:
    """Return the alert sequence of an image from its header (``None`` for other images)."""
    trig = header.get(alert_keyword)
    if trig in (None, "") or not str(trig).strip():
        return None
    band = header.get(camera.kw("filter"))
    return None if band is None else sequence_id(str(trig).strip(), str(band).strip())


def _reference_image(path: str) -> ReferenceImage:
    try:
        data, header = read_image(path)
    except InputDataError as exc:
        return ReferenceImage(path, error=str(exc))
    return ReferenceImage(path, np.asarray(data, dtype=float), header)


def read_references(
    images: Iterable[RawImage], cfg: GP1Config, camera: CameraModel
) -> dict[str, FieldReferences]:
    """Return the references of each image's field, by image path (each file read once).

    A reference catalogue directory holds one catalogue per field, ``<OBJECT>.fits`` (the
    trigger id when the header has no object name). A missing or unreadable reference is
    recorded, not raised: the module that needs it fails on that image only.
    """
    astro = cfg.steps.astrometry
    sub = cfg.steps.subtraction
    astro_img = _reference_image(astro.reference_image) if astro.reference_image else None
    sub_img = None
    if sub.reference_image:
        same = astro_img is not None and sub.reference_image == astro.reference_image
        sub_img = astro_img if same else _reference_image(sub.reference_image)
    catalogs: dict[str, Table | InputDataError] = {}
    out: dict[str, FieldReferences] = {}
    for image in images:
        refs = FieldReferences(astrometry_image=astro_img, subtraction_image=sub_img)
        if astro.reference_catalog is not None:
            p = Path(astro.reference_catalog)
            if p.is_dir():
                name = str(image.header.get(camera.kw("object"), "") or "").strip()
                name = name or str(image.header.get(cfg.alert_keyword, "") or "").strip()
                p = p / f"{name}.fits"
                if not p.is_file():
                    refs.catalog_error = f"no reference catalog {p} for field {name!r}"
            if refs.catalog_error is None:
                key = str(p)
                if key not in catalogs:
                    try:
                        catalogs[key] = read_reference_catalog(p)
                    except InputDataError as exc:
                        catalogs[key] = exc
                got = catalogs[key]
                if isinstance(got, InputDataError):
                    refs.catalog_error = str(got)
                else:
                    refs.catalog, refs.catalog_path = got, key
        out[image.path] = refs
    return out


def _read_model(type_code: str, path: str) -> ProductModel:
    if type_code == "IMGSUM":
        return TextModel.read(path)
    return FitsModel.read(path)


def read_earlier_images(
    sequences: set[str],
    skip_stems: set[str],
    *,
    out_root: str,
    database_url: str | None,
) -> dict[str, list[ImageResult]]:
    """Return the analysed images of ``sequences`` that earlier runs published, by sequence.

    Only products under ``out_root`` count (another output root is another campaign), only
    alert images analysed through the subtraction, and not the images of this run
    (``skip_stems``: they are analysed again).
    """
    if not sequences:
        return {}
    from svomflow.products.store import ProductStore

    store = ProductStore(out_root, database_url)
    root = Path(out_root).resolve()
    out: dict[str, list[ImageResult]] = {}
    for row in store.list(type_code="IMGSUM"):
        content = dict(row.provenance.get("content") or {})
        seq, stem = content.get("sequence"), content.get("image")
        if seq not in sequences or stem in skip_stems:
            continue
        if not Path(row.path).resolve().is_relative_to(root):
            continue
        models: dict[str, ProductModel] = {}
        try:
            for r in store.list(obs_id=row.obs_id, instrument=row.instrument):
                if not r.type_code.endswith("-PREVIEW"):
                    models[r.type_code] = _read_model(r.type_code, r.path)
            image = image_from_models(models)
        except SvomflowError:
            continue  # a damaged earlier product: the sequence is made from the others
        except READ_ERRORS:
            continue
        if image.summary.alert and "subtraction" in image.done:
            out.setdefault(str(seq), []).append(image)
    return out
