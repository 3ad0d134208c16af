"""Smoke test: every notebook in notebooks/ executes top to bottom (nbclient).

Notebooks run in a temporary directory (``SVOMFLOW_NOTEBOOK_OUT``) with a fresh
``SVOMFLOW_HOME`` each (no CALDB, products or configuration of the developer's), with the
public data of ``../shared/data`` when present (``SVOMFLOW_SHARED_DATA``), against a
private ``prefect server start`` so that the deployment cell really serves and runs a
deployment. Skipped with the reason when no Jupyter kernel can start.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SHARED_DATA = Path(os.environ.get("SVOMFLOW_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="module")
def notebook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from svomflow.operations.local_server import prefect_server

    home = tmp_path_factory.mktemp("nb_prefect")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    with prefect_server(env=env, log_file=home / "server.log", timeout_s=90) as url:
        yield url


def test_notebooks_are_stripped() -> None:
    import nbformat

    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, (
                    f"{path.name}: outputs kept"
                )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(
    path: Path, notebook_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import NoSuchKernel

    monkeypatch.setenv("SVOMFLOW_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("SVOMFLOW_HOME", str(tmp_path / "home"))
    for name in ("SVOMFLOW_CALDB", "SVOMFLOW_PRODUCTS", "SVOMFLOW_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    # one kernel cache for the notebooks of the session (a fresh home would compile each time)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path.parent / "notebook_numba_cache"))
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("SVOMFLOW_SHARED_DATA", str(SHARED_DATA))
    monkeypatch.setenv("PREFECT_API_URL", notebook_server)
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("PREFECT_RUNNER_POLL_FREQUENCY", "1")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    try:
        client.execute()
    except (NoSuchKernel, RuntimeError) as exc:
        if "kernel" in str(exc).lower() and "died" not in str(exc).lower():
            pytest.skip(f"no Jupyter kernel could start: {exc}")
        raise
