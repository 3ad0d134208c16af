"""The product catalogue: every product type declared once, and the one way to publish.

Types are declared in the modules listed in :data:`~.registry.DECLARATIONS`; steps return
:class:`Product` objects; runners publish them with :class:`~.publish.CataloguePublisher`.
``docs/products.md`` is generated from this catalogue and the pipelines
(``python -m svomflow.flows.catalogue_docs``).
"""

from svomflow.products.catalogue.models import (
    Card,
    FigureModel,
    FigurePage,
    FitsModel,
    ImageBlock,
    ProductModel,
    TableBlock,
    TextModel,
)
from svomflow.products.catalogue.registry import all_types, declare, is_declared, product_type
from svomflow.products.catalogue.types import (
    PREVIEW_SUFFIX,
    Keyword,
    Product,
    ProductType,
    link_name,
    products_of,
)

__all__ = [
    "PREVIEW_SUFFIX",
    "Card",
    "FigureModel",
    "FigurePage",
    "FitsModel",
    "ImageBlock",
    "Keyword",
    "Product",
    "ProductModel",
    "ProductType",
    "TableBlock",
    "TextModel",
    "all_types",
    "declare",
    "is_declared",
    "link_name",
    "product_type",
    "products_of",
]
