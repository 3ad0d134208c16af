"""Product types and the products steps return: the catalogue's vocabulary.

A :class:`ProductType` is declared once (code, instruments, description, data model,
keyword table, preview) in one of the catalogue's modules; a step returns
:class:`Product` objects (a type code, an instrument code and a model) and a runner
publishes them through :func:`svomflow.products.catalogue.publish.publish_products`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svomflow.products.catalogue.models import FigureModel, FitsModel, ProductModel

__all__ = [
    "PREVIEW_SUFFIX",
    "Keyword",
    "Product",
    "ProductType",
    "link_name",
    "products_of",
]

# the type code of a product's preview: "<CODE>-PREVIEW" (a PNG of the same instrument)
PREVIEW_SUFFIX = "-PREVIEW"


@dataclass(frozen=True)
class Keyword:
    """A header keyword every product of a type carries (checked on publication).

    ``value`` is the fixed value when there is one (``HDUCLAS1 = 'LIGHTCURVE'``); ``None``
    means only its presence is required. ``hdu`` names the extension that carries it
    (``None``: any HDU).
    """

    name: str
    comment: str
    value: Any = None
    hdu: str | None = None


@dataclass(frozen=True)
class ProductType:
    """One product type of the catalogue.

    Attributes
    ----------
    code
        The type code in file names and the database (``QT90``, ``SRCLIST``...).
    description
        One line: what the product holds.
    instruments
        Instrument codes it exists for (shell patterns: ``GRM*`` covers ``GRM-GRD01``).
    model
        Its data model class (:mod:`svomflow.products.catalogue.models`).
    keywords
        Its keyword table (checked on every publication of a FITS model).
    extensions
        Extension names its FITS files must hold, in any order.
    preview
        ``model -> FigureModel`` drawing its PNG preview, published beside it as
        ``<CODE>-PREVIEW``; ``None`` when it has none.
    ext
        File extension when it differs from the model's (``rsp`` for responses).
    module
        The module that declares it (filled in by :func:`~svomflow.products.catalogue.declare`).
    """

    code: str
    description: str
    instruments: tuple[str, ...]
    model: type[ProductModel]
    keywords: tuple[Keyword, ...] = ()
    extensions: tuple[str, ...] = ()
    preview: Callable[[Any], FigureModel] | None = None
    ext: str | None = None
    module: str = ""

    def accepts_instrument(self, instrument: str) -> bool:
        """Whether ``instrument`` is one of the type's instrument codes (patterns allowed)."""
        return any(fnmatch.fnmatchcase(instrument, pat) for pat in self.instruments)

    def check(self, product: Product) -> list[str]:
        """Return what is wrong with a product of this type (empty when it conforms)."""
        problems: list[str] = []
        if not isinstance(product.model, self.model):
            problems.append(
                f"model is {type(product.model).__name__}, the catalogue says {self.model.__name__}"
            )
            return problems
        if not self.accepts_instrument(product.instrument):
            problems.append(
                f"instrument {product.instrument!r} is not one of {list(self.instruments)}"
            )
        if isinstance(product.model, FitsModel):
            have = product.model.keywords()
            for ext in self.extensions:
                if "EXTNAME:" + ext.upper() not in have:
                    problems.append(f"no {ext} extension")
            for kw in self.keywords:
                blocks = (
                    [product.model.primary, *product.model.extensions]
                    if kw.hdu is None
                    else [
                        b for b in product.model.extensions if b.extname.upper() == kw.hdu.upper()
                    ]
                )
                values = [v for b in blocks for k, v, _ in b.cards if k == kw.name]
                if not values:
                    problems.append(
                        f"keyword {kw.name} missing" + (f" in {kw.hdu}" if kw.hdu else "")
                    )
                elif kw.value is not None and all(v != kw.value for v in values):
                    problems.append(f"keyword {kw.name} is {values[0]!r}, not {kw.value!r}")
        return problems


def link_name(type_code: str, instrument: str) -> str:
    """Return the placeholder a product writes where it names another product's file.

    A spectrum's ``RESPFILE`` holds ``link_name("RSP", "GRM-GRD01")`` when it is built; the
    publisher replaces it with the published file name of that product of the same run.
    """
    return f"{type_code}_{instrument}.link"


@dataclass(frozen=True)
class Product:
    """A product a step returns, for a runner to publish through the catalogue.

    Attributes
    ----------
    type_code
        A catalogue code.
    instrument
        The instrument code in its name (``ECL``, ``GRM``, ``ECLGRM``, ``GRM-GRD01``...).
    model
        Its content.
    obs_id
        The observation it belongs to, when not the run's own key (a GP1 sequence).
    inputs
        The run's input files it derives from (default: all of them), for provenance.
    calibration
        The CALDB codes it used (default: every code the step declared).
    content
        What identifies it beyond its input files (recorded in provenance and part of its
        identity): an archived alert's id and checksum, for instance.
    """

    type_code: str
    instrument: str
    model: ProductModel
    obs_id: str | None = None
    inputs: tuple[str, ...] | None = None
    calibration: tuple[str, ...] | None = None
    content: Mapping[str, Any] = field(default_factory=dict)


def products_of(result: object) -> list[Product]:
    """Return the products in a step's result.

    A result is a :class:`Product`, a list or tuple of them, or an object whose
    ``products`` attribute is one of those; anything else holds none.
    """
    if isinstance(result, Product):
        return [result]
    if isinstance(result, list | tuple):
        items: Iterable[object] = result
    else:
        found = getattr(result, "products", None)
        if found is None or callable(found):
            return []
        items = found if isinstance(found, list | tuple) else [found]
    return [p for p in items if isinstance(p, Product)]
