"""Housekeeping streams with injected anomalies as known truth (ECLAIRs, COLIBRI).

Nominal behaviour per parameter comes from ``config/housekeeping/_simulation.yaml``:
orbital thermal cycles (the orbit of :mod:`svomflow.simulation.orbit`), count rates modulated
by the geomagnetic latitude with no samples inside the SAA, leakage current following the
detector temperature, site weather with a diurnal cycle and mean-reverting gusts, noise and
slow drifts. The nominal streams stay well inside the soft limits of
``config/housekeeping/<instrument>.yaml`` (checked: :func:`simulate` refuses a model whose
nominal range comes within 6 noise sigma of a limit), so any alarm that is not explained by an
injected anomaly is a false alarm.

Anomalies (:class:`Anomaly`): *spike* (a few samples beyond a limit), *step* (a level shift
for hours), *excursion* (a slow ramp beyond a limit and back) and *stuck* (a frozen value).
Each records which alarm rules it must raise (``soft``; ``soft`` and ``hard``; ``stuck``);
:func:`score` compares alarms with them (recall, false alarms).

Files: :func:`write_files` cuts a stream into FITS binary tables (``TIME`` + one column per
parameter, OGIP time keywords) or JSON documents, as the instruments' housekeeping arrives.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from io import BytesIO
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from astropy.io import fits
from svomflow.atomic import atomic_write_bytes
from svomflow.simulation.orbit import load_orbit
from svomflow.tasks.monitoring.definitions import (
    InstrumentHousekeeping,
    ParameterSpec,
    load_definitions,
)

__all__ = [
    "Anomaly",
    "HkStream",
    "Score",
    "load_models",
    "score",
    "simulate",
    "write_files",
]

AnomalyKind = Literal["spike", "step", "excursion", "stuck"]
UNIX_MJD = 40587.0  # MJD of 1970-01-01
DAY = 86400.0


@dataclass(frozen=True)
class Anomaly:
    """One injected anomaly: where, when, what, and the alarm rules it must raise.

    ``start``/``end`` are unix seconds of the first and last affected samples; ``expect``
    the rule kinds (``soft``, ``hard``, ``stuck``) that must raise an alarm.
    """

    instrument: str
    parameter: str
    kind: AnomalyKind
    start: float
    end: float
    level: str
    side: str
    target: float
    expect: tuple[str, ...]


@dataclass
class HkStream:
    """A simulated housekeeping stream of one instrument.

    ``values[name]`` has one entry per ``times`` sample; NaN where the instrument did not
    deliver that parameter (count rates inside the SAA).
    """

    instrument: str
    times: np.ndarray
    values: dict[str, np.ndarray]
    anomalies: list[Anomaly] = field(default_factory=list)
    cadence_s: float = 10.0


def load_models() -> dict[str, dict[str, dict[str, Any]]]:
    """Return the simulator models ``{INSTRUMENT: {parameter: model}}``."""
    path = resources.files("svomflow.config") / "housekeeping" / "_simulation.yaml"
    data = yaml.safe_load(path.read_text())
    return {k.upper(): v for k, v in data.items()}


def _ar1(rng: np.random.Generator, n: int, dt: float, tau: float, std: float) -> np.ndarray:
    """Mean-reverting (Ornstein-Uhlenbeck) noise of stationary std ``std``."""
    a = np.exp(-dt / tau)
    eps = rng.normal(0.0, std * np.sqrt(1 - a * a), n)
    out = np.empty(n)
    x = rng.normal(0.0, std)
    # a short recursion; scipy's lfilter would do it too, this keeps the dependency list short
    for i in range(n):
        x = a * x + eps[i]
        out[i] = x
    return out


def _nominal(
    name: str,
    model: dict[str, Any],
    t: np.ndarray,
    t0: float,
    dt: float,
    done: dict[str, np.ndarray],
    rng: np.random.Generator,
    in_saa: np.ndarray,
    lat_frac: np.ndarray,
    orbit_period: float,
) -> np.ndarray:
    kind = model["kind"]
    nominal = float(model.get("nominal", 0.0))
    amp = float(model.get("amplitude", 0.0))
    phase = float(model.get("phase", 0.0))
    rel = t - t0
    if kind == "orbital":
        v = nominal + amp * np.sin(2 * np.pi * rel / orbit_period + phase)
    elif kind == "diurnal":
        v = nominal + amp * np.sin(2 * np.pi * t / DAY + phase)
    elif kind == "ar1":
        v = nominal + amp * np.sin(2 * np.pi * t / DAY + phase)
        v = v + _ar1(rng, t.size, dt, float(model["tau_s"]), float(model["walk"]))
    elif kind == "rate":
        mean = nominal * (1 + amp * lat_frac**2)
        v = rng.poisson(mean * dt) / dt
        v[in_saa] = np.nan
    elif kind == "linear":
        src = done[model["of"]]
        v = float(model["offset"]) + float(model["slope"]) * (src - float(model["reference"]))
    elif kind == "counter":
        steps = rng.poisson(float(model["rate_per_day"]) * dt / DAY, t.size)
        v = nominal + np.cumsum(steps).astype(float)
    elif kind == "constant":
        v = np.full(t.size, nominal)
    else:
        raise ValueError(f"{name}: unknown simulator model kind {kind!r}")
    v = v + float(model.get("drift_per_day", 0.0)) * rel / DAY
    noise = float(model.get("noise", 0.0))
    if noise:
        v = v + rng.normal(0.0, noise, t.size)
    lo, hi = model.get("clip_low"), model.get("clip_high")
    if lo is not None or hi is not None:
        v = np.clip(v, lo, hi)
    return v


def _check_margins(spec: ParameterSpec, v: np.ndarray, noise: float, instrument: str) -> None:
    finite = v[np.isfinite(v)]
    if not finite.size:
        return
    margin = 6 * max(noise, 1e-12)
    lo, hi = spec.soft
    if (lo is not None and finite.min() < lo + margin) or (
        hi is not None and finite.max() > hi - margin
    ):
        raise ValueError(
            f"{instrument} {spec.name}: the nominal stream [{finite.min():g}, {finite.max():g}] "
            f"comes within 6 sigma of the soft limits {spec.soft}: fix the simulator model"
        )


def _targets(spec: ParameterSpec, level: str, side: str) -> float:
    """Return a value beyond the ``level`` limit on ``side``, far from both limits."""
    (slo, shi), (hlo, hhi) = spec.soft, spec.hard
    if side == "high":
        assert shi is not None
        if level == "soft":
            return (shi + hhi) / 2 if hhi is not None else shi + 0.5 * abs(shi) + 1
        assert hhi is not None
        return hhi + 0.5 * (hhi - shi)
    assert slo is not None
    if level == "soft":
        return (slo + hlo) / 2 if hlo is not None else slo - 0.5 * abs(slo) - 1
    assert hlo is not None
    return hlo - 0.5 * (slo - hlo)


def _choices(spec: ParameterSpec) -> list[tuple[AnomalyKind, str, str]]:
    """(kind, level, side) anomalies a parameter can show."""
    out: list[tuple[AnomalyKind, str, str]] = []
    for side, i in (("low", 0), ("high", 1)):
        if spec.soft[i] is None:
            continue
        levels = ["soft"] + (["hard"] if spec.hard[i] is not None else [])
        for level in levels:
            for kind in ("spike", "step", "excursion"):
                out.append((kind, level, side))  # type: ignore[arg-type]
    if spec.stuck_after:
        out.append(("stuck", "soft", "none"))
    return out


def _inject(
    stream: HkStream,
    defs: InstrumentHousekeeping,
    rng: np.random.Generator,
    per_day: float,
    noise: dict[str, float],
) -> None:
    t = stream.times
    dt = stream.cadence_s
    n_days = (t[-1] - t[0]) / DAY
    count = int(rng.poisson(per_day * n_days))
    busy: dict[str, list[tuple[float, float]]] = {}
    attempts = 0
    while len(stream.anomalies) < count and attempts < 50 * (count + 1):
        attempts += 1
        spec = defs.parameters[int(rng.integers(len(defs.parameters)))]
        choices = _choices(spec)
        if not choices:
            continue
        kind, level, side = choices[int(rng.integers(len(choices)))]
        if kind == "spike":
            n = spec.persistence + int(rng.integers(2, 6))
        elif kind == "step":
            n = int(rng.uniform(1, 4) * 3600 / dt)
        elif kind == "excursion":
            n = int(rng.uniform(1.5, 3) * 3600 / dt)
        else:
            n = int((spec.stuck_after or 2) * rng.uniform(1.5, 3))
        n = max(n, spec.persistence + 2)
        # away from the ends: the anomaly and its clearing lie inside the stream
        i0 = int(rng.integers(10, t.size - n - 10 - 3 * spec.persistence))
        sl = slice(i0, i0 + n)
        v = stream.values[spec.name]
        # whole anomalies only: no samples missing (SAA) inside, none near another one
        window = (t[i0] - 6 * 3600, t[i0 + n - 1] + 6 * 3600)
        if not np.all(
            np.isfinite(v[max(0, i0 - 3 * spec.persistence) : i0 + n + 3 * spec.persistence])
        ):
            continue
        if any(a < window[1] and window[0] < b for a, b in busy.get(spec.name, [])):
            continue
        sigma = noise.get(spec.name, 0.0)
        if kind == "stuck":
            v[sl] = v[i0]
            target = float(v[i0])
            expect: tuple[str, ...] = ("stuck",)
        else:
            target = _targets(spec, level, side)
            if kind in ("spike", "step"):
                v[sl] = target + rng.normal(0.0, sigma, n)
            else:
                # ramp up over the first 40 %, hold, ramp back over the last 40 %
                x = np.linspace(0.0, 1.0, n)
                w = np.clip(np.minimum(x, 1 - x) / 0.4, 0.0, 1.0)
                v[sl] = (1 - w) * v[sl] + w * (target + rng.normal(0.0, sigma, n))
            expect = ("soft", "hard") if level == "hard" else ("soft",)
        busy.setdefault(spec.name, []).append((t[i0], t[i0 + n - 1]))
        stream.anomalies.append(
            Anomaly(
                instrument=stream.instrument,
                parameter=spec.name,
                kind=kind,
                start=float(t[i0]),
                end=float(t[i0 + n - 1]),
                level="stuck" if kind == "stuck" else level,
                side=side,
                target=target,
                expect=expect,
            )
        )
    stream.anomalies.sort(key=lambda a: a.start)


def simulate(
    instrument: str,
    start: datetime | float,
    days: float,
    *,
    seed: int = 0,
    anomalies_per_day: float = 2.0,
    definitions: InstrumentHousekeeping | None = None,
) -> HkStream:
    """Simulate ``days`` of one instrument's housekeeping from ``start`` (UTC).

    The sampling interval is the instrument's ``cadence_s``; ``anomalies_per_day`` is the
    mean number of anomalies injected per day (Poisson), never two on the same parameter
    within 6 h of each other.
    """
    instrument = instrument.upper()
    defs = definitions or load_definitions()[instrument]
    models = load_models()[instrument]
    t0 = start.timestamp() if isinstance(start, datetime) else float(start)
    dt = float(defs.cadence_s)
    t = t0 + dt * np.arange(round(days * DAY / dt))
    rng = np.random.default_rng(seed)
    orbit = load_orbit()
    _, lat = orbit.ground_track(t - t0)
    in_saa = orbit.in_saa(t - t0)
    lat_frac = np.abs(lat) / orbit.inclination_deg
    values: dict[str, np.ndarray] = {}
    noise: dict[str, float] = {}
    # parameters a "linear" model follows are computed first
    order = sorted(models, key=lambda k: models[k]["kind"] == "linear")
    for name in order:
        model = models[name]
        values[name] = _nominal(
            name, model, t, t0, dt, values, rng, in_saa, lat_frac, orbit.period_s
        )
        noise[name] = float(model.get("noise", 0.0))
        if model["kind"] == "rate":
            noise[name] = float(np.sqrt(model["nominal"] * dt) / dt)
    for spec in defs.parameters:
        if spec.name not in values:
            raise ValueError(f"{instrument} {spec.name}: no simulator model")
        _check_margins(spec, values[spec.name], noise[spec.name], instrument)
    stream = HkStream(instrument, t, {p.name: values[p.name] for p in defs.parameters}, [], dt)
    _inject(stream, defs, rng, anomalies_per_day, noise)
    return stream


# ---------------------------------------------------------------- files


def _fits_bytes(stream: HkStream, sl: slice) -> bytes:
    t = stream.times[sl]
    mjdref = 60000.0  # 2023-02-25: any reference will do, the reader applies it
    cols = [fits.Column(name="TIME", format="D", unit="s", array=t - (mjdref - UNIX_MJD) * DAY)]
    cols += [fits.Column(name=name, format="D", array=v[sl]) for name, v in stream.values.items()]
    hdu = fits.BinTableHDU.from_columns(cols, name="HK")
    h = hdu.header
    h["INSTRUME"] = stream.instrument
    h["MJDREFI"] = int(mjdref)
    h["MJDREFF"] = 0.0
    h["TIMESYS"] = "UTC"
    h["TIMEUNIT"] = "s"
    h["ORIGIN"] = "svomflow housekeeping simulator"
    primary = fits.PrimaryHDU()
    primary.header["INSTRUME"] = stream.instrument
    buf = BytesIO()
    fits.HDUList([primary, hdu]).writeto(buf)
    return buf.getvalue()


def _json_bytes(stream: HkStream, sl: slice) -> bytes:
    records = []
    for i in range(sl.start, sl.stop):
        rec: dict[str, Any] = {
            "time": datetime.fromtimestamp(float(stream.times[i]), UTC).isoformat(
                timespec="milliseconds"
            )
        }
        for name, v in stream.values.items():
            x = float(v[i])
            if np.isfinite(x):
                rec[name] = x
        records.append(rec)
    return json.dumps({"instrument": stream.instrument, "samples": records}).encode()


def write_files(
    stream: HkStream,
    directory: str | Path,
    *,
    file_seconds: float = 3600.0,
    fmt: Literal["fits", "json"] = "fits",
) -> list[Path]:
    """Write the stream as one file per ``file_seconds`` (atomically); return the paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    per_file = max(1, round(file_seconds / stream.cadence_s))
    paths = []
    for i0 in range(0, stream.times.size, per_file):
        sl = slice(i0, min(i0 + per_file, stream.times.size))
        stamp = datetime.fromtimestamp(float(stream.times[i0]), UTC).strftime("%Y%m%dT%H%M%S")
        path = out / f"{stream.instrument.lower()}_hk_{stamp}.{fmt}"
        data = _fits_bytes(stream, sl) if fmt == "fits" else _json_bytes(stream, sl)
        atomic_write_bytes(path, data)
        paths.append(path)
    return paths


# ---------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Score:
    """Alarms against the injected anomalies.

    Attributes
    ----------
    expected
        (anomaly, rule kind) pairs that must raise an alarm.
    found
        Those that did (an alarm of that parameter and rule raised during the anomaly or
        within the persistence delay after it).
    missed
        The expected pairs with no alarm.
    false_alarms
        Alarms explained by no anomaly: ``(parameter, rule kind, raised at)``.
    """

    expected: int
    found: int
    missed: tuple[tuple[Anomaly, str], ...]
    false_alarms: tuple[tuple[str, str, float], ...]

    @property
    def recall(self) -> float:
        """Fraction of the expected alarms raised (1 when none were expected)."""
        return self.found / self.expected if self.expected else 1.0


def score(
    anomalies: Sequence[Anomaly],
    alarms: Sequence[tuple[str, str, float]],
    *,
    delay_s: float,
) -> Score:
    """Match alarms ``(parameter, rule kind, raised at)`` to anomalies.

    An alarm explains an anomaly when it is on the same parameter and rule and raised between
    the anomaly's start and ``delay_s`` after its end.
    """
    used = [False] * len(alarms)
    found = 0
    missed = []
    expected = 0
    for a in anomalies:
        for kind in a.expect:
            expected += 1
            hit = False
            for j, (param, k, at) in enumerate(alarms):
                if param == a.parameter and k == kind and a.start <= at <= a.end + delay_s:
                    used[j] = True
                    hit = True
            if hit:
                found += 1
            else:
                missed.append((a, kind))
    false = tuple(al for al, u in zip(alarms, used, strict=True) if not u)
    return Score(expected, found, tuple(missed), false)
