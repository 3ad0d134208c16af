"""The demo shows what it is doing: simulating, the Prefect server, the flow, the site's data."""

from __future__ import annotations

import pytest
from svomflow.cli.demo_cmd import run_demo
from svomflow.cli.main import app
from typer.testing import CliRunner

pytestmark = pytest.mark.integration


def test_demo_progress_stages_in_order(prefect_harness, monkeypatch) -> None:
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    seen: list[tuple[int, int, str]] = []
    run_demo(seed=5, progress=lambda done, total, doing: seen.append((done, total, doing)))
    totals = {t for _, t, _ in seen}
    assert len(totals) == 1
    total = totals.pop()
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and done[0] == 0 and done[-1] == total
    doing = [what for _, _, what in seen]
    assert doing[0].startswith("simulating a bright long GRB")
    assert any(w.startswith("simulating ") and "GRB" not in w for w in doing)  # per instrument
    server = next(i for i, w in enumerate(doing) if w.startswith("Prefect server"))
    flow = next(i for i, w in enumerate(doing) if w.startswith("VHF quick analysis flow"))
    science = next(i for i, w in enumerate(doing) if w.startswith("science delivery"))
    calibration = [i for i, w in enumerate(doing) if "calibration" in w]
    hk = next(i for i, w in enumerate(doing) if w.startswith("a day of housekeeping"))
    assert server < flow < science < calibration[0] and calibration[-1] < hk == len(doing) - 2
    assert doing[-1] == "done"
    # one step per stage after the simulation: server, flow, delivery, 5 calibration runs, hk
    n_sim = seen[server][0]
    assert [seen[i][0] for i in (flow, science)] == [n_sim + 1, n_sim + 2]
    assert [seen[i][0] for i in calibration] == list(range(n_sim + 3, n_sim + 8))
    assert seen[hk][0] == n_sim + 8 == total - 1

    # the command shows the same stages as a bar (its last state: every stage done)
    res = CliRunner().invoke(app, ["demo", "--seed", "5"])
    assert res.exit_code == 0, res.output
    assert "demo: done" in res.stderr and f"{total}/{total}" in res.stderr
