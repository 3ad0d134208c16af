"""The end-to-end alert loop: ECLAIRs/MXT flows -> NATS announcements -> GP1 -> science DB.

Needs a NATS server with JetStream on 127.0.0.1:4222 (skipped otherwise) and runs the real
flows under the Prefect test harness: a small variant of the ``e2e_alert_loop`` scenario
(3 COLIBRI images, a shorter MXT observation). The product
announcements go to svomflow's own stream (``SVOMFLOW_PRODUCTS``: its subjects are fixed by
:mod:`svomflow.products.announcements`); the feed reads them with a throw-away consumer
that only sees what is sent after it starts, for this test's burst.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from astropy.io import fits
from svomflow.operations.alert_loop import chain_summary, run_alert_loop
from svomflow.operations.position_feed import FlowStages
from svomflow.simulation.scenario import load_scenario, run_scenario

pytestmark = [pytest.mark.nats, pytest.mark.integration]


def _jetstream() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        if s.connect_ex(("127.0.0.1", 4222)) != 0:
            return False

    async def ok() -> bool:
        import nats

        nc = await nats.connect(
            "nats://127.0.0.1:4222", connect_timeout=2, allow_reconnect=False,
            max_reconnect_attempts=1,
        )  # fmt: skip
        try:
            await nc.jetstream().account_info()
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    return asyncio.run(ok())


def test_the_alert_loop_chooses_the_afterglow_with_the_announced_positions(
    prefect_harness, svomflow_home, tmp_path, monkeypatch
) -> None:
    if not _jetstream():
        pytest.skip("no NATS server with JetStream on 127.0.0.1:4222")
    monkeypatch.setenv("SVOMFLOW_NATS_SERVERS", "nats://127.0.0.1:4222")
    sim = tmp_path / "sim"
    sc = load_scenario(
        "e2e_alert_loop",
        [
            "instrument_options.alert_loop.n_frames=3",
            "instrument_options.mxt.duration_s=1200",
        ],
    )
    # the burst id is e2e_alert_loop_<seed>; the feed reads only what is sent after it
    # starts, so another run of the same burst on the bus is not mixed in
    truth = run_scenario(sc, sim, 0)
    lines: list[str] = []
    chain = run_alert_loop(sim, truth, FlowStages(), report=lines.append)
    names = [s["name"] for s in chain["steps"]]
    assert names == [
        "VHF flow (ECLAIRs)",
        "announcement -> feed (QPO_ECL)",
        "GP1 image 1/3",
        "GP1 image 2/3",
        "MXT flow",
        "announcement -> feed (SRCLIST_MXT)",
        "GP1 image 3/3",
        "science database delivery",
    ]
    # the ECLAIRs quick position came through the bus, inside its r90 of the burst
    first = chain["first_position"]
    assert first is not None and first["source"] == "QPO_ECL"
    assert first["burst_id"] == truth["instruments"]["alert_loop"]["burst_id"]
    c1, c2, c3 = chain["choices"]
    assert c1["position_source"] == c2["position_source"] == "QPO_ECL"
    assert c3["position_source"] == "SRCLIST_MXT"
    # the better position arriving mid-sequence settles the choice on the afterglow
    assert chain["right_transient"] and c3["chosen"] == "afterglow"
    assert c3["probability"] > 0.99
    others = [c for c in c3["candidates"] if c["name"] != "afterglow"]
    assert others and all(c["probability"] < 0.01 and not c["in_region"] for c in others)
    assert chain["end_to_end_s"] >= chain["steps"][-1]["end_s"]
    assert any("GP1's final choice: the afterglow" in ln for ln in chain_summary(chain))
    # the last GP1 products record the MXT position they used
    from svomflow.flows.adapter import default_output_root
    from svomflow.products import ProductStore

    store = ProductStore(default_output_root())
    burst = chain["burst_id"]
    (qti,) = [r for r in store.list(type_code="QTI") if r.obs_id.startswith(burst)]
    with fits.open(Path(qti.path)) as h:
        assert h[0].header["ALRTSRC"] == "SRCLIST_MXT"
    assert qti.provenance["content"]["alert_position"]["source"] == "SRCLIST_MXT"
