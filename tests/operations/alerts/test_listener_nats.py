"""The NATS JetStream listener end to end: alert -> flow run -> ALERT product in the database.

Needs a NATS server with JetStream on 127.0.0.1:4222 (skipped otherwise). Every test uses its
own stream and subjects (a random prefix), so runs never see each other's messages. The flow
is ``alert_ingest`` (archives the alert as a product: well under a second of work) started
in ``direct`` mode under the Prefect test server; ``tests/ops/test_serve_alert.py`` runs the
deployment mode against a served deployment.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from svomflow.operations.alerts.background import BackgroundListener, publish_alert
from svomflow.operations.alerts.listener import ListenerSettings, Route
from svomflow.products.store import ProductStore

pytestmark = [pytest.mark.nats, pytest.mark.integration]

NATS_URL = "nats://127.0.0.1:4222"


def _nats_answers() -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", 4222)) == 0


@pytest.fixture
def nats_prefix() -> str:
    """A unique subject prefix and stream for this test; skip when NATS does not answer."""
    if not _nats_answers():
        pytest.skip("no NATS server on 127.0.0.1:4222")

    async def jetstream_ok() -> bool:
        import nats

        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0)
        try:
            await nc.jetstream().account_info()
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    if not asyncio.run(jetstream_ok()):
        pytest.skip("the NATS server on 127.0.0.1:4222 has no JetStream")
    prefix = f"t{uuid.uuid4().hex[:10]}"
    yield prefix

    async def cleanup() -> None:
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(f"S_{prefix}")
        except Exception:
            pass
        await nc.close()

    asyncio.run(cleanup())


def _settings(prefix: str, tmp_path: Path) -> ListenerSettings:
    db = f"sqlite:///{tmp_path / 'products.db'}"
    fixed = {"out_dir": str(tmp_path / "products"), "database_url": db}
    return ListenerSettings(
        servers=[NATS_URL],
        stream=f"S_{prefix}",
        durable=f"d_{prefix}",
        routes=[
            Route(subject=f"{prefix}.svom.alert.eclairs", instrument="eclairs", parameters=fixed),
            Route(subject=f"{prefix}.svom.alert.mxt", instrument="mxt", parameters=fixed),
        ],
        dead_letter_subject=f"{prefix}.svom.deadletter",
        mode="direct",
        database_url=db,
        retry_delay_s=0.5,
    )


def publish(subject: str, payload: str, msg_id: str | None = None) -> None:
    publish_alert(NATS_URL, subject, payload, msg_id)


def alert_products(settings: ListenerSettings, tmp_path: Path, burst: str) -> list[Any]:
    store = ProductStore(tmp_path / "products", settings.database_url)
    return store.list(obs_id=burst, type_code="ALERT", include_superseded=True)


def test_alert_starts_flow_and_product_is_recorded(
    prefect_harness: None, nats_prefix: str, tmp_path: Path, make_voevent
) -> None:
    settings = _settings(nats_prefix, tmp_path)
    listener = BackgroundListener(settings).start()
    try:
        t0 = time.time()
        publish(f"{nats_prefix}.svom.alert.eclairs", make_voevent("sb26112301"))
        done = listener.wait_for("submitted", 1)
    finally:
        listener.stop()
    rows = alert_products(settings, tmp_path, "sb26112301")
    assert len(rows) == 1
    assert rows[0].instrument == "eclairs" and rows[0].version == 1
    text = Path(rows[0].path).read_text()
    assert "sb26112301" in text and "<voe:VOEvent" in text
    assert rows[0].flow_run_id == done[0]["flow_run_id"]
    store = ProductStore(tmp_path / "products", settings.database_url)
    states = {(s.key, s.flow_name): s.state for s in store.statuses()}
    assert states[("sb26112301", "alert_ingest")] == "done"
    assert states[("sb26112301", "burst")] == "received"
    assert states[("alert:ivo://org.svom/fsc#sb26112301_eclairs", "alert_ingest")] == "received"
    # direct mode: the flow ran to completion before the ack, so this bounds the whole run
    assert time.time() - t0 < 60


def test_alerts_published_while_listener_is_down_are_delivered(
    prefect_harness: None, nats_prefix: str, tmp_path: Path, make_voevent, make_json_alert
) -> None:
    settings = _settings(nats_prefix, tmp_path)
    # first start creates the stream and the durable consumers, then the listener goes down
    BackgroundListener(settings).start().stop()
    publish(f"{nats_prefix}.svom.alert.eclairs", make_voevent("sb26112303"))
    publish(f"{nats_prefix}.svom.alert.mxt", make_json_alert("sb26112304"))
    listener = BackgroundListener(settings).start()
    try:
        listener.wait_for("submitted", 2)
    finally:
        listener.stop()
    assert len(alert_products(settings, tmp_path, "sb26112303")) == 1
    (row,) = alert_products(settings, tmp_path, "sb26112304")
    assert row.instrument == "mxt" and row.path.endswith(".json")
    # nothing is left to redeliver: a third start submits nothing new
    listener = BackgroundListener(settings).start()
    time.sleep(1.5)
    listener.stop()
    assert listener.of("submitted") == [] and listener.of("duplicate") == []


def test_duplicates_never_run_twice_and_bad_messages_do_not_stop_the_listener(
    prefect_harness: None, nats_prefix: str, tmp_path: Path, make_voevent
) -> None:
    settings = _settings(nats_prefix, tmp_path)
    subject = f"{nats_prefix}.svom.alert.eclairs"
    listener = BackgroundListener(settings).start()
    try:
        good = make_voevent("sb26112305")
        publish(subject, good, msg_id="m-1")
        publish(subject, good, msg_id="m-1")  # dropped by JetStream's duplicate window
        listener.wait_for("submitted", 1)
        publish(subject, good, msg_id="m-2")  # re-sent later: caught by the ledger
        listener.wait_for("duplicate", 1)
        publish(subject, "<VOEvent><Who>broken", msg_id="m-3")
        publish(subject, make_voevent("sb26112306", dec=123.0), msg_id="m-4")
        listener.wait_for("rejected", 2)
        publish(subject, make_voevent("sb26112307"), msg_id="m-5")  # still listening
        listener.wait_for("submitted", 2)
    finally:
        listener.stop()
    assert len(listener.of("submitted")) == 2
    assert len(listener.of("duplicate")) == 1
    reasons = [r["reason"] for r in listener.of("rejected")]
    assert any("well-formed" in r for r in reasons) and any("dec_deg" in r for r in reasons)
    assert len(alert_products(settings, tmp_path, "sb26112305")) == 1
    assert alert_products(settings, tmp_path, "sb26112306") == []
    assert len(alert_products(settings, tmp_path, "sb26112307")) == 1

    async def dead_letters() -> list[tuple[bytes, str]]:
        import nats

        nc = await nats.connect(NATS_URL)
        try:
            sub = await nc.jetstream().pull_subscribe(
                settings.dead_letter_subject, durable=None, stream=settings.stream
            )
            msgs = await sub.fetch(batch=10, timeout=2)
            return [(m.data, m.headers.get("Svomflow-Reason", "")) for m in msgs]
        finally:
            await nc.close()

    dl = asyncio.run(dead_letters())
    assert len(dl) == 2 and dl[0][0] == b"<VOEvent><Who>broken"


def _read_run(run_id: str) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def test_direct_mode_runs_the_alert_here_as_one_keyed_flow_run(
    prefect_harness: None, nats_prefix: str, tmp_path: Path, make_voevent
) -> None:
    """The warm path: a tracked Prefect run under the alert's key, executed in this process."""
    settings = _settings(nats_prefix, tmp_path)
    listener = BackgroundListener(settings).start()
    try:
        publish(f"{nats_prefix}.svom.alert.eclairs", make_voevent("sb26112308"))
        (done,) = listener.wait_for("submitted", 1)
    finally:
        listener.stop()
    run = _read_run(done["flow_run_id"])
    assert run.idempotency_key == "alert:ivo://org.svom/fsc#sb26112308_eclairs:alert_ingest"
    assert run.state.type.value == "COMPLETED" and run.deployment_id is None
    assert run.name == "alert-sb26112308" and {"alert", "eclairs"} <= set(run.tags)
    # no deployment and no runner in this test: only the listener can have executed it
    (row,) = alert_products(settings, tmp_path, "sb26112308")
    assert row.flow_run_id == done["flow_run_id"]


def test_a_run_left_running_by_a_dead_listener_is_run_again_as_the_same_run(
    prefect_harness: None, nats_prefix: str, tmp_path: Path, make_voevent
) -> None:
    """Killed mid-run (claim pending, lease expired, run Running): same run, executed once."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running
    from svomflow.flows.registry import get_spec
    from svomflow.operations.alerts.dispatch import DeploymentDispatcher
    from svomflow.operations.alerts.ledger import AlertLedger
    from svomflow.operations.alerts.listener import flow_parameters
    from svomflow.products.alert_messages import parse_alert

    settings = _settings(nats_prefix, tmp_path).model_copy(update={"claim_lease_s": 0.5})
    route = settings.routes[0]
    payload = make_voevent("sb26112309")
    alert = parse_alert(payload.encode())
    spec = get_spec(route.flow)
    params = flow_parameters(route, alert, payload, route.subject)
    key = f"alert:{alert.alert_id}:{spec.name}"

    async def crashed_run() -> tuple[str, str]:
        dispatcher = DeploymentDispatcher()
        try:
            first = await dispatcher.create_local_run(
                spec.load(), params, name="alert-sb26112309", idempotency_key=key, tags=[]
            )
            again = await dispatcher.create_local_run(
                spec.load(), params, name="other", idempotency_key=key, tags=[]
            )
        finally:
            await dispatcher.close()
        async with get_client() as client:  # the dead listener had started it
            await client.set_flow_run_state(first.flow_run.id, Running(), force=True)
        return first.id, again.id

    first_id, again_id = asyncio.run(crashed_run())
    assert first_id == again_id  # the key gives the run that exists
    AlertLedger(settings.database_url).claim(alert.alert_id, spec.name, route.subject, payload)
    time.sleep(0.6)  # the dead listener's lease runs out
    listener = BackgroundListener(settings).start()
    try:
        (rec,) = listener.wait_for("recovered", 1)
    finally:
        listener.stop()
    assert rec["flow_run_id"] == first_id
    assert _read_run(first_id).state.type.value == "COMPLETED"
    (row,) = alert_products(settings, tmp_path, "sb26112309")
    assert row.flow_run_id == first_id
    claim = AlertLedger(settings.database_url).get(alert.alert_id, spec.name)
    assert claim is not None and claim.flow_run_id == first_id

    async def finished_again() -> bool:
        dispatcher = DeploymentDispatcher()
        try:
            run = await dispatcher.create_local_run(
                spec.load(), params, name="x", idempotency_key=key, tags=[]
            )
        finally:
            await dispatcher.close()
        return run.finished and run.id == first_id

    assert asyncio.run(finished_again())  # a finished run is recorded, never run twice
