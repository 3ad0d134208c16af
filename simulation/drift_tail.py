"""Bursts with a faint extended tail on a drifting background, as events of one band.

The difficult case of real scintillator data (issue 13): a bright pulse followed by a second,
much fainter and longer pulse (the "tail", a few per cent of the peak, tens of seconds), on a
background whose rate drifts by a few per cent over a few hundred seconds (orbital motion).
An automatic source interval tends to swallow the tail with its margins, a constant
background under the drift biases the accumulated counts, and a long accumulation window
lets the background error build up: the true T90 of the summed pulses is known exactly here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from svomflow.simulation.grb import NorrisPulse

if TYPE_CHECKING:
    from svomflow.tasks.timing.background import BackgroundConfig
    from svomflow.tasks.timing.duration import DurationConfig

__all__ = [
    "DriftTailBurst",
    "DriftTailScenario",
    "DurationTrial",
    "bias_and_coverage",
    "run_duration_trials",
    "simulate_drift_tail",
]


@dataclass(frozen=True)
class DriftTailScenario:
    """Parameters of one burst with a tail on a drifting background.

    Attributes
    ----------
    peak_rate
        Peak source rate of the main pulse (counts/s).
    tau_rise, tau_decay
        Norris time constants of the main pulse (s).
    tail_fraction
        Peak of the tail pulse as a fraction of the main peak (dimensionless).
    tail_start, tail_rise, tail_decay
        Start (s after the main pulse's start) and Norris constants of the tail (s).
    background_rate
        Background rate at ``t = 0`` (counts/s).
    drift
        ``"none"``, ``"linear"`` or ``"quadratic"`` background shape.
    drift_fraction
        Relative change of the background over ``drift_span_s`` (dimensionless).
    drift_span_s
        Time over which the background changes by ``drift_fraction`` (s).
    span
        Data start and stop (s).
    """

    peak_rate: float = 1000.0
    tau_rise: float = 1.0
    tau_decay: float = 4.0
    tail_fraction: float = 0.05
    tail_start: float = 8.0
    tail_rise: float = 6.0
    tail_decay: float = 12.0
    background_rate: float = 400.0
    drift: Literal["none", "linear", "quadratic"] = "linear"
    drift_fraction: float = 0.05
    drift_span_s: float = 300.0
    span: tuple[float, float] = (-30.0, 300.0)

    def pulses(self) -> tuple[NorrisPulse, NorrisPulse]:
        """Return the main and tail pulses (amplitudes in counts/s)."""
        main = NorrisPulse(0.0, self.tau_rise, self.tau_decay, self.peak_rate)
        tail = NorrisPulse(
            self.tail_start, self.tail_rise, self.tail_decay, self.tail_fraction * self.peak_rate
        )
        return main, tail

    def background(self, t: NDArray[np.float64]) -> NDArray[np.float64]:
        """Return the background rate (counts/s) at times ``t``."""
        x = (np.asarray(t, float) - self.span[0]) / self.drift_span_s
        if self.drift == "linear":
            return self.background_rate * (1.0 + self.drift_fraction * x)
        if self.drift == "quadratic":
            # rises then falls back: a curvature a linear model cannot follow
            return self.background_rate * (1.0 + 4.0 * self.drift_fraction * x * (1.0 - x))
        return np.full(np.shape(x), self.background_rate, dtype=float)


@dataclass(frozen=True)
class DriftTailBurst:
    """Simulated events and the true durations of the source's expected counts (s)."""

    times: NDArray[np.float64]
    gti: NDArray[np.float64]
    t90: float
    t90_start: float
    t50: float
    t50_start: float


def _sample(
    rng: np.random.Generator, grid: NDArray[np.float64], rate: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Draw Poisson event times from a rate tabulated on a fine grid (inverse CDF)."""
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(grid))])
    n = rng.poisson(cdf[-1])
    return np.interp(rng.uniform(0.0, cdf[-1], n), cdf, grid)


def simulate_drift_tail(
    scenario: DriftTailScenario, rng: np.random.Generator, *, grid_step_s: float = 1e-3
) -> DriftTailBurst:
    """Simulate one burst of ``scenario``: sorted event times, GTI and true T90/T50.

    The truth is read off the source's expected cumulative counts (5/95 % and 25/75 %),
    which is what an unbiased T90 estimator should return on average.
    """
    t0, t1 = scenario.span
    grid = np.arange(t0, t1 + grid_step_s, grid_step_s)
    main, tail = scenario.pulses()
    src = main.rate(grid) + tail.rate(grid)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (src[1:] + src[:-1]) * np.diff(grid))])
    q = np.interp(np.array([0.05, 0.95, 0.25, 0.75]) * cdf[-1], cdf, grid)
    times = np.sort(
        np.concatenate([_sample(rng, grid, src), _sample(rng, grid, scenario.background(grid))])
    )
    return DriftTailBurst(
        times=times,
        gti=np.array([[t0, t1]]),
        t90=float(q[1] - q[0]),
        t90_start=float(q[0]),
        t50=float(q[3] - q[2]),
        t50_start=float(q[2]),
    )


@dataclass(frozen=True)
class DurationTrial:
    """One simulated burst analysed: measured and true T90/T50 and their errors (s).

    ``seed`` is the burst's generator seed; ``source_end`` the end of the detected source
    interval (s) and ``order`` the background polynomial's order, kept to explain outliers.
    """

    t90: float
    t90_err: float
    t90_true: float
    t50: float
    t50_err: float
    t50_true: float
    seed: int = -1
    source_end: float = float("nan")
    order: int = -1


def run_duration_trials(
    scenario: DriftTailScenario,
    n: int,
    seed: int = 0,
    *,
    n_sims: int = 100,
    config: DurationConfig | None = None,
    background: BackgroundConfig | None = None,
) -> list[DurationTrial]:
    """Simulate ``n`` bursts of ``scenario`` and measure T90/T50 as the VHF flow does on events.

    The analysis is :func:`svomflow.tasks.timing.adaptive.durations_from_events` with its
    configuration (bin width from the burst, automatic background, Koshut plateaus), or
    ``config`` and ``background`` when given; ``n_sims`` and the seed are set per trial:
    trial ``i`` uses the generator seeded ``seed + i``.
    """
    from svomflow.tasks.timing.adaptive import durations_from_events
    from svomflow.tasks.timing.background import BackgroundConfig
    from svomflow.tasks.timing.duration import DurationConfig

    bcfg = background or BackgroundConfig()
    base = config or DurationConfig()

    out = []
    for i in range(n):
        b = simulate_drift_tail(scenario, np.random.default_rng(seed + i))
        cfg = base.model_copy(update={"n_sims": n_sims, "seed": seed + i})
        a = durations_from_events(b.times, b.gti, cfg, background=bcfg)
        d = a.durations
        out.append(
            DurationTrial(
                d.t90,
                d.t90_err,
                b.t90,
                d.t50,
                d.t50_err,
                b.t50,
                seed + i,
                a.background.source[1],
                a.background.order,
            )
        )
    return out


def bias_and_coverage(trials: list[DurationTrial], which: str = "t90") -> dict[str, float]:
    """Mean relative bias (with its standard error) and 1-sigma coverage of T90 or T50.

    ``coverage_lo``/``coverage_hi`` are the coverage's 95 % Clopper-Pearson interval.
    """
    m = np.array([getattr(t, which) for t in trials])
    e = np.array([getattr(t, f"{which}_err") for t in trials])
    truth = np.array([getattr(t, f"{which}_true") for t in trials])
    rel = m / truth - 1.0
    cover = np.abs(m - truth) < e
    n = max(len(trials), 1)
    k = int(cover.sum())
    return {
        "coverage_lo": float(stats.beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0,
        "coverage_hi": float(stats.beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0,
        "n": float(len(trials)),
        "bias": float(rel.mean()),
        "bias_err": float(rel.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "coverage": float(cover.mean()),
        "coverage_err": float(np.sqrt(0.68 * 0.32 / n)),
        "rel_err": float(np.mean(e / truth)),
    }
