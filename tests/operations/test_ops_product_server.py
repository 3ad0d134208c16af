"""Product links of the artifacts: served by the web site, only below the products root.

The site's own tests (tests/web/test_app_pages.py) request files through ``/files`` with
escapes of every kind; here: the rules shared with the flows, and one site per home.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from svomflow.flows.adapter import preview_markdown, product_link, products_table_markdown
from svomflow.operations.product_server import products_root, resolve_under


def test_resolve_under_keeps_absolute_paths_inside_and_refuses_nul(tmp_path: Path) -> None:
    assert resolve_under(tmp_path, "//etc/passwd") == tmp_path / "etc" / "passwd"
    assert resolve_under(tmp_path, "/a%00b") is None
    assert resolve_under(tmp_path, "/a/b.fits") == tmp_path / "a" / "b.fits"


def test_links_only_below_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "products"
    (root / "B 1").mkdir(parents=True)
    inside = root / "B 1" / "x.fits"
    inside.write_bytes(b"x")
    outside = tmp_path / "elsewhere.fits"
    outside.write_bytes(b"x")
    monkeypatch.setenv("SVOMFLOW_PRODUCTS", str(root))
    monkeypatch.setenv("SVOMFLOW_PRODUCTS_URL", "http://127.0.0.1:4280/")
    assert product_link(inside) == "http://127.0.0.1:4280/B%201/x.fits"
    assert product_link(outside) is None
    monkeypatch.delenv("SVOMFLOW_PRODUCTS_URL")
    assert product_link(inside) is None  # no server: the table shows the path, not file://


def test_previews_are_embedded_when_small_and_linked_when_large(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = tmp_path / "QLCPLOT_ECL_B_v01.png"
    payload = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    png.write_bytes(payload)
    text = preview_markdown(png)
    assert text.startswith("![QLCPLOT_ECL_B_v01.png](data:image/png;base64,")
    assert base64.b64decode(text.split("base64,", 1)[1].rstrip(")")) == payload
    monkeypatch.setenv("SVOMFLOW_PRODUCTS", str(tmp_path))
    monkeypatch.setenv("SVOMFLOW_PRODUCTS_URL", "http://h:1")
    (tmp_path / "sub").mkdir()
    big = tmp_path / "sub" / "big.png"
    big.write_bytes(payload)
    assert preview_markdown(big, max_bytes=100) == "![big.png](http://h:1/sub/big.png)"


def test_products_table_has_no_file_urls(tmp_path: Path) -> None:
    from svomflow.products.store import ProductRef

    path = str(tmp_path / "QLC_ECL_B_v01.fits")
    ref = ProductRef("id", "QLC", "ECL", "B", 1, path, "sum", True)
    table = products_table_markdown([ref])
    assert "file://" not in table
    assert f"`{path}`" in table


def test_products_root_follows_the_flows_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from svomflow.flows.adapter import default_output_root

    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SVOMFLOW_PRODUCTS", raising=False)
    assert products_root() == default_output_root().resolve() == tmp_path / "home" / "products"
    monkeypatch.setenv("SVOMFLOW_PRODUCTS", str(tmp_path / "elsewhere"))
    assert products_root() == default_output_root().resolve() == tmp_path / "elsewhere"


def test_each_home_gets_its_own_site_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from svomflow.operations.local_server import free_port
    from svomflow.web.server import ensure_web_server, stop_web_server

    port = free_port()
    homes = [tmp_path / "a", tmp_path / "b"]
    infos = []
    try:
        for home in homes:
            monkeypatch.setenv("SVOMFLOW_HOME", str(home))
            monkeypatch.delenv("SVOMFLOW_PRODUCTS", raising=False)
            infos.append(ensure_web_server(port=port))
        assert infos[0].url == f"http://127.0.0.1:{port}" and infos[0].started_here
        assert infos[1].url != infos[0].url and infos[1].started_here  # port taken by a
        assert infos[1].files_url == f"{infos[1].url}/files"
        monkeypatch.setenv("SVOMFLOW_HOME", str(homes[0]))
        again = ensure_web_server(port=port)
        assert again.url == infos[0].url and not again.started_here
        # each serves its own home's products (to signed-in users: anonymous gets 401)
        from svomflow.web.routes.files import ROOT_ENDPOINT, root_fingerprint

        for home, info in zip(homes, infos, strict=True):
            served = httpx.get(f"{info.url}{ROOT_ENDPOINT}").text
            assert served == root_fingerprint(str((home / "products").resolve()))
        (homes[1] / "products" / "x.txt").write_text("b's product")
        assert httpx.get(f"{infos[1].files_url}/x.txt").status_code == 401
    finally:
        for home in homes:
            monkeypatch.setenv("SVOMFLOW_HOME", str(home))
            stop_web_server()
