"""``docs/products.md`` is generated from the catalogue: it must match the code."""

from pathlib import Path

from svomflow.flows.catalogue_docs import render, source_file

REPO = Path(__file__).resolve().parents[2]


def test_products_doc_is_current() -> None:
    doc = (REPO / "docs" / "products.md").read_text()
    assert doc == render(), (
        "docs/products.md is stale: run "
        "`.venv/bin/python -m svomflow.flows.catalogue_docs > docs/products.md`"
    )


def test_every_file_the_doc_names_exists() -> None:
    import re

    for path in set(re.findall(r"`([a-z_/]+\.py)`", render())):
        assert (REPO / path).is_file(), path
    assert source_file("svomflow.errors") == "foundation/errors.py"
