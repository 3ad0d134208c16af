"""The publication lane: batches in hand-over order on one thread, the first failure fails the run."""

from __future__ import annotations

import contextvars
import threading
from pathlib import Path

import pytest
from svomflow.flows.publication_lane import LanePublisher, PublicationLane
from svomflow.products.catalogue import Product, TextModel
from svomflow.products.catalogue.publish import CataloguePublisher
from svomflow.products.store import ProductRef, ProductStore

_RUN = contextvars.ContextVar("run", default="none")


def _ref(code: str) -> ProductRef:
    return ProductRef(code, code, "ECL", "o", 1, f"/x/{code}", "c", True)


def test_batches_run_in_order_on_one_thread_in_the_callers_context() -> None:
    lane = PublicationLane()
    seen: list[tuple[str, str, str]] = []
    gate = threading.Event()

    def batch(code: str) -> list[ProductRef]:
        gate.wait(5)  # the plan goes on while the first batch is still being written
        seen.append((code, threading.current_thread().name, _RUN.get()))
        return [_ref(code)]

    _RUN.set("run-1")
    for code in ("A", "B", "C"):
        lane.submit(lambda code=code: batch(code))
    assert seen == []  # nothing written yet: the hand-over did not wait
    gate.set()
    refs = lane.finish()
    lane.close()
    assert [r.id for r in refs] == ["A", "B", "C"]
    assert [s[0] for s in seen] == ["A", "B", "C"]
    assert {s[1].split("_")[0] for s in seen} == {"svomflow-publish"}
    assert {s[2] for s in seen} == {"run-1"}


def test_a_failed_batch_stops_later_ones_and_fails_the_next_hand_over_and_finish() -> None:
    lane = PublicationLane()
    written: list[str] = []
    queued = threading.Event()

    def ok(code: str) -> list[ProductRef]:
        written.append(code)
        return [_ref(code)]

    def bad() -> list[ProductRef]:
        queued.wait(5)  # fails once C is queued behind it
        raise OSError("disk full")

    lane.submit(lambda: ok("A"))
    lane.submit(bad)
    lane.submit(lambda: ok("C"))  # queued behind the failure: not written
    queued.set()
    with pytest.raises(OSError, match="disk full"):
        lane.finish()
    with pytest.raises(OSError, match="disk full"):
        lane.submit(lambda: ok("D"))
    lane.close()
    assert written == ["A"]


def test_lane_publisher_writes_products_through_the_catalogue(tmp_path: Path) -> None:
    """What run_pipeline_plain does: the plain runner's publisher hands batches to the lane."""
    store = ProductStore(tmp_path / "out", f"sqlite:///{tmp_path / 'p.db'}")
    pub = CataloguePublisher(store, obs_id="sb1", flow_name="test", config={})
    lane = PublicationLane()

    class _Step:
        name = "summary"
        calibration: tuple[str, ...] = ()

    lp = LanePublisher(lane, pub)
    assert lp.publish(_Step(), [Product("QSUM", "ECL", TextModel("<p>1</p>", "html"))]) == []
    lp.publish(_Step(), [Product("QSUM", "GRM", TextModel("<p>2</p>", "html"))])
    refs = lane.finish()
    lane.close()
    assert [(r.type_code, r.instrument) for r in refs] == [("QSUM", "ECL"), ("QSUM", "GRM")]
    assert all(Path(r.path).is_file() for r in refs)
    assert [r.id for r in pub.refs] == [r.id for r in refs]
