"""The REST API against its own OpenAPI schema: no generated request makes the server fail.

Schemathesis reads ``/api/openapi.json`` from the app in this process (ASGI, no socket) and
sends requests generated from each operation's parameters and bodies, valid and invalid,
with an admin's API token (every operation reachable) on a database holding a strategy, a
planning and a duty shift, so that ids and names sometimes exist. The check is that no
answer is a 5xx. A short run per operation here; the long one is marked slow.
"""

from __future__ import annotations

import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from sqlmodel import Session

with warnings.catch_warnings():
    # starlette 1.x asks for its httpx2 fork; the test client works the same with httpx
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    import fastapi.testclient  # noqa: F401  (schemathesis' ASGI transport imports it)

import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

PASSWORD = "correct horse battery"


def _seed(app: object) -> str:
    """Record a user of every role, a strategy, a planning and a shift; return an admin token."""
    from svomflow.products import duty
    from svomflow.products import plannings as pl
    from svomflow.web.auth import add_user, create_token

    now = datetime.now(UTC)
    with Session(app.state.engine) as s:  # type: ignore[attr-defined]
        add_user(s, "admin", PASSWORD, ["admin"])
        _, secret = create_token(s, "admin", "schemathesis")
        pl.ensure_schema(app.state.engine)  # type: ignore[attr-defined]
        spec = pl.StrategySpec(exposures=(pl.ExposureStep(filter="r", exposure_s=30.0),))
        pl.create_strategy(
            s, "x", telescope="COLIBRI", instrument="DDRAGO-B", spec=spec, by="admin"
        )
        pl.publish(s, "x", 1, by="admin")
        pl.create_planning(
            s,
            pl.PlanningDraft(
                telescope="COLIBRI",
                instrument="DDRAGO-B",
                start=now,
                end=now + timedelta(hours=2),
                observations=[
                    pl.ObservationDraft(
                        target="GRB",
                        ra_deg=1.0,
                        dec_deg=2.0,
                        start=now,
                        end=now + timedelta(hours=1),
                        strategy="x",
                    )
                ],
            ),
            by="admin",
        )
        duty.add_shift(s, "ECLAIRS", "primary", "Ada", now, now + timedelta(days=1))
    return secret


@pytest.fixture
def api_schema(tmp_path: Path) -> schemathesis.BaseSchema:
    """The app's own schema, loaded in-process, with the admin token on every request."""
    from svomflow.web.app import create_app
    from svomflow.web.settings import WebSettings

    (tmp_path / "products").mkdir()
    app = create_app(
        WebSettings(
            database_url=f"sqlite:///{tmp_path / 'site.db'}",
            products_root=tmp_path / "products",
            secret_key=uuid.uuid4().hex,
        )
    )
    app.state.api_token = _seed(app)
    return schemathesis.openapi.from_asgi("/api/openapi.json", app)


def _run(api_schema: schemathesis.BaseSchema, examples: int) -> int:
    """Send ``examples`` valid and as many invalid requests per operation; return the count.

    Failures of all operations are collected and reported together.
    """
    app = api_schema.app  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {app.state.api_token}"}
    failures: list[str] = []
    sent = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception as exc:  # an operation with nothing to make invalid
                if mode is GenerationMode.NEGATIVE:
                    continue
                raise AssertionError(f"{operation.label}: {exc}") from exc

            @given(case=strategy)
            @settings(
                max_examples=examples,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                derandomize=True,
            )
            def check(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(headers=headers, checks=[not_a_server_error])

            try:
                check()
            except Unsatisfiable:
                # nothing invalid can be made (no parameter, or a free-form string path)
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:
                # schemathesis reports a failing response as an exception group: show them all
                parts = getattr(exc, "exceptions", None) or [exc]
                why = "; ".join(f"{type(e).__name__}: {e}" for e in parts)
                failures.append(f"{operation.label} ({mode.value}): {why}")
    assert not failures, "\n\n".join(failures)
    return sent


def test_api_never_fails_with_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    sent = _run(api_schema, examples=6)
    operations = sum(1 for _ in api_schema.get_all_operations())
    assert operations >= 15  # every API family is in the schema
    assert sent >= 6 * operations, (sent, operations)


def test_integer_ids_out_of_the_databases_range_are_refused_not_failed(
    api_schema: schemathesis.BaseSchema,
) -> None:
    """Every integer path parameter of the schema, at values no database integer holds.

    Random generation reaches these edges only now and then; they are the classic 500
    (SQLite cannot bind an int beyond 64 bits, PostgreSQL's INTEGER stops at 2**31 - 1).
    """
    import json
    import re

    from fastapi.testclient import TestClient

    app = api_schema.app  # type: ignore[attr-defined]
    client = TestClient(app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {app.state.api_token}"}
    spec = client.get("/api/openapi.json").json()
    failures, probed = [], 0
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            ints = [
                p["name"]
                for p in op.get("parameters", [])
                if p["in"] == "path" and p.get("schema", {}).get("type") == "integer"
            ]
            for name in ints:
                for value in (2**31, 2**63, 2**70, -(2**63) - 1):
                    url = re.sub(
                        r"\{(\w+)\}",
                        lambda m, v=value, n=name: str(v) if m.group(1) == n else "1",
                        path,
                    )
                    body = json.dumps({}) if method in ("post", "put") else None
                    res = client.request(method.upper(), url, headers=headers, content=body)
                    probed += 1
                    if res.status_code >= 500:
                        failures.append(f"{method.upper()} {url}: {res.status_code}")
    assert probed >= 8, probed
    assert not failures, failures


def test_times_at_the_ends_of_the_calendar_are_refused_not_failed(
    api_schema: schemathesis.BaseSchema,
) -> None:
    """Every date-time query parameter of the schema at the first and last representable days.

    Window arithmetic on them (``end - period``, a zone offset) overflows Python's datetime:
    the classic 500 that random generation meets only now and then.
    """
    from fastapi.testclient import TestClient

    app = api_schema.app  # type: ignore[attr-defined]
    client = TestClient(app, raise_server_exceptions=False)
    headers = {"Authorization": f"Bearer {app.state.api_token}"}
    spec = client.get("/api/openapi.json").json()
    extremes = (
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59",
        "9999-12-31T23:59:59-05:00",
    )
    failures, probed = [], 0
    for path, methods in spec["paths"].items():
        if "{" in path or "get" not in methods:
            continue
        params = methods["get"].get("parameters", [])

        def kind(p: dict) -> str:
            schema = p.get("schema", {})
            options = schema.get("anyOf", [schema])
            return next((o.get("format") or o.get("type", "") for o in options), "")

        times = [p["name"] for p in params if p["in"] == "query" and kind(p) == "date-time"]
        required = {
            p["name"]: "1" if kind(p) == "integer" else "x"
            for p in params
            if p.get("required") and p["in"] == "query"
        }
        for name in times:
            for value in extremes:
                res = client.get(path, params={**required, name: value}, headers=headers)
                probed += 1
                if res.status_code >= 500:
                    failures.append(f"GET {path}?{name}={value}: {res.status_code}")
    assert probed >= 16, probed
    assert not failures, failures


def test_the_harness_finds_a_server_error() -> None:
    """The same run on an app that fails for some valid input reports that operation."""
    from fastapi import FastAPI

    app = FastAPI(openapi_url="/api/openapi.json")

    @app.get("/api/boom/{n}")
    def boom(n: int) -> dict[str, int]:
        return {"inverse": 1 // (n % 7)}  # ZeroDivisionError for multiples of 7: a 500

    app.state.api_token = "unused"
    with pytest.raises(AssertionError, match="GET /api/boom"):
        _run(schemathesis.openapi.from_asgi("/api/openapi.json", app), examples=50)


@pytest.mark.slow
def test_api_never_fails_with_a_server_error_long(api_schema: schemathesis.BaseSchema) -> None:
    _run(api_schema, examples=300)
