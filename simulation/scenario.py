"""Scenarios: data files that say which sources and instruments to simulate, and the runner.

A scenario (``config/scenarios/<name>.yaml``, or any YAML path) is validated by
:class:`Scenario` (unknown keys are errors), may be changed with ``--set dotted=value``
overrides, and is run by :func:`run_scenario`, which draws the GRB models, calls each
instrument's simulator through :data:`SIMULATORS` (``"module:function"`` strings resolved
lazily, so a missing simulator only makes the scenarios that need it unavailable) and writes
``truth.json`` with every injected value.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from svomflow.config.loader import deep_merge, format_validation_error, parse_set_overrides
from svomflow.errors import ConfigError, SvomflowError
from svomflow.instruments.attitude import Attitude
from svomflow.instruments.spectra import Spectrum
from svomflow.simulation.grb import GRBModel, NorrisPulse, SpectralEvolution, draw_grb
from svomflow.simulation.orbit import Orbit, load_orbit, orbit_facing

__all__ = [
    "SIMULATORS",
    "Scenario",
    "ScenarioContext",
    "ScenarioUnavailableError",
    "available_scenarios",
    "load_scenario",
    "run_scenario",
]

SIMULATORS: dict[str, str] = {
    "eclairs": "svomflow.simulation.scenario_runners:run_eclairs",
    "grm": "svomflow.simulation.scenario_runners:run_grm",
    "mxt": "svomflow.simulation.scenario_runners:run_mxt",
    "colibri": "svomflow.simulation.scenario_runners:run_colibri",
    "eclairs_plane": "svomflow.simulation.eclairs_plane:run_eclairs_plane",
    "alert_loop": "svomflow.simulation.alert_loop:run_alert_loop_sim",
    "eclairs_pixel_health": "svomflow.simulation.eclairs_pixel_health:run_pixel_health_sim",
    "eclairs_orbit_rates": "svomflow.simulation.eclairs_orbit_rates:run_orbit_rates_sim",
    "onboard_trigger": "svomflow.simulation.onboard_trigger:run_onboard_trigger_sim",
}


class ScenarioUnavailableError(SvomflowError):
    """A scenario needs a simulator that cannot be imported."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimeSpan(_Model):
    """Observation span relative to the burst reference time T0."""

    start_s: float = Field(-30.0, description="Start relative to T0 (s)")
    stop_s: float = Field(90.0, description="Stop relative to T0 (s)")


class PointingSpec(_Model):
    """Spacecraft attitude (X = ECLAIRs boresight)."""

    ra_deg: float = 150.0
    dec_deg: float = 20.0
    roll_deg: float = 0.0


class OrbitSpec(_Model):
    """Orbit options: enable orbit effects, phase so the Earth is behind at T0, overrides."""

    enabled: bool = True
    face_pointing: bool = Field(True, description="Phase the orbit so the Earth is behind at T0")
    overrides: dict[str, float] = Field(default_factory=dict)


class PositionSpec(_Model):
    """Sky position: absolute (ra/dec) or relative to the boresight (off-axis, azimuth)."""

    ra_deg: float | None = None
    dec_deg: float | None = None
    offaxis_deg: float | None = None
    azimuth_deg: float = Field(0.0, description="From +Y towards +Z (deg)")


class SpectrumSpec(_Model):
    """Spectral shape (GBM conventions)."""

    model: Literal["band", "cpl", "powerlaw"] = "band"
    alpha: float = -1.0
    beta: float = -2.3
    index: float = -1.0
    epeak: float = 250.0
    pivot: float = 100.0


class EvolutionSpec(_Model):
    """Hard-to-soft evolution (see :class:`SpectralEvolution`)."""

    mode: Literal["none", "decay", "tracking"] = "none"
    decay_time_s: float = 10.0
    decay_index: float = 1.0
    tracking_index: float = 0.5
    epeak_min_fraction: float = 0.05


class PulseSpec(_Model):
    """One Norris pulse (relative amplitude)."""

    t_start: float
    tau_rise: float
    tau_decay: float
    amplitude: float = 1.0


class GRBSpec(_Model):
    """A gamma-ray burst: explicit pulses, or a family draw with an optional T90 target."""

    name: str = "grb"
    family: Literal["short", "long"] | None = "long"
    t90_s: float | None = None
    pulses: list[PulseSpec] | None = None
    position: PositionSpec = Field(default_factory=lambda: PositionSpec(offaxis_deg=5.0))
    peak_flux: float = Field(10.0, gt=0, description="Peak photon flux (ph/cm2/s)")
    peak_flux_band_kev: tuple[float, float] = (10.0, 1000.0)
    peak_flux_timescale_s: float = 1.0
    spectrum: SpectrumSpec | None = None
    evolution: EvolutionSpec = Field(default_factory=EvolutionSpec)


class Scenario(_Model):
    """A simulation scenario."""

    name: str
    description: str = ""
    instruments: list[str]
    epoch_s: float = Field(1.0e8, description="Mission time of T0 (s)")
    time: TimeSpan = Field(default_factory=TimeSpan)
    attitude: PointingSpec = Field(default_factory=PointingSpec)
    orbit: OrbitSpec = Field(default_factory=OrbitSpec)
    bright_sources: bool = True
    grbs: list[GRBSpec] = Field(default_factory=list)
    truth_bands_kev: list[tuple[float, float]] = Field(
        default_factory=lambda: [(10.0, 1000.0), (15.0, 150.0), (50.0, 300.0), (4.0, 120.0)]
    )
    instrument_options: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _scenario_dir() -> Any:
    return resources.files("svomflow.config") / "scenarios"


def available_scenarios() -> list[str]:
    """Return the names of the packaged scenarios."""
    return sorted(
        p.name[:-5]
        for p in _scenario_dir().iterdir()
        if p.name.endswith(".yaml") and not p.name.startswith("_")
    )


def load_scenario(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Scenario:
    """Load a packaged scenario by name (or a YAML file) with ``--set`` overrides applied."""
    p = Path(name_or_path)
    if p.suffix in {".yaml", ".yml"}:
        if not p.is_file():
            raise ConfigError(f"scenario file {p} does not exist")
        text = p.read_text()
    else:
        res = _scenario_dir() / f"{name_or_path}.yaml"
        if str(name_or_path).startswith("_") or not res.is_file():
            raise ConfigError(
                f"unknown scenario {str(name_or_path)!r}; known: {', '.join(available_scenarios())}"
            )
        text = res.read_text()
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"scenario {name_or_path} must hold a mapping")
    data = deep_merge(data, _list_aware_overrides(parse_set_overrides(overrides), data))
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source=f"scenario {name_or_path}")) from None


def _list_aware_overrides(over: dict[str, Any], data: Any) -> dict[str, Any]:
    """Let ``--set grbs.0.peak_flux=5`` address list items by index."""
    out: dict[str, Any] = {}
    for key, value in over.items():
        target = data.get(key) if isinstance(data, dict) else None
        if isinstance(target, list) and isinstance(value, dict):
            items = [dict(x) if isinstance(x, dict) else x for x in target]
            for idx, sub in value.items():
                if not str(idx).isdigit() or int(idx) >= len(items):
                    raise ConfigError(f"--set {key}.{idx}: no such item in {key}")
                items[int(idx)] = (
                    deep_merge(items[int(idx)], _list_aware_overrides(sub, items[int(idx)]))
                    if isinstance(sub, dict)
                    else sub
                )
            out[key] = items
        elif isinstance(value, dict) and isinstance(target, dict):
            out[key] = _list_aware_overrides(value, target)
        else:
            out[key] = value
    return out


@dataclass
class ScenarioContext:
    """Everything an instrument runner needs: time span, attitude, orbit, burst models."""

    scenario: Scenario
    seed: int
    out_dir: Path
    t0: float
    t_start: float
    t_stop: float
    attitude: Attitude
    orbit: Orbit | None
    grbs: list[GRBModel]
    options: dict[str, Any] = field(default_factory=dict)
    register_calibration: bool = True


def _build_grb(spec: GRBSpec, ctx_att: Attitude, t0: float, rng: np.random.Generator) -> GRBModel:
    pos = spec.position
    if pos.ra_deg is not None and pos.dec_deg is not None:
        ra, dec = pos.ra_deg, pos.dec_deg
    elif pos.offaxis_deg is not None:
        tan = np.tan(np.radians(pos.offaxis_deg))
        az = np.radians(pos.azimuth_deg)
        ra_a, dec_a = ctx_att.from_projected(tan * np.cos(az), tan * np.sin(az))
        ra, dec = float(ra_a), float(dec_a)
    else:
        raise ConfigError(f"GRB {spec.name}: give position.ra_deg/dec_deg or position.offaxis_deg")
    spectrum = None
    if spec.spectrum is not None:
        s = spec.spectrum
        spectrum = Spectrum(
            model=s.model, alpha=s.alpha, beta=s.beta, index=s.index, epeak=s.epeak, pivot=s.pivot
        )
    ev = SpectralEvolution(**spec.evolution.model_dump())
    common = {
        "ra_deg": float(ra),
        "dec_deg": float(dec),
        "peak_flux": spec.peak_flux,
        "t0": t0,
        "peak_flux_band_kev": tuple(spec.peak_flux_band_kev),
        "peak_flux_timescale_s": spec.peak_flux_timescale_s,
        "evolution": ev,
        "name": spec.name,
    }
    if spec.pulses:
        if spectrum is None:
            raise ConfigError(f"GRB {spec.name}: explicit pulses need an explicit spectrum")
        pulses = tuple(NorrisPulse(**p.model_dump()) for p in spec.pulses)
        return GRBModel(pulses, spectrum, **common)  # type: ignore[arg-type]
    if spec.family is None:
        raise ConfigError(f"GRB {spec.name}: give pulses or a family")
    return draw_grb(rng, spec.family, t90_s=spec.t90_s, spectrum=spectrum, **common)  # type: ignore[arg-type]


def resolve_simulator(name: str) -> Callable[..., dict[str, Any]]:
    """Return the runner of an instrument, or raise ScenarioUnavailableError with the reason."""
    if name not in SIMULATORS:
        raise ConfigError(f"unknown instrument {name!r}; known: {', '.join(sorted(SIMULATORS))}")
    module, _, func = SIMULATORS[name].partition(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except (ImportError, AttributeError) as exc:
        raise ScenarioUnavailableError(
            f"the {name} simulator is not available ({SIMULATORS[name]}: {exc})"
        ) from None
    return fn  # type: ignore[no-any-return]


def run_scenario(
    scenario: Scenario,
    out_dir: str | Path,
    seed: int,
    *,
    progress: Callable[[str], None] | None = None,
    register_calibration: bool = True,
) -> dict[str, Any]:
    """Simulate a scenario into ``out_dir`` and write ``truth.json``; return the truth.

    The true calibration files of each instrument are written next to its L1 files and, with
    ``register_calibration`` (the default), registered in the CALDB of the run's home; the
    Monte Carlo bench turns that off and analyses each trial with its own files.

    Each instrument gets its own random stream spawned from ``seed`` (so adding an instrument
    does not change the others' files), and the GRB models get another.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runners = {name: resolve_simulator(name) for name in scenario.instruments}
    root = np.random.SeedSequence(seed)
    streams = root.spawn(1 + len(SIMULATORS))
    rng_src = np.random.default_rng(streams[0])
    t0 = scenario.epoch_s
    att = Attitude(scenario.attitude.ra_deg, scenario.attitude.dec_deg, scenario.attitude.roll_deg)
    orbit = None
    if scenario.orbit.enabled:
        try:
            orbit = load_orbit(**scenario.orbit.overrides)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"scenario orbit.overrides: {exc}") from None
        if scenario.orbit.face_pointing:
            orbit = orbit_facing(orbit, t0, att.ra_deg, att.dec_deg)
    grbs = [_build_grb(g, att, t0, rng_src) for g in scenario.grbs]
    ctx = ScenarioContext(
        scenario=scenario,
        seed=seed,
        out_dir=out,
        t0=t0,
        t_start=t0 + scenario.time.start_s,
        t_stop=t0 + scenario.time.stop_s,
        attitude=att,
        orbit=orbit,
        grbs=grbs,
        register_calibration=register_calibration,
    )
    bands = [tuple(b) for b in scenario.truth_bands_kev]
    truth: dict[str, Any] = {
        "scenario": scenario.name,
        "description": scenario.description,
        "seed": seed,
        "config": scenario.model_dump(mode="json"),
        "t0": t0,
        "t_start": ctx.t_start,
        "t_stop": ctx.t_stop,
        "attitude": {"ra_deg": att.ra_deg, "dec_deg": att.dec_deg, "roll_deg": att.roll_deg},
        "orbit": None
        if orbit is None
        else {
            "altitude_km": orbit.altitude_km,
            "inclination_deg": orbit.inclination_deg,
            "period_s": orbit.period_s,
            "argument_of_latitude_deg": orbit.argument_of_latitude_deg,
        },
        "sources": [],
        "instruments": {},
    }
    for g in grbs:
        if progress:
            progress(f"truth values of {g.name}")
        t = g.truth(bands)
        t["offaxis_deg"] = float(att.off_axis_deg(g.ra_deg, g.dec_deg))
        truth["sources"].append(t)
    for name, fn in runners.items():
        if progress:
            progress(f"simulating {name}")
        rng = np.random.default_rng(streams[1 + list(SIMULATORS).index(name)])
        ctx.options = dict(scenario.instrument_options.get(name, {}))
        result = fn(ctx, rng)
        truth["instruments"][name] = result
    path = out / "truth.json"
    path.write_text(json.dumps(_jsonable(truth), indent=2, sort_keys=True))
    truth["truth_file"] = str(path)
    return truth


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
