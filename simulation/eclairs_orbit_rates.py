"""ECLAIRs count rates along the orbit over days to weeks, with a known SAA region.

The rate seen by the instrument is a quiescent background (with an optional slow drift and
an orbital modulation) times ``1 + excess(lon, lat)``, where the SAA excess is a smooth
function of the signed distance ``d`` (degrees in the longitude-latitude plane, positive
inside) to a truth polygon::

    excess = edge_excess * exp(d / scale_deg)      (capped at max_excess)

so the region where the rate exceeds ``(1 + edge_excess)`` times the quiescent rate is
exactly the polygon. The default polygon is the orbit's own (``config/scenarios/_orbit.yaml``,
an assumption drawn around the published AP8 contour); :func:`variant_polygon` gives the
"built to differ" cases (shifted, reshaped). Counts per sample are Poisson.

Only latitudes up to the orbit inclination are ever sampled: the truth that can be recovered
is the polygon within that band (:func:`truth_contains`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from svomflow.products.eic_saa_files import OrbitRates, SaaContour, point_in_polygon
from svomflow.simulation.orbit import Orbit, load_orbit

__all__ = [
    "SaaRateModel",
    "run_orbit_rates_sim",
    "signed_distance_deg",
    "simulate_orbit_rates",
    "truth_contains",
    "truth_contour",
    "variant_polygon",
]


@dataclass(frozen=True)
class SaaRateModel:
    """The SAA's rate excess: truth polygon, excess on its edge, e-folding scale, cap."""

    polygon_lon_lat_deg: tuple[tuple[float, float], ...]
    edge_excess: float = 1.0
    scale_deg: float = 3.0
    max_excess: float = 300.0

    def excess(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return rate / quiescent - 1 at geographic positions."""
        d = signed_distance_deg(lon, lat, np.asarray(self.polygon_lon_lat_deg, float))
        cap = np.log(self.max_excess / self.edge_excess)
        return self.edge_excess * np.exp(np.minimum(d / self.scale_deg, cap))


def signed_distance_deg(
    lon: NDArray[np.float64], lat: NDArray[np.float64], poly: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Return the distance (deg, lon-lat plane) to a polygon's edge: positive inside."""
    x = np.asarray(lon, float)
    y = np.asarray(lat, float)
    best = np.full(np.shape(x), np.inf)
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ab = b - a
        t = np.clip(((x - a[0]) * ab[0] + (y - a[1]) * ab[1]) / float(ab @ ab), 0.0, 1.0)
        best = np.minimum(best, np.hypot(x - (a[0] + t * ab[0]), y - (a[1] + t * ab[1])))
    return np.where(point_in_polygon(x, y, poly), best, -best)


def variant_polygon(
    kind: Literal["nominal", "shifted", "reshaped"], orbit: Orbit | None = None
) -> tuple[tuple[float, float], ...]:
    """Return the truth polygon of a case: the orbit's, shifted or reshaped.

    ``shifted`` moves the orbit's polygon by -12 deg in longitude and +4 deg in latitude;
    ``reshaped`` is a narrower, tilted region reaching further west.
    """
    base = (orbit or load_orbit()).saa_polygon_lon_lat_deg
    if kind == "nominal":
        return tuple(base)
    if kind == "shifted":
        return tuple((lon - 12.0, lat + 4.0) for lon, lat in base)
    if kind == "reshaped":
        return (
            (-100.0, -20.0), (-85.0, -8.0), (-55.0, -12.0), (-35.0, -4.0), (-5.0, -10.0),
            (15.0, -22.0), (10.0, -40.0), (-30.0, -45.0), (-70.0, -42.0), (-95.0, -34.0),
        )  # fmt: skip
    raise ValueError(f"unknown SAA case {kind!r}; known: nominal, shifted, reshaped")


def truth_contains(
    polygon: Sequence[tuple[float, float]], lon: NDArray[np.float64], lat: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Return whether points are inside the truth polygon."""
    return point_in_polygon(
        np.asarray(lon, float), np.asarray(lat, float), np.asarray(polygon, float)
    )


def simulate_orbit_rates(
    *,
    days: float,
    seed: int,
    t_start: float = 0.0,
    step_s: float = 10.0,
    orbit: Orbit | None = None,
    polygon: Sequence[tuple[float, float]] | None = None,
    edge_excess: float = 1.0,
    scale_deg: float = 3.0,
    quiescent_rate: float = 2700.0,
    drift_per_day: float = 0.0,
    modulation: float = 0.1,
) -> OrbitRates:
    """Simulate count rates along the orbit (one sample every ``step_s``).

    Parameters
    ----------
    days
        Length of the simulated period.
    seed
        Random seed (same seed, same rates).
    t_start
        Mission time of the first sample (s).
    step_s
        Sample length (s); the rate is the Poisson count over it divided by it.
    orbit
        Orbit (default ``config/scenarios/_orbit.yaml``).
    polygon
        Truth SAA polygon (default the orbit's).
    edge_excess, scale_deg
        The SAA model (:class:`SaaRateModel`): relative excess on the polygon's edge and its
        e-folding distance.
    quiescent_rate
        Quiescent rate at ``t_start`` (counts/s; ~2700/s for the ECLAIRs plane: CXB plus
        instrumental background of ``config/instruments/eclairs.yaml``).
    drift_per_day
        Relative change of the quiescent rate per day (a drifting background).
    modulation
        Relative amplitude of the orbital background modulation (Earth in the field).
    """
    orbit = orbit or load_orbit()
    model = SaaRateModel(
        tuple(polygon or orbit.saa_polygon_lon_lat_deg),
        edge_excess=edge_excess,
        scale_deg=scale_deg,
    )
    rng = np.random.default_rng(seed)
    n = max(round(days * 86400.0 / step_s), 1)
    t = np.asarray(t_start + step_s * (np.arange(n) + 0.5), dtype=np.float64)
    lon, lat = orbit.ground_track(t)
    quiet = quiescent_rate * (1.0 + drift_per_day * (t - t_start) / 86400.0)
    quiet = quiet * (1.0 + modulation * np.cos(2.0 * np.pi * t / orbit.period_s))
    mu = quiet * (1.0 + model.excess(lon, lat)) * step_s
    counts = rng.poisson(mu)
    return OrbitRates(
        t, lon, lat, np.asarray(counts / step_s, dtype=np.float64), np.full(n, float(step_s))
    )


def _clip_lat(ring: NDArray[np.float64], lat: float, side: float) -> NDArray[np.float64]:
    """Clip a polygon to ``side * (latitude - lat) >= 0`` (Sutherland-Hodgman, one edge)."""
    out: list[NDArray[np.float64]] = []
    n = len(ring)
    for i in range(n):
        a, b = ring[i], ring[(i + 1) % n]
        ina, inb = side * (a[1] - lat) >= 0, side * (b[1] - lat) >= 0
        if ina:
            out.append(a)
        if ina != inb:
            t = (lat - a[1]) / (b[1] - a[1])
            out.append(a + t * (b - a))
    pts = np.asarray(out, np.float64).reshape(-1, 2)
    # a vertex on the line is added twice (as a kept point and as a crossing): once is enough
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1) if len(pts) > 1 else np.ones(1, bool)
    return np.asarray(pts[keep], np.float64)


def truth_contour(
    polygon: Sequence[tuple[float, float]], rates: OrbitRates, orbit: Orbit, edge_excess: float
) -> SaaContour:
    """Return the simulator's true SAA region as a contour file's content (no margin).

    The polygon is clipped to the latitudes the orbit reaches: the part beyond is never
    measured, and a measured contour is compared with what can be measured.
    """
    inc = float(orbit.inclination_deg)
    ring = _clip_lat(_clip_lat(np.asarray(polygon, np.float64), -inc, 1.0), inc, -1.0)
    return SaaContour(
        polygons=(ring,),
        level=float(edge_excess),
        margin_deg=0.0,
        lat_range_deg=(-inc, inc),
        t_start=float(rates.time[0]) if len(rates) else 0.0,
        t_stop=float(rates.time[-1]) if len(rates) else 0.0,
        n_samples=0,
    )


def run_orbit_rates_sim(ctx: Any, rng: np.random.Generator) -> dict[str, Any]:
    """Scenario runner (``svomflow simulate eic_saa``): rates along the orbit, the true contour.

    Options (``instrument_options.eclairs_orbit_rates``): ``days`` (7), ``case``
    (``nominal``/``shifted``/``reshaped``), ``drift_per_day``, ``step_s`` (10), ``weeks``
    (files of ``days`` each, 1). Mission time of the first sample: the scenario's
    ``epoch_s``. Writes ``eic_saa/rates_wN.fits`` and the true region
    ``eic_saa/eclairs_saacont.fits`` (no margin), registered in the home CALDB (code
    ``SAACONT``) unless the run says not to: the first contour measured is compared with it,
    and the ECLAIRs event reader takes SAA time out of the GTIs with it.
    """
    from svomflow.config import load_instrument
    from svomflow.products.eic_saa_files import write_orbit_rates, write_saa_contour
    from svomflow.simulation.calibration import register_calibration

    opts = dict(ctx.options)
    days = float(opts.get("days", 7.0))
    case = str(opts.get("case", "nominal"))
    weeks = int(opts.get("weeks", 1))
    orbit = load_orbit()
    polygon = variant_polygon(case, orbit)  # type: ignore[arg-type]
    out = Path(ctx.out_dir) / "eic_saa"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    rates = None
    for w in range(weeks):
        rates = simulate_orbit_rates(
            days=days,
            seed=int(rng.integers(0, 2**31 - 1)),
            t_start=float(ctx.t0) + w * days * 86400.0,
            step_s=float(opts.get("step_s", 10.0)),
            orbit=orbit,
            polygon=polygon,
            drift_per_day=float(opts.get("drift_per_day", 0.0)),
        )
        files.append(write_orbit_rates(out / f"rates_w{w + 1}.fits", rates).name)
    assert rates is not None
    inst = load_instrument("eclairs")
    truth_file = write_saa_contour(
        out / "eclairs_saacont.fits", truth_contour(polygon, rates, orbit, 1.0)
    )
    registered = (
        register_calibration({"SAACONT": truth_file}, inst) if ctx.register_calibration else {}
    )
    return {
        "folder": "eic_saa",
        "rates_files": files,
        "case": case,
        "truth_polygon": [list(v) for v in polygon],
        "calibration": {"SAACONT": truth_file.name},
        "registered": registered,
    }


def _main(argv: Sequence[str] | None = None) -> None:
    """Write an orbit-rates file: ``python -m svomflow.simulation.eclairs_orbit_rates OUT``."""
    import argparse

    from svomflow.products.eic_saa_files import write_orbit_rates

    p = argparse.ArgumentParser(description=_main.__doc__)
    p.add_argument("out", help="output FITS file")
    p.add_argument("--days", type=float, default=7.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--t-start", type=float, default=0.0, help="mission time of the start (s)")
    p.add_argument("--case", choices=("nominal", "shifted", "reshaped"), default="nominal")
    p.add_argument("--drift-per-day", type=float, default=0.0)
    args = p.parse_args(argv)
    rates = simulate_orbit_rates(
        days=args.days,
        seed=args.seed,
        t_start=args.t_start,
        polygon=variant_polygon(args.case),
        drift_per_day=args.drift_per_day,
    )
    write_orbit_rates(args.out, rates)
    print(f"{args.out}: {len(rates)} samples, case {args.case}")


if __name__ == "__main__":
    _main()
