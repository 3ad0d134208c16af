"""GP1 per-image products: the reduced image, its catalogue, difference, candidates, figures.

Every image a GP1 run reduces becomes products (``obs_id`` = ``<sequence>_<image stem>``):
``REDIMG`` (reduced image and MASK, with the solved WCS), ``IMGSUM`` (its figures as JSON)
and, for an analysed alert image, ``SRCCAT`` (sources with photometry), ``DIFFIMG``
(difference and NOISE) and ``CANDS`` (transient candidates). A later run of the same
sequence (the watcher processes one image at a time) reads them back
(:func:`image_from_models`) to rebuild the sequence products from every image so far.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.table import Table
from svomflow.errors import InputDataError
from svomflow.products.catalogue import FitsModel, Product, ProductModel, TextModel
from svomflow.products.catalogue import gp1 as _declared  # noqa: F401  (the types made here)
from svomflow.tasks.gp1.config import GP1Config
from svomflow.tasks.gp1.images import (
    DifferenceImage,
    ImageResult,
    ImageSummary,
    ReducedImage,
    as_stored,
)
from svomflow.tasks.photometry.psf import PSFModel
from svomflow.tasks.step import step

__all__ = ["IMAGE_PRODUCTS", "ImageProducts", "image_from_models", "image_obs_id", "image_products"]

#: Product types of one image, in publication order.
IMAGE_PRODUCTS = ("REDIMG", "SRCCAT", "DIFFIMG", "CANDS", "IMGSUM")


def image_obs_id(summary: ImageSummary) -> str:
    """Return the ``obs_id`` of an image's products: ``<sequence>_<stem>``."""
    return f"{summary.sequence}_{summary.stem}"


@dataclass
class ImageProducts:
    """An image's results and their products."""

    result: ImageResult
    products: list[Product]


def _table_hdu(table: Table, extname: str) -> fits.BinTableHDU:
    hdu = fits.table_to_hdu(table)
    hdu.name = extname
    return hdu


@step(name="image-products", config=GP1Config, outputs=IMAGE_PRODUCTS)
def image_products(result: ImageResult, *, config: GP1Config) -> ImageProducts:
    """Return an image's products: reduced image, figures, and its analysis when it ran."""
    s = result.summary
    red = result.reduced

    def product(code: str, model: ProductModel) -> Product:
        content = {"sequence": s.sequence, "image": s.stem}
        # the masters this image was reduced with, not every image's of the run
        used = tuple(str(r["name"]) for r in s.calibration if "name" in r)
        return Product(
            code,
            s.instrument,
            model,
            obs_id=image_obs_id(s),
            inputs=(s.raw,),
            calibration=used or None,
            content=content,
        )

    red_hdus = [
        fits.PrimaryHDU(red.data.astype(np.float32), header=red.header),
        fits.ImageHDU(red.mask.astype(np.uint8), name="MASK"),
    ]
    out = [product("REDIMG", FitsModel.from_hdus(red_hdus))]
    if result.catalog is not None:
        hdus = [fits.PrimaryHDU(), _table_hdu(result.catalog, "LDAC_OBJECTS")]
        out.append(product("SRCCAT", FitsModel.from_hdus(hdus)))
    if result.difference is not None:
        d = result.difference
        hdus = [
            fits.PrimaryHDU(d.data, header=d.header),
            fits.ImageHDU(d.noise, header=d.header, name="NOISE"),
        ]
        out.append(product("DIFFIMG", FitsModel.from_hdus(hdus)))
    if result.candidates is not None:
        hdus = [fits.PrimaryHDU(), _table_hdu(result.candidates, "CANDIDATES")]
        out.append(product("CANDS", FitsModel.from_hdus(hdus)))
    out.append(product("IMGSUM", TextModel.json(s.to_dict())))
    return ImageProducts(result, out)


def _table(model: FitsModel) -> Table:
    hdul = model.to_fits()
    return as_stored(Table.read(hdul, hdu=1))


def image_from_models(models: Mapping[str, ProductModel]) -> ImageResult:
    """Rebuild an analysed image from its products (by type code), as a later run needs it.

    Raises
    ------
    InputDataError
        When the figures (``IMGSUM``) or the reduced image (``REDIMG``) are missing.
    """
    summ, red = models.get("IMGSUM"), models.get("REDIMG")
    if not isinstance(summ, TextModel) or not isinstance(red, FitsModel):
        raise InputDataError("an image's IMGSUM and REDIMG products are both needed")
    summary = ImageSummary.from_dict(json.loads(summ.text))
    hdul = red.to_fits()
    data = np.asarray(hdul[0].data, dtype=np.float32)
    mask = np.asarray(hdul["MASK"].data, dtype=bool) | ~np.isfinite(data)
    header = hdul[0].header.copy()
    result = ImageResult(summary, ReducedImage(data, mask, header, summary.calibration))
    cat = models.get("SRCCAT")
    if isinstance(cat, FitsModel):
        result.catalog = _table(cat)
    cands = models.get("CANDS")
    if isinstance(cands, FitsModel):
        result.candidates = _table(cands)
    diff = models.get("DIFFIMG")
    if isinstance(diff, FitsModel):
        dh = diff.to_fits()
        result.difference = DifferenceImage(
            np.asarray(dh[0].data, dtype=np.float32),
            np.asarray(dh["NOISE"].data, dtype=np.float32),
            dh[0].header.copy(),
        )
    if summary.psf is not None:
        result.psf = PSFModel(**summary.psf)
    return result
