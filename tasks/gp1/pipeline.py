"""The GP1 pipeline: reduce every image; analyse alert images; products of each sequence.

One definition for every way GP1 runs: the Prefect flow
(:func:`svomflow.flows.gp1.gp1_reduction`, through the adapter), and plain Python
(:func:`svomflow.flows.gp1.process_images`: ``gp1 run --no-prefect``, the watcher's plain
mode, notebooks and benchmarks, through :func:`~svomflow.flows.adapter.run_pipeline_plain`).

* The first task selects from the CALDB the bias, dark and flat of every image (by its
  time, filter, CCD temperature and exposure; images selecting alike share one file). A
  missing master is never an error of the run: the image is reduced with the overscan only
  and flagged, or, with ``require_masters``, fails before any step naming every missing
  master, and the other images go on.
* Calibration frames (bias, dark, flat by their exposure type, ``IMAGETYP`` or
  ``OBSTYPE``) are skipped with their reason: they belong to the nightly masters flow.
* Each image: reduction; for alert images (``TRIGID`` set) sources, astrometry,
  photometry and subtraction, each if switched on and if what it needs ran; then its
  products. A bad image fails alone.
* Each alert sequence with a new image: the stack of every image so far (earlier ones from
  the products of earlier runs), analysed like an image, then the sequence's products.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svomflow.calibration.caldb.resolve import CalibrationRequirement
from svomflow.calibration.calibration_set import CalibrationSet
from svomflow.errors import InputDataError, SvomflowError
from svomflow.instruments.ccd_camera import CameraModel, load_camera
from svomflow.products.ccd_frames import read_image_header
from svomflow.tasks import progress
from svomflow.tasks.ccd.master_selection import MasterSelection
from svomflow.tasks.ccd.reduce import frame_master_selections
from svomflow.tasks.gp1.analysis import (
    FieldReferences,
    find_stars,
    measure_photometry,
    solve_image,
    subtract_reference,
)
from svomflow.tasks.gp1.config import GP1Config
from svomflow.tasks.gp1.image_products import image_obs_id, image_products
from svomflow.tasks.gp1.images import ImageResult, ImageSummary, RawImage
from svomflow.tasks.gp1.inputs import (
    calibration_kind,
    normalise_header,
    read_earlier_images,
    read_image_file,
    read_references,
    sequence_of,
)
from svomflow.tasks.gp1.reduction import image_masters, reduce_image
from svomflow.tasks.gp1.sequence import (
    SEQUENCE_PRODUCTS,
    SequenceResult,
    sequence_products,
    stack_sequence,
)
from svomflow.tasks.step import Observation, Pipeline, Runner

__all__ = [
    "GP1_PIPELINE",
    "GP1Inputs",
    "GP1Outcome",
    "GP1Request",
    "gp1_result",
]

FLOW_NAME = "gp1_reduction"


@dataclass(frozen=True)
class GP1Request:
    """What one GP1 run processes.

    Attributes
    ----------
    images
        Input image paths, processed in this order.
    config
        The run's configuration, which says what to read: the camera, the references, the
        output root of earlier images (the same the pipeline is run with).
    sequence_products
        Make the products of the alert sequences that got a new image.
    database_url
        Products database where earlier images of a sequence are found (with the
        configuration's output root).
    """

    images: tuple[str, ...]
    config: GP1Config
    sequence_products: bool = True
    database_url: str | None = None


@dataclass
class GP1Inputs:
    """The images read, those that could not be, references and earlier images."""

    camera: CameraModel
    images: list[RawImage]
    failed: dict[str, str]
    skipped: dict[str, str]
    references: dict[str, FieldReferences]
    earlier: dict[str, list[ImageResult]]
    sequence_products: bool


@dataclass
class GP1Outcome:
    """Each image's figures, the failed and skipped images (path -> reason), the sequences."""

    images: dict[str, ImageSummary] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    sequences: dict[str, SequenceResult] = field(default_factory=dict)


def _observe(request: GP1Request) -> Observation:
    """Return the masters each raw image needs, from its header (unreadable ones skipped)."""
    camera = load_camera(request.config.instrument)
    selections: dict[str, dict[str, Any]] = {}
    times = []
    for path in request.images:
        try:
            header = normalise_header(read_image_header(path), camera)
            if "REDLEVEL" in header:
                continue  # already reduced: no master needed
            masters = frame_master_selections(header, camera)
        except SvomflowError:
            continue  # the image fails when it is read, with its own reason
        selections[path] = {"masters": tuple(masters.values())}
        times.append(masters["BIAS"].time)
    when = min(times) if times else _dt.datetime(2000, 1, 1, tzinfo=_dt.UTC)
    return Observation(instruments=(camera.name,), time=when.isoformat(), selections=selections)


def _needs(observation: Observation, config: GP1Config) -> list[CalibrationRequirement]:
    """Return every image's masters as requirements, all optional (a missing one fails its image)."""
    if not config.steps.reduction.enabled:
        return []
    out: dict[str, CalibrationRequirement] = {}
    for sel in observation.selections.values():
        masters: Sequence[MasterSelection] = sel["masters"]
        for master in masters:
            for req in master.requirements(optional=True):
                out.setdefault(req.name, req)
    return list(out.values())


def _read(request: GP1Request, calibration: CalibrationSet) -> GP1Inputs:
    config = request.config
    camera = load_camera(config.instrument)
    images: list[RawImage] = []
    failed: dict[str, str] = {}
    skipped: dict[str, str] = {}
    red = config.steps.reduction
    for path in request.images:
        try:
            kind = calibration_kind(read_image_header(path), camera)
            if kind is not None:
                skipped[path] = f"{kind} frame: calibration frames go to `svomflow calib nightly`"
                progress.report("gp1", "skipped", item=path)
                continue
            image = read_image_file(path, camera)
            if red.enabled and red.require_masters and not image.reduced:
                _, missing = image_masters(image, camera, calibration)
                if missing:
                    raise InputDataError(f"{image.path}: no calibration file {', '.join(missing)}")
        except SvomflowError as exc:
            failed[path] = str(exc)
            progress.report("gp1", "failed", item=path)
            continue
        images.append(image)
    sequences = {
        s for s in (sequence_of(i.header, camera, config.alert_keyword) for i in images) if s
    }
    earlier = {}
    if request.sequence_products and config.steps.summary.enabled:
        earlier = read_earlier_images(
            sequences,
            {i.stem for i in images},
            out_root=config.output_dir,
            database_url=request.database_url,
        )
    return GP1Inputs(
        camera,
        images,
        failed,
        skipped,
        read_references(images, config, camera),
        earlier,
        request.sequence_products,
    )


def _analyse(
    runner: Runner, result: ImageResult, refs: FieldReferences, cfg: GP1Config, camera: CameraModel
) -> ImageResult:
    """Run the per-image modules that apply (switched on, and what each needs ran)."""
    steps = cfg.steps
    extract = steps.findstars.extract
    if steps.findstars.enabled:
        result = runner.run(find_stars, result, config=steps.findstars)
    if steps.astrometry.enabled and "findstars" in result.done:
        result = runner.run(solve_image, result, refs, extract, config=steps.astrometry)
    if steps.photometry.enabled and "astrometry" in result.done:
        result = runner.run(
            measure_photometry, result, refs, extract, camera, config=steps.photometry
        )
    if steps.subtraction.enabled and "photometry" in result.done:
        result = runner.run(subtract_reference, result, refs, extract, config=steps.subtraction)
    return result


def _image_config(cfg: GP1Config, refs: FieldReferences) -> GP1Config:
    """Return the configuration for one image: a SExtractor file found for it applied.

    Raises
    ------
    InputDataError
        When the image's SExtractor file could not be used.
    """
    if refs.extract_error is not None:
        raise InputDataError(refs.extract_error)
    if refs.extract is None:
        return cfg
    out = cfg.model_copy(deep=True)
    out.steps.findstars.extract = refs.extract
    return out


def _sequence(
    runner: Runner,
    images: list[ImageResult],
    refs: FieldReferences,
    cfg: GP1Config,
    camera: CameraModel,
) -> SequenceResult:
    """Stack a sequence (and analyse the stack like an image), then make its products."""
    steps = cfg.steps
    extract = steps.findstars.extract
    images = sorted(images, key=lambda r: r.summary.mjd_mid)
    stack = None
    if steps.stacking.enabled:
        stack = runner.run(stack_sequence, images, extract, config=steps.stacking)
        stack = runner.run(find_stars, stack, config=steps.findstars)
        if steps.photometry.enabled:
            stack = runner.run(
                measure_photometry, stack, refs, extract, camera, config=steps.photometry
            )
        if steps.subtraction.enabled:
            stack = runner.run(subtract_reference, stack, refs, extract, config=steps.subtraction)
    return runner.run(
        sequence_products,
        images,
        stack,
        cfg.trigger_time,
        steps.subtraction.match_radius_arcsec,
        config=steps.summary,
        alert_position=cfg.alert_position,
    )


def _plan(
    runner: Runner, inputs: GP1Inputs, cfg: GP1Config, calibration: CalibrationSet
) -> GP1Outcome:
    out = GP1Outcome(failed=dict(inputs.failed), skipped=dict(inputs.skipped))
    camera = inputs.camera
    fresh: dict[str, list[ImageResult]] = {}
    field_refs: dict[str, FieldReferences] = {}
    for image in inputs.images:
        r = runner.named(image.stem)
        refs = inputs.references.get(image.path, FieldReferences())
        try:
            res = r.run(
                reduce_image,
                image,
                camera,
                cfg.alert_keyword,
                config=cfg.steps.reduction,
                calibration=calibration,
            )
            if res.summary.alert or cfg.analyse_all:
                res = _analyse(r, res, refs, _image_config(cfg, refs), camera)
            r.run(image_products, res, config=cfg)
        except SvomflowError as exc:
            runner.warn(f"{Path(image.path).name}: {exc}")
            out.failed[image.path] = str(exc)
            progress.report("gp1", "failed", item=image.path)
            continue
        out.images[image.path] = res.summary
        progress.report("gp1", "done", item=image.path)
        if res.summary.alert and "subtraction" in res.done:
            fresh.setdefault(res.summary.sequence, []).append(res)
            field_refs.setdefault(res.summary.sequence, refs)
    if not (inputs.sequence_products and cfg.steps.summary.enabled):
        return out
    for seq, images in fresh.items():
        try:
            out.sequences[seq] = _sequence(
                runner.named(seq),
                [*inputs.earlier.get(seq, []), *images],
                field_refs[seq],
                cfg,
                camera,
            )
        except SvomflowError as exc:
            runner.warn(f"{seq}: {exc}")
            out.failed[seq] = str(exc)
    return out


GP1_PIPELINE: Pipeline[GP1Request, GP1Inputs, GP1Config, GP1Outcome] = Pipeline(
    flow_name=FLOW_NAME,
    config=GP1Config,
    steps=(
        reduce_image,
        find_stars,
        solve_image,
        measure_photometry,
        subtract_reference,
        image_products,
        stack_sequence,
        sequence_products,
    ),
    observe=_observe,
    read=_read,
    plan=_plan,
    calibration_needs=_needs,
)


def _ref_entry(ref: Any) -> dict[str, Any]:
    return {"path": ref.path, "version": ref.version, "id": ref.id}


def gp1_result(outcome: GP1Outcome, refs: Sequence[Any]) -> dict[str, Any]:
    """Return a run's JSON-ready summary (what the flow and ``gp1 run --no-prefect`` give).

    Parameters
    ----------
    outcome
        The plan's outcome.
    refs
        References of the products the run published (``ProductRef``: ``type_code``,
        ``obs_id``, ``path``, ``version``, ``id``).

    Returns
    -------
    dict
        ``images`` (path -> figures and product paths), ``failed`` (path or sequence ->
        reason), ``skipped`` (calibration frames -> why) and ``sequences`` (sequence -> transient, decay index and products).
    """
    by_obs: dict[str, list[Any]] = {}
    for r in refs:
        by_obs.setdefault(r.obs_id, []).append(r)
    images = {}
    for path, s in outcome.images.items():
        mine = by_obs.get(image_obs_id(s), [])
        images[path] = {
            "sequence": s.sequence,
            "date_obs": s.date_obs,
            "mjd_mid": s.mjd_mid,
            "done": list(s.done),
            "redlevel": s.redlevel,
            "zp": s.zp,
            "zp_err": s.zp_err,
            "zp_scatter": s.zp_scatter,
            "maglim": s.maglim,
            "fwhm": s.fwhm,
            "astrometry_rms_arcsec": s.astrometry_rms_arcsec,
            "n_candidates": s.n_candidates,
            "warnings": list(s.warnings),
            "products": {r.type_code: r.path for r in mine},
        }
    sequences = {}
    for seq, res in outcome.sequences.items():
        mine = by_obs.get(seq, [])
        sequences[seq] = {
            "sequence": seq,
            "n_images": res.n_images,
            "transient": res.transient,
            "decay_index": None if res.decay_index is None else list(res.decay_index),
            "stack_maglim": res.stack_maglim,
            "alert_position": None
            if res.alert_position is None
            else res.alert_position.model_dump(mode="json"),
            "candidates": []
            if res.association is None
            else [
                {
                    "ra_deg": c.candidate.ra_deg,
                    "dec_deg": c.candidate.dec_deg,
                    "snr": c.candidate.snr,
                    "decay_index": c.candidate.decay_index,
                    "separation_arcmin": c.separation_arcmin,
                    "in_region": c.in_region,
                    "probability": c.probability,
                }
                for c in res.association.candidates
            ],
            "products": {
                r.type_code: _ref_entry(r) for r in mine if r.type_code in SEQUENCE_PRODUCTS
            },
            "previews": [r.path for r in mine if r.type_code not in SEQUENCE_PRODUCTS],
        }
    return {
        "images": images,
        "failed": dict(outcome.failed),
        "skipped": dict(outcome.skipped),
        "sequences": sequences,
    }
