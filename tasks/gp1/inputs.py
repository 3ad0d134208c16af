"""Reading GP1 inputs once: the images, the references of their fields, earlier images.

What :data:`~svomflow.tasks.gp1.pipeline.GP1_PIPELINE` reads before its steps run (I/O,
retried by the adapter on I/O errors only). A bad image is not an error of the run: it is
reported as failed with its reason and the others go on.

* images: plain, gzip'd (``.fits.gz``) or fpack'd (``.fits.fz``) raw frames, or reduced
  images (``REDLEVEL`` in the header; a ``REDIMG`` product) that pass through the reduction;
* references: the field's reference catalogue (a file, or ``<dir>/<OBJECT>.fits``; without
  one configured, ``refcat/<OBJECT>.fits`` next to the images or one level up, where the
  simulator writes it) and the reference images of the configuration, each read once;
* earlier images: the analysed images of the same alert sequence that earlier runs
  published under the same output root (the watcher processes one image at a time), so
  the sequence products are rebuilt from every image so far.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from svomflow.errors import InputDataError, SvomflowError
from svomflow.instruments.ccd_camera import CameraModel
from svomflow.products.catalogue import FitsModel, ProductModel, TextModel
from svomflow.products.ccd_frames import (
    READ_ERRORS,
    image_header,
    observation_start,
    open_image,
    read_image,
    read_raw,
)
from svomflow.products.naming import header_component
from svomflow.tasks.astrometry.solve import read_reference_catalog
from svomflow.tasks.gp1.analysis import FieldReferences, ReferenceImage
from svomflow.tasks.gp1.config import GP1Config
from svomflow.tasks.gp1.image_products import image_from_models
from svomflow.tasks.gp1.images import ImageResult, RawImage
from svomflow.tasks.gp1.reduction import sequence_id
from svomflow.tasks.photometry.extract import ExtractConfig
from svomflow.tasks.photometry.sextractor_config import extract_config_from_sextractor

__all__ = [
    "CATALOG_SEARCH",
    "FRAME_TYPE_KEYWORDS",
    "HEADER_DEFAULTS",
    "calibration_kind",
    "image_stem",
    "normalise_header",
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


#: Values given to optional keywords an image lacks (logical name -> value), see docs/gp1.md.
HEADER_DEFAULTS = {"filter": "NONE", "camera": "unknown"}


def normalise_header(header: fits.Header, camera: CameraModel) -> fits.Header:
    """Return a copy of ``header`` with the keywords GP1 reads in the forms it expects.

    * the observation start (the camera's DATE-OBS keyword) as ISO 8601 UTC, from an ISO
      value, the pre-1997 ``DD/MM/YY`` form, a date with ``TIME-OBS``/``UT``..., or
      ``MJD-OBS``; a changed value keeps the original in ``DATEORIG``;
    * a missing filter or camera name gets :data:`HEADER_DEFAULTS` (``NONE``, ``unknown``),
      noted in the card's comment.

    A header without any usable time is returned unchanged (the reduction then names the
    missing keyword).
    """
    h = header.copy()
    key = camera.kw("date_obs")
    start = observation_start(h, key)
    if start is not None:
        iso = start.replace(tzinfo=None).isoformat(timespec="milliseconds")
        original = h.get(key)
        if original is None or not _is_iso_datetime(original):
            if original is not None:
                h["DATEORIG"] = (str(original), f"original {key}")
            h[key] = (iso, "[UTC] exposure start, normalised by GP1")
    for logical, value in HEADER_DEFAULTS.items():
        kw = camera.kw(logical)
        if kw not in h or not str(h[kw]).strip():
            h[kw] = (value, f"GP1 default: no {kw} in the input")
    return h


def _is_iso_datetime(value: object) -> bool:
    text = str(value).strip()
    if "T" not in text:
        return False
    try:
        _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


#: Header keywords naming the kind of frame, after the camera's own (IRAF, NOAO, MaxIm DL).
FRAME_TYPE_KEYWORDS = ("IMAGETYP", "OBSTYPE", "FRAMETYP")


def calibration_kind(header: fits.Header, camera: CameraModel) -> str | None:
    """Return ``"bias"``, ``"dark"`` or ``"flat"`` for a calibration frame, else None.

    The kind is read from the camera's exposure-type keyword, else ``IMAGETYP``,
    ``OBSTYPE`` or ``FRAMETYP``; the camera's own values (``exposure_types``) and the usual
    foreign ones are understood (``zero`` and ``Bias Frame`` are biases, ``Dark Frame``
    a dark, ``Flat Field``, ``skyflat``, ``domeflat`` flats).
    """
    keys = [camera.keywords.get("exposure_type"), *FRAME_TYPE_KEYWORDS]
    value = next((header[k] for k in keys if k and k in header), None)
    if value is None:
        return None
    text = str(value).strip().lower()
    for kind in ("bias", "dark", "flat"):
        if text == camera.exposure_types.get(kind, kind).lower() or kind in text:
            return kind
    return "bias" if text == "zero" else None


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
        return RawImage(str(p.resolve()), image_stem(p), data, normalise_header(header, camera))
    hdul, index = open_image(p)
    with hdul:
        try:
            data = np.array(hdul[index].data, dtype=np.float32)
            mask = np.array(hdul["MASK"].data, dtype=bool) if "MASK" in hdul else ~np.isfinite(data)
        except READ_ERRORS as exc:
            raise InputDataError(f"{p}: cannot read the reduced image ({exc})") from None
    if data.ndim != 2:
        raise InputDataError(f"{p}: expected a 2-D image")
    header = normalise_header(header, camera)
    return RawImage(str(p.resolve()), image_stem(p, header), data, header, mask)


def sequence_of(header: fits.Header, camera: CameraModel, alert_keyword: str) -> str | None:
    """Return the alert sequence of an image from its header (``None`` for other images)."""
    trig = header.get(alert_keyword)
    if trig in (None, "") or not str(trig).strip():
        return None
    band = header.get(camera.kw("filter"), HEADER_DEFAULTS["filter"])
    try:
        return sequence_id(header_component(trig, what="trigger id"), header_component(band))
    except SvomflowError:
        return None  # the reduction fails this image with the reason


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
    trigger id when the header has no object name); without one configured, the
    :data:`CATALOG_SEARCH` directories next to the image are searched. A missing or
    unreadable reference is recorded, not raised: the module that needs it fails on that
    image only. So is a SExtractor configuration that cannot be used.
    """
    astro = cfg.steps.astrometry
    sub = cfg.steps.subtraction
    astro_img = _reference_image(astro.reference_image) if astro.reference_image else None
    sub_img = None
    if sub.reference_image:
        same = astro_img is not None and sub.reference_image == astro.reference_image
        sub_img = astro_img if same else _reference_image(sub.reference_image)
    catalogs: dict[str, Table | InputDataError] = {}
    settings: dict[str, ExtractConfig | InputDataError] = {}
    out: dict[str, FieldReferences] = {}
    for image in images:
        refs = FieldReferences(astrometry_image=astro_img, subtraction_image=sub_img)
        p, refs.catalog_error = _catalog_file(image, cfg, camera)
        if p is not None and refs.catalog_error is None:
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
        try:
            refs.extract, refs.extract_source = _sextractor_settings(image.path, cfg, settings)
        except InputDataError as exc:
            refs.extract_error = str(exc)
        out[image.path] = refs
    return out


#: Directories searched for ``<OBJECT>.fits`` when no reference catalogue is configured,
#: relative to the image's directory (the simulator writes ``<night>/colibri/refcat``).
CATALOG_SEARCH = ("refcat", "../refcat")


def _catalog_file(
    image: RawImage, cfg: GP1Config, camera: CameraModel
) -> tuple[Path | None, str | None]:
    """Return the reference catalogue file of an image's field, or why there is none.

    A configured file is used as is; a configured directory holds ``<OBJECT>.fits`` (the
    trigger id when the header has no object name). Without a configured catalogue, the
    :data:`CATALOG_SEARCH` directories next to the image are searched; finding none there
    is not an error (the modules that need one say so).
    """
    configured = cfg.steps.astrometry.reference_catalog
    name = str(image.header.get(camera.kw("object"), "") or "").strip()
    name = name or str(image.header.get(cfg.alert_keyword, "") or "").strip()
    if configured is not None:
        p = Path(configured)
        if not p.is_dir():
            return p, None
        p = p / f"{name}.fits"
        return p, None if p.is_file() else f"no reference catalog {p} for field {name!r}"
    if not name:
        return None, None
    for sub in CATALOG_SEARCH:
        p = Path(image.path).parent / sub / f"{name}.fits"
        if p.is_file():
            return p.resolve(), None
    return None, None


def _sextractor_settings(
    image_path: str, cfg: GP1Config, cache: dict[str, ExtractConfig | InputDataError]
) -> tuple[ExtractConfig | None, str | None]:
    """Return the extraction settings of a SExtractor file found for an image, and the file.

    A bare file name is looked up next to the image, a path used as given. An unreadable
    file is an error of the images it applies to (raised when they are analysed).
    """
    name = cfg.steps.findstars.sextractor_config
    if not name:
        return None, None
    p = Path(name)
    if p.parent == Path("."):
        p = Path(image_path).parent / p
    if not p.is_file():
        if Path(name).parent != Path("."):
            raise InputDataError(f"SExtractor configuration {name} does not exist")
        return None, None
    key = str(p.resolve())
    if key not in cache:
        try:
            cache[key] = extract_config_from_sextractor(cfg.steps.findstars.extract, p)
        except InputDataError as exc:
            cache[key] = exc
    got = cache[key]
    if isinstance(got, InputDataError):
        raise got
    return got, key


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
