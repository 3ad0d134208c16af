"""The product server: read-only, only below the products root; artifacts link and embed."""

from __future__ import annotations

import base64
import http.client
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from svomflow.flows.adapter import preview_markdown, product_link, products_table_markdown
from svomflow.operations.product_server import make_server, resolve_under


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path / "products"
    (root / "GRB1" / "ECL").mkdir(parents=True)
    (root / "GRB1" / "ECL" / "QLC_ECL_GRB1_v01.fits").write_bytes(b"SIMPLE  =  T" + b" " * 100)
    (tmp_path / "secret.txt").write_text("not a product")
    os.symlink(tmp_path / "secret.txt", root / "GRB1" / "link.txt")
    server = make_server(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, server.server_port
    server.shutdown()
    server.server_close()


def _request(port: int, method: str, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request(method, path)  # sent as is: no client-side normalisation of ".."
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_serves_a_product_and_nothing_outside_the_root(served: tuple[Path, int]) -> None:
    root, port = served
    status, body = _request(port, "GET", "/GRB1/ECL/QLC_ECL_GRB1_v01.fits")
    assert status == 200
    assert body == (root / "GRB1" / "ECL" / "QLC_ECL_GRB1_v01.fits").read_bytes()
    for escape in (
        "/../secret.txt",
        "/GRB1/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/GRB1/link.txt",
    ):
        status, body = _request(port, "GET", escape)
        assert status == 403, escape
        assert b"not a product" not in body
    assert _request(port, "GET", "/GRB1/ECL/missing.fits")[0] == 404


def test_read_only(served: tuple[Path, int]) -> None:
    root, port = served
    for method in ("PUT", "POST", "DELETE"):
        assert _request(port, method, "/GRB1/ECL/QLC_ECL_GRB1_v01.fits")[0] == 405
    assert (root / "GRB1" / "ECL" / "QLC_ECL_GRB1_v01.fits").exists()


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


def test_each_home_gets_its_own_server_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from svomflow.operations.local_server import free_port
    from svomflow.operations.product_server import ensure_product_server, stop_product_server

    port = free_port()
    homes = [tmp_path / "a", tmp_path / "b"]
    infos = []
    try:
        for home in homes:
            monkeypatch.setenv("SVOMFLOW_HOME", str(home))
            monkeypatch.delenv("SVOMFLOW_PRODUCTS", raising=False)
            infos.append(ensure_product_server(port=port))
        assert infos[0].url == f"http://127.0.0.1:{port}" and infos[0].started_here
        assert infos[1].url != infos[0].url and infos[1].started_here  # port taken by a
        monkeypatch.setenv("SVOMFLOW_HOME", str(homes[0]))
        again = ensure_product_server(port=port)
        assert again.url == infos[0].url and not again.started_here
        (homes[1] / "products" / "x.txt").write_text("b's product")
        assert httpx.get(f"{infos[1].url}/x.txt").text == "b's product"
        assert httpx.get(f"{infos[0].url}/x.txt").status_code == 404
    finally:
        for home in homes:
            monkeypatch.setenv("SVOMFLOW_HOME", str(home))
            stop_product_server()
