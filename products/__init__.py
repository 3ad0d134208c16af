"""Products: data model, FITS readers/writers, naming, provenance and the products database."""

from svomflow.products.provenance import CalibrationRef, FileRef, Provenance
from svomflow.products.store import ProductRef, ProductStore

__all__ = ["CalibrationRef", "FileRef", "ProductRef", "ProductStore", "Provenance"]
