"""Publishing through the catalogue: check, link, record provenance, write, preview.

:class:`CataloguePublisher` is the only code that turns a step's
:class:`~svomflow.products.catalogue.types.Product` objects into files and database rows
(through :class:`~svomflow.products.store.ProductStore`: atomic, versioned, idempotent).
Both runners use it: the Prefect adapter and the plain runner of ``--no-prefect`` runs.
"""

from __future__ import annotations

import contextvars
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel
from sqlalchemy.exc import OperationalError
from svomflow.paths import safe_join
from svomflow.products.catalogue.instrument_codes import instrument_code
from svomflow.products.catalogue.models import FitsModel
from svomflow.products.catalogue.registry import product_type
from svomflow.products.catalogue.types import PREVIEW_SUFFIX, Product, link_name
from svomflow.products.content import relink_ogip
from svomflow.products.provenance import CalibrationRef, FileRef, Provenance
from svomflow.products.store import LazyFits, ProductRef, ProductStore, PublishRequest

__all__ = ["CataloguePublisher", "ProductCheckError"]


class ProductCheckError(TypeError):
    """A step made a product that does not conform to its catalogue type (a bug)."""


class _StepLike(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def calibration(self) -> tuple[str, ...]: ...


class CataloguePublisher:
    """Publish products of one run: one store, one key, one configuration, one input set.

    Parameters
    ----------
    store
        The product store (output root and products database).
    obs_id
        The run's key (products may name another, e.g. a GP1 sequence).
    flow_name
        Recorded in provenance and the database.
    config
        The run's merged configuration (written into every product's provenance).
    inputs
        The run's input files (checksummed once).
    calibration
        The run's calibration files; each product records those of its step's codes.
    background_figures
        Publish figures (PNG products and catalogue previews) on one background thread
        once the science products of the same call are safe, so drawing overlaps the
        next steps; :meth:`finish_figures` waits for them (call it before the run ends).
    """

    def __init__(
        self,
        store: ProductStore,
        *,
        obs_id: str,
        flow_name: str,
        config: BaseModel | Mapping[str, Any] | None,
        inputs: Sequence[str | os.PathLike[str]] = (),
        calibration: Sequence[CalibrationRef] = (),
        background_figures: bool = False,
    ) -> None:
        self.store = store
        self.obs_id = obs_id
        self.flow_name = flow_name
        self.config = (
            config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config or {})
        )
        self.calibration = list(calibration)
        self._files = {str(Path(p).resolve()): FileRef.of(p) for p in inputs}
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self.refs: list[ProductRef] = []
        self._figures_pool = (
            ThreadPoolExecutor(1, thread_name_prefix="svomflow-figures")
            if background_figures
            else None
        )
        self._figure_batches: list[Future[list[ProductRef]]] = []

    def _inputs(self, product: Product) -> list[FileRef]:
        if product.inputs is None:
            return list(self._files.values())
        out = []
        for p in product.inputs:
            key = str(Path(p).resolve())
            if key not in self._files:
                self._files[key] = FileRef.of(key)
            out.append(self._files[key])
        return out

    def _calibration(self, product: Product, step_codes: Sequence[str]) -> list[CalibrationRef]:
        """Return the calibration files a product used.

        ``product.calibration`` names them (selection names such as ``grm:EBOUNDS``, or CALDB
        codes); by default they are the step's codes. A code stands for the files of that
        code whose instrument is among the product's (``GRM`` in ``GRM-GRD01``, ``ECL`` and
        ``GRM`` in ``ECLGRM``), so a GRM product does not record ECLAIRs' files.
        """
        wanted = list(product.calibration or step_codes)
        names = {w for w in wanted if ":" in w}
        codes = {w.upper() for w in wanted if ":" not in w}
        out = []
        for ref in self.calibration:
            if ref.name is not None and ref.name in names:
                out.append(ref)
            elif ref.codename.upper() in codes and self._same_instrument(ref, product):
                out.append(ref)
        return out

    @staticmethod
    def _same_instrument(ref: CalibrationRef, product: Product) -> bool:
        if ref.name is None:
            return True
        return instrument_code(ref.name.split(":", 1)[0]) in product.instrument.upper()

    def publish(self, step: _StepLike, products: Sequence[Product]) -> list[ProductRef]:
        """Publish a step's science products as one batch, then its figures as another.

        Figures are the drawn products (PNG figures, pages that embed them: ``model.drawn``)
        and the catalogue previews of the science products. The science products are safe on disk and recorded before any figure is
        drawn; with ``background_figures`` the figures are drawn and published on the
        background thread and their references come from :meth:`finish_figures` instead.

        Raises
        ------
        ProductCheckError
            When a product does not conform to its catalogue declaration.
        """
        science: list[Product] = []
        figures: list[Product] = []
        previewed: list[Product] = []
        for p in products:
            ptype = product_type(p.type_code)
            problems = ptype.check(p)
            if problems:
                raise ProductCheckError(
                    f"step {step.name!r} made a {p.type_code} ({p.instrument}) that does not "
                    f"conform to the catalogue: {'; '.join(problems)}"
                )
            (figures if p.model.drawn else science).append(p)
            if ptype.preview is not None:
                previewed.append(p)
        refs = self._write_batch(science, step)
        if not figures and not previewed:
            return refs
        if self._figures_pool is None:
            return refs + self._write_figures(figures, previewed, step)
        # in the caller's context: the flow run's id goes into the figures' provenance
        context = contextvars.copy_context()
        batch = self._figures_pool.submit(
            context.run, self._write_figures, figures, previewed, step
        )
        with self._lock:
            self._figure_batches.append(batch)
        return refs

    def finish_figures(self) -> list[ProductRef]:
        """Wait for the figures published in the background; return their references.

        Every queued batch is waited for (none is left writing) before the first error,
        if any, is raised. Without ``background_figures`` there is nothing to wait for.
        """
        with self._lock:
            batches, self._figure_batches = self._figure_batches, []
        refs: list[ProductRef] = []
        error: BaseException | None = None
        for batch in batches:
            try:
                refs.extend(batch.result())
            except BaseException as exc:  # waited for the others first, raised below
                error = error or exc
        if error is not None:
            raise error
        return refs

    def close(self) -> None:
        """Wait for the background figures (errors ignored) and stop the background thread."""
        if self._figures_pool is not None:
            self._figures_pool.shutdown(wait=True)

    def _write_figures(
        self, figures: list[Product], previewed: list[Product], step: _StepLike
    ) -> list[ProductRef]:
        """Build the catalogue previews of ``previewed``, publish them with ``figures``.

        A transient error (I/O, a busy database) is tried again once, as the Prefect
        publication task would: a failed batch leaves nothing behind.
        """
        batch = list(figures)
        for p in previewed:
            preview = product_type(p.type_code).preview
            assert preview is not None
            batch.append(
                Product(
                    p.type_code + PREVIEW_SUFFIX,
                    p.instrument,
                    preview(p.model),
                    obs_id=p.obs_id,
                    inputs=p.inputs,
                    calibration=p.calibration,
                    content=p.content,
                )
            )
        try:
            return self._write_batch(batch, step)
        except (OSError, OperationalError):
            if self._figures_pool is None:
                raise  # in the caller's thread: its own retry policy applies
            time.sleep(1.0)
            return self._write_batch(batch, step)

    def _write_batch(self, products: list[Product], step: _StepLike) -> list[ProductRef]:
        if not products:
            return []
        requests = [self._request(p, step) for p in products]

        def remember(paths: Sequence[Path]) -> None:
            # the batch's own names are known once its versions are reserved: products
            # written after them in the batch link to them
            with self._lock:
                for p, path in zip(products, paths, strict=True):
                    self._names[link_name(p.type_code, p.instrument)] = str(path.resolve())

        refs = self.store.publish_many(requests, before_write=remember)
        with self._lock:
            self.refs.extend(refs)
        return refs

    def _request(self, p: Product, step: _StepLike) -> PublishRequest:
        model = p.model
        content: Any
        if isinstance(model, FitsModel):
            folder = safe_join(self.store.out_root, p.obs_id or self.obs_id, p.instrument)
            content = LazyFits(lambda: self._linked(model, folder))
        else:
            content = model.write
        prov = Provenance.start(
            config=self.config,
            inputs=self._inputs(p),
            calibration=self._calibration(p, step.calibration),
            flow_name=self.flow_name,
        )
        prov.content = dict(p.content)
        return PublishRequest(
            content,
            type_code=p.type_code,
            instrument=p.instrument,
            obs_id=p.obs_id or self.obs_id,
            provenance=prov,
            ext=product_type(p.type_code).ext or model.file_ext(),
        )

    def _linked(self, model: FitsModel, folder: Path) -> FitsModel:
        """Return a FITS model with its OGIP links naming the published files."""
        with self._lock:
            targets = dict(self._names)
        # a link names the file relative to this product's folder (XSPEC and our loader
        # resolve it from the spectrum's folder): a bare name when they share a folder
        names = {k: os.path.relpath(v, folder) for k, v in targets.items()}
        return relink_ogip(model, names)
