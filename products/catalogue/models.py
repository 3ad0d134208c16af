"""Data models of products: what a step returns and the catalogue writes and reads back.

Every model round-trips: ``Model.from_fits(model.to_fits())`` (or ``read(write(...))``)
gives the same content. Families:

* :class:`FitsModel`: a FITS file as data (primary header cards and image, then named
  table or image extensions), lossless for columns, units, dimensions and cards. Tables,
  OGIP light curves, PHA spectra, responses, event lists and images are all FitsModels;
  the product type's keyword table (``HDUCLAS*``, ``EXTNAME``...) says which kind it is and
  is checked on publication.
* :class:`TextModel`: HTML, markdown, JSON or XML documents (summaries, archived alerts).
* :class:`FigureModel`: a drawing function and its data, rendered to PNG when published
  (the previews of the catalogue's product types use it).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from astropy.io import fits
from svomflow.products.catalogue.fits_bytes import fits_bytes

__all__ = [
    "Card",
    "FigureModel",
    "FigurePage",
    "FitsModel",
    "ImageBlock",
    "ProductModel",
    "TableBlock",
    "TextModel",
]

Card = tuple[str, Any, str]

# header keywords astropy writes from the data itself: never stored as cards
_STRUCTURAL = {
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "TFIELDS",
    "EXTNAME", "CHECKSUM", "DATASUM", "BSCALE", "BZERO",
}  # fmt: skip
_STRUCTURAL_PREFIXES = (
    "NAXIS",
    "TTYPE",
    "TFORM",
    "TUNIT",
    "TDIM",
    "TNULL",
    "TDISP",
    "TZERO",
    "TSCAL",
)


def _is_structural(key: str) -> bool:
    if key in _STRUCTURAL or key == "":
        return True
    return any(key.startswith(p) and key[len(p) :].isdigit() for p in _STRUCTURAL_PREFIXES)


def _cards_of(header: fits.Header) -> list[Card]:
    out: list[Card] = []
    for card in header.cards:
        if _is_structural(card.keyword):
            continue
        out.append((card.keyword, card.value, card.comment))
    return out


def _apply_cards(header: fits.Header, cards: Iterable[Card]) -> None:
    for key, value, comment in cards:
        if key in ("COMMENT", "HISTORY"):
            header.add_comment(str(value)) if key == "COMMENT" else header.add_history(str(value))
        elif value is None:
            continue
        elif len(key) > 8 or " " in key:  # a HIERARCH card of the input (ESO...): said so,
            header[f"HIERARCH {key}"] = (value, comment)  # astropy warns otherwise
        else:
            header[key] = (value, comment)


class ProductModel(ABC):
    """A product's content: written to one file by the catalogue, read back from it."""

    ext: ClassVar[str] = "fits"
    drawn: ClassVar[bool] = False
    """Drawn when published (figures, pages that embed them): the catalogue publishes such
    products after the science products, in the figures' batch, off the critical path."""

    def file_ext(self) -> str:
        """File extension of this product's file."""
        return self.ext

    @abstractmethod
    def write(self, path: Path) -> None:
        """Write the content to ``path`` (the catalogue writes atomically around this)."""

    @classmethod
    @abstractmethod
    def read(cls, path: str | Path) -> Self:
        """Read a file written by :meth:`write`."""


@dataclass
class TableBlock:
    """A binary-table extension: name, columns (astropy ``fits.Column``) and header cards.

    ``descriptions`` holds each column's description (the comment of its ``TTYPEn`` card).
    """

    extname: str
    columns: list[fits.Column]
    cards: list[Card] = field(default_factory=list)
    descriptions: dict[str, str] = field(default_factory=dict)

    def column(self, name: str) -> np.ndarray:
        """Return the array of a column by name (case-insensitive)."""
        for c in self.columns:
            if c.name.upper() == name.upper():
                return np.asarray(c.array)
        raise KeyError(f"{self.extname} has no column {name!r}")

    def card(self, key: str, default: Any = None) -> Any:
        """Return a header value of this extension."""
        for k, v, _ in self.cards:
            if k == key:
                return v
        return default

    def to_hdu(self) -> fits.BinTableHDU:
        """Build the FITS extension."""
        hdu = fits.BinTableHDU.from_columns(fits.ColDefs(self.columns), name=self.extname)
        for i, c in enumerate(self.columns, start=1):
            if c.name in self.descriptions:
                hdu.header.comments[f"TTYPE{i}"] = self.descriptions[c.name]
        _apply_cards(hdu.header, self.cards)
        return hdu

    @classmethod
    def from_hdu(cls, hdu: fits.BinTableHDU) -> TableBlock:
        """Copy an extension into memory (arrays copied, so the file may close)."""
        cols = []
        described = {}
        for i, c in enumerate(hdu.columns, start=1):
            comment = hdu.header.comments[f"TTYPE{i}"] if f"TTYPE{i}" in hdu.header else ""
            if comment:
                described[c.name] = comment
            raw = hdu.data[c.name] if hdu.data is not None else np.zeros(0)
            variable = str(c.format).lstrip("0123456789")[:1] in ("P", "Q")
            # variable-length arrays come back as one array per row
            array: Any = [np.array(x) for x in raw] if variable else np.array(raw, copy=True)
            cols.append(
                fits.Column(
                    name=c.name,
                    format=c.format,
                    unit=c.unit,
                    dim=c.dim,
                    null=c.null,
                    disp=c.disp,
                    array=array,
                )
            )
        return cls(
            extname=hdu.name, columns=cols, cards=_cards_of(hdu.header), descriptions=described
        )


@dataclass
class ImageBlock:
    """An image extension (or the primary array): name, data and header cards."""

    extname: str
    data: np.ndarray | None
    cards: list[Card] = field(default_factory=list)

    def to_hdu(self, primary: bool = False) -> fits.PrimaryHDU | fits.ImageHDU:
        """Build the FITS HDU."""
        if primary:
            hdu: fits.PrimaryHDU | fits.ImageHDU = fits.PrimaryHDU(data=self.data)
        else:
            hdu = fits.ImageHDU(data=self.data, name=self.extname)
        _apply_cards(hdu.header, self.cards)
        return hdu

    @classmethod
    def from_hdu(cls, hdu: fits.PrimaryHDU | fits.ImageHDU) -> ImageBlock:
        """Copy an image HDU into memory."""
        data = None if hdu.data is None else np.array(hdu.data, copy=True)
        return cls(extname=hdu.name, data=data, cards=_cards_of(hdu.header))


Block = TableBlock | ImageBlock


@dataclass
class FitsModel(ProductModel):
    """A FITS file as data: primary cards (and image), then named extensions in order."""

    ext: ClassVar[str] = "fits"

    primary: ImageBlock = field(default_factory=lambda: ImageBlock("PRIMARY", None))
    extensions: list[Block] = field(default_factory=list)

    # --- construction ---------------------------------------------------------------
    @classmethod
    def from_hdus(cls, hdus: Sequence[Any]) -> FitsModel:
        """Build the model from HDUs (a PrimaryHDU first; one is added if missing)."""
        items = list(hdus)
        if not items or not isinstance(items[0], fits.PrimaryHDU):
            items.insert(0, fits.PrimaryHDU())
        prim = ImageBlock.from_hdu(items[0])
        ext: list[Block] = []
        for h in items[1:]:
            if isinstance(h, fits.BinTableHDU):
                ext.append(TableBlock.from_hdu(h))
            elif isinstance(h, fits.ImageHDU):
                ext.append(ImageBlock.from_hdu(h))
            else:
                raise TypeError(f"unsupported HDU type {type(h).__name__} in a product")
        return cls(primary=prim, extensions=ext)

    # --- FITS -------------------------------------------------------------------------
    def to_fits(self) -> fits.HDUList:
        """Return the HDU list (primary first)."""
        hdus: list[Any] = [self.primary.to_hdu(primary=True)]
        for b in self.extensions:
            hdus.append(b.to_hdu())
        return fits.HDUList(hdus)

    @classmethod
    def from_fits(cls, hdul: fits.HDUList) -> Self:
        """Read the model from an open HDU list (data are copied)."""
        model = FitsModel.from_hdus(list(hdul))
        return cls(primary=model.primary, extensions=model.extensions)

    def write(self, path: Path, primary_cards: Sequence[Card] = ()) -> None:
        """Write the FITS file (with CHECKSUM/DATASUM); ``primary_cards`` are set last.

        The bytes come from :func:`~svomflow.products.catalogue.fits_bytes.fits_bytes` (the
        file astropy writes, without building HDUs) when it covers the content, else from
        astropy (``to_fits`` then ``writeto``).
        """
        data = fits_bytes(self, primary_cards)
        if data is not None:
            Path(path).write_bytes(data)
            return
        hdul = self.to_fits()
        for key, value, comment in primary_cards:
            hdul[0].header[key] = (value, comment)
        hdul.writeto(path, checksum=True)

    @classmethod
    def read(cls, path: str | Path) -> Self:
        """Read a FITS file."""
        with fits.open(path, memmap=False) as hdul:
            return cls.from_fits(hdul)

    # --- access -----------------------------------------------------------------------
    def __getitem__(self, extname: str) -> Block:
        for b in self.extensions:
            if b.extname.upper() == extname.upper():
                return b
        raise KeyError(f"no extension {extname!r}; have {[b.extname for b in self.extensions]}")

    def table(self, extname: str) -> TableBlock:
        """Return a table extension by name."""
        b = self[extname]
        if not isinstance(b, TableBlock):
            raise TypeError(f"extension {extname!r} is an image, not a table")
        return b

    def header_value(self, key: str, default: Any = None) -> Any:
        """Return a keyword of the primary header, else of the first extension that has it."""
        for block in (self.primary, *self.extensions):
            for k, v, _ in block.cards:
                if k == key:
                    return v
        return default

    def keywords(self) -> dict[str, Any]:
        """Every keyword of every HDU (first occurrence wins), for the catalogue's checks."""
        out: dict[str, Any] = {}
        for block in (self.primary, *self.extensions):
            out.setdefault("EXTNAME:" + block.extname.upper(), True)
            for k, v, _ in block.cards:
                out.setdefault(k, v)
        return out


@dataclass
class TextModel(ProductModel):
    """A text document: HTML, markdown, JSON or XML (``ext`` of the instance)."""

    text: str
    suffix: str = "html"

    ext: ClassVar[str] = "txt"

    def file_ext(self) -> str:
        """Return the document's own suffix (html, md, json, xml)."""
        return self.suffix

    @classmethod
    def json(cls, payload: Any) -> TextModel:
        """Build a JSON document from a JSON-ready object."""
        return cls(json.dumps(payload, indent=2, sort_keys=True, default=str), "json")

    def write(self, path: Path) -> None:
        """Write the text (UTF-8)."""
        path.write_text(self.text, encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path) -> Self:
        """Read a document; its suffix comes from the file name."""
        p = Path(path)
        return cls(p.read_text(encoding="utf-8"), p.suffix.lstrip(".") or "txt")


@dataclass
class FigureModel(ProductModel):
    """A PNG figure: a drawing function of a matplotlib ``Figure`` and the data it draws.

    Drawing is deferred to publication so that steps stay free of file output; ``draw``
    receives a new figure and fills it. It is drawn once: a document that embeds the figure
    (:meth:`png`) and the published file share the PNG.
    """

    draw: Callable[[Any], None]
    size_in: tuple[float, float] = (8.0, 5.0)
    dpi: int = 100
    _png: bytes | None = field(default=None, init=False, repr=False, compare=False)

    ext: ClassVar[str] = "png"
    drawn: ClassVar[bool] = True

    def png(self) -> bytes:
        """Return the figure as PNG bytes (Agg backend, no display needed), drawn once."""
        if self._png is None:
            import io

            from matplotlib.figure import Figure

            fig = Figure(figsize=self.size_in, dpi=self.dpi)
            self.draw(fig)
            buf = io.BytesIO()
            # zlib level 1: a tenth of the drawing time saved at level 6 for files about
            # as small (flat colours and lines compress well at any level)
            fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
            self._png = buf.getvalue()
        return self._png

    def write(self, path: Path) -> None:
        """Write the figure as PNG."""
        path.write_bytes(self.png())

    @classmethod
    def read(cls, path: str | Path) -> Self:
        """Read a PNG back as a figure that shows the image."""
        import matplotlib.image as mpimg

        img = mpimg.imread(str(path), format="png")

        def draw(fig: Any) -> None:
            ax = fig.add_axes((0, 0, 1, 1))
            ax.imshow(img)
            ax.set_axis_off()

        return cls(draw=draw, size_in=(img.shape[1] / 100.0, img.shape[0] / 100.0))


@dataclass
class FigurePage(ProductModel):
    """An HTML page that embeds figures, composed when it is published.

    ``compose`` returns the page; it draws the figures it embeds (:meth:`FigureModel.png`),
    which is why the page is published with the figures, after the science products.
    """

    compose: Callable[[], str]
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    ext: ClassVar[str] = "html"
    drawn: ClassVar[bool] = True

    def text(self) -> str:
        """Return the page (composed once)."""
        if self._text is None:
            self._text = self.compose()
        return self._text

    def write(self, path: Path) -> None:
        """Write the page (UTF-8)."""
        path.write_text(self.text(), encoding="utf-8")

    @classmethod
    def read(cls, path: str | Path) -> Self:
        """Read a written page back."""
        text = Path(path).read_text(encoding="utf-8")
        return cls(compose=lambda: text)
