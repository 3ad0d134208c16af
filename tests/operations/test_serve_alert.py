"""Done-means of issue 8: a local Prefect server, `svomflow serve` and NATS JetStream.

An alert published on NATS is turned by the listener (deployment mode) into a run of the
served ``alert_ingest`` deployment, which the serve process executes; the run completes
with its ALERT product in the products database. The same with the listener down while the
alert is published. Needs NATS with JetStream on 127.0.0.1:4222.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from svomflow.operations.alerts.background import BackgroundListener, publish_alert
from svomflow.operations.alerts.listener import ListenerSettings, Route
from svomflow.operations.local_server import stop_process
from svomflow.products.store import ProductStore

pytestmark = [pytest.mark.nats, pytest.mark.integration]

NATS = "nats://127.0.0.1:4222"

VOEVENT = """<?xml version="1.0"?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" ivorn="ivo://org.svom/fsc#{trig}"
  role="test" version="2.0">
 <Who><Date>2026-11-23T03:14:20</Date></Who>
 <What><Param name="TrigID" value="{trig}"/></What>
 <WhereWhen><ObsDataLocation><ObservationLocation><AstroCoords coord_system_id="UTC-FK5-GEO">
  <Time><TimeInstant><ISOTime>2026-11-23T03:14:15.25</ISOTime></TimeInstant></Time>
  <Position2D unit="deg"><Value2><C1>187.25</C1><C2>-12.5</C2></Value2>
   <Error2Radius>0.15</Error2Radius></Position2D>
 </AstroCoords></ObservationLocation></ObsDataLocation></WhereWhen>
</voe:VOEvent>"""


def _wait_completed(run_id: str, timeout: float = 90.0) -> str:
    from prefect.client.orchestration import get_client

    deadline = time.time() + timeout
    state = "?"
    with get_client(sync_client=True) as client:
        while time.time() < deadline:
            state = client.read_flow_run(run_id).state.type.value
            if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return state
            time.sleep(0.5)
    return state


def test_alert_runs_served_deployment_with_listener_restart(
    use_prefect_server: str, nats_prefix: str, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client

    from .conftest import server_env

    db = f"sqlite:///{tmp_path / 'products.db'}"
    env = server_env(tmp_path / "client_home", use_prefect_server)
    env["SVOMFLOW_HOME"] = str(tmp_path / "home")
    log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "svomflow.cli.main", "serve", "--flow", "alert"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        # the serve process registers the deployment, then polls for runs every second
        deadline = time.time() + 90
        with get_client(sync_client=True) as client:
            while True:
                try:
                    client.read_deployment_by_name("alert_ingest/alert")
                    break
                except Exception:
                    if time.time() > deadline or serve.poll() is not None:
                        pytest.fail((tmp_path / "serve.log").read_text()[-3000:])
                    time.sleep(0.5)
        settings = ListenerSettings(
            servers=[NATS],
            stream=f"S_{nats_prefix}",
            durable=f"d_{nats_prefix}",
            routes=[
                Route(
                    subject=f"{nats_prefix}.svom.alert.eclairs",
                    instrument="eclairs",
                    parameters={"out_dir": str(tmp_path / "products"), "database_url": db},
                )
            ],
            dead_letter_subject=f"{nats_prefix}.dead",
            mode="deployment",
            database_url=db,
        )
        subject = f"{nats_prefix}.svom.alert.eclairs"
        listener = BackgroundListener(settings).start()
        try:
            publish_alert(NATS, subject, VOEVENT.format(trig="sb26112330"))
            (sub,) = listener.wait_for("submitted", 1, timeout=30)
        finally:
            listener.stop()
        # the deployment run was created within a second of the message reaching us
        assert sub["latency_s"] < 1.0
        assert _wait_completed(sub["flow_run_id"]) == "COMPLETED"

        # listener down while the alert is published: delivered when it comes back
        publish_alert(NATS, subject, VOEVENT.format(trig="sb26112331"))
        listener = BackgroundListener(settings).start()
        try:
            (sub2,) = listener.wait_for("submitted", 1, timeout=30)
        finally:
            listener.stop()
        assert _wait_completed(sub2["flow_run_id"]) == "COMPLETED"
    finally:
        stop_process(serve)
        log.close()

    store = ProductStore(tmp_path / "products", db)
    for trig, run in (("sb26112330", sub), ("sb26112331", sub2)):
        (row,) = store.list(obs_id=trig, type_code="ALERT")
        assert row.flow_run_id == run["flow_run_id"]
        assert f"fsc#{trig}" in Path(row.path).read_text()
    with get_client(sync_client=True) as client:
        fr = client.read_flow_run(sub["flow_run_id"])
        assert fr.name == "alert-sb26112330" and "alert" in fr.tags
