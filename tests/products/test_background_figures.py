"""Figures published on the publisher's background thread: after the science, all waited for."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from svomflow.products.catalogue import FigureModel, Product
from svomflow.products.catalogue.models import TextModel
from svomflow.products.catalogue.publish import CataloguePublisher
from svomflow.products.store import ProductStore


@dataclass(frozen=True)
class _Step:
    name: str = "summary"
    calibration: tuple[str, ...] = ()


def _figure(seen: dict[str, Any], store: ProductStore, fail: bool = False) -> FigureModel:
    """A figure whose drawing records what was on disk and in the database at that time."""

    def draw(fig: Any) -> None:
        seen["thread"] = threading.current_thread().name
        seen["science"] = [(r.type_code, Path(r.path).is_file()) for r in store.list()]
        if fail:
            raise RuntimeError("the figure could not be drawn")
        fig.subplots().plot([0, 1], [1, 0])

    return FigureModel(draw=draw, size_in=(2.0, 2.0), dpi=50)


def _publisher(store: ProductStore, background: bool) -> CataloguePublisher:
    return CataloguePublisher(
        store, obs_id="sb1", flow_name="test", config={}, background_figures=background
    )


def test_background_figures_follow_the_science_and_are_all_returned(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "out", f"sqlite:///{tmp_path / 'p.db'}")
    seen: dict[str, Any] = {}
    pub = _publisher(store, background=True)
    products = [
        Product("QLCPLOT", "ECL", _figure(seen, store)),
        Product("QSUM", "ECL", TextModel("<p>summary</p>", "html")),
    ]
    refs = pub.publish(_Step(), products)
    # the call returns the science product only; the figure comes from finish_figures
    assert [r.type_code for r in refs] == ["QSUM"]
    figures = pub.finish_figures()
    pub.close()
    assert [r.type_code for r in figures] == ["QLCPLOT"]
    assert Path(figures[0].path).is_file() and figures[0].path.endswith(".png")
    # drawn on the background thread, with the science product already recorded and on disk
    assert seen["thread"].startswith("svomflow-figures")
    assert seen["science"] == [("QSUM", True)]
    assert {r.type_code for r in pub.refs} == {"QSUM", "QLCPLOT"}
    assert {r.type_code for r in store.list(obs_id="sb1")} == {"QSUM", "QLCPLOT"}


def test_without_background_the_call_returns_the_figures_too(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "out", f"sqlite:///{tmp_path / 'p.db'}")
    seen: dict[str, Any] = {}
    pub = _publisher(store, background=False)
    refs = pub.publish(
        _Step(),
        [
            Product("QLCPLOT", "ECL", _figure(seen, store)),
            Product("QSUM", "ECL", TextModel("<p>s</p>", "html")),
        ],
    )
    # science first, then the figures, in the caller's thread
    assert [r.type_code for r in refs] == ["QSUM", "QLCPLOT"]
    assert seen["thread"] == threading.current_thread().name
    assert seen["science"] == [("QSUM", True)]
    assert pub.finish_figures() == []


def test_a_failed_background_figure_fails_finish_and_leaves_nothing(tmp_path: Path) -> None:
    store = ProductStore(tmp_path / "out", f"sqlite:///{tmp_path / 'p.db'}")
    pub = _publisher(store, background=True)
    good: dict[str, Any] = {}
    pub.publish(_Step(), [Product("QLCPLOT", "ECL", _figure({}, store, fail=True))])
    pub.publish(_Step(), [Product("QLCPLOT", "GRM", _figure(good, store))])
    with pytest.raises(RuntimeError, match="could not be drawn"):
        pub.finish_figures()
    pub.close()
    # the batch queued after the failed one was still finished before the error went up
    assert {(r.type_code, r.instrument) for r in store.list()} == {("QLCPLOT", "GRM")}
    assert good["thread"].startswith("svomflow-figures")
    leftovers = [p.name for p in (tmp_path / "out").rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    assert not list((tmp_path / "out" / "sb1" / "ECL").glob("*.png"))


def test_a_page_of_figures_is_composed_with_the_figures_after_the_science(
    tmp_path: Path,
) -> None:
    # the GP1 HTML summary embeds figures: it is composed on the figure thread, once the
    # step's science products are on disk and recorded, and published with the figures
    from svomflow.products.catalogue import FigurePage

    store = ProductStore(tmp_path / "out", f"sqlite:///{tmp_path / 'p.db'}")
    seen: dict[str, Any] = {}
    figure = _figure({}, store)

    def compose() -> str:
        seen["thread"] = threading.current_thread().name
        seen["science"] = [(r.type_code, Path(r.path).is_file()) for r in store.list()]
        return f"<p>{len(figure.png())} bytes of figure</p>"

    pub = _publisher(store, background=True)
    refs = pub.publish(
        _Step(),
        [
            Product("SUMMARY", "COLIBRI", FigurePage(compose)),
            Product("QSUM", "ECL", TextModel("<p>s</p>", "html")),
        ],
    )
    assert [r.type_code for r in refs] == ["QSUM"]
    pages = pub.finish_figures()
    pub.close()
    assert [r.type_code for r in pages] == ["SUMMARY"] and pages[0].path.endswith(".html")
    assert seen["thread"].startswith("svomflow-figures")
    assert seen["science"] == [("QSUM", True)]
    text = Path(pages[0].path).read_text()
    assert text.startswith("<p>") and int(text[3:].split()[0]) > 100  # the PNG was drawn
    assert FigurePage.read(pages[0].path).text() == text
