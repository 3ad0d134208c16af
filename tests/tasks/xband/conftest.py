"""A simulated ECLAIRs + GRM burst written as L1 files, for the X-band tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def simulate_burst(
    out: Path,
    seed: int,
    *,
    spectrum: dict[str, float] | None = None,
    peak_flux: float = 15.0,
    pulses: tuple[tuple[float, float, float], ...] = ((0.0, 1.0, 3.0),),
    span: tuple[float, float] = (-15.0, 25.0),
    soft_shift_s: float = 0.0,
    soft_below_kev: float = 20.0,
    offaxis_deg: float = 8.0,
) -> dict[str, Any]:
    """Simulate a burst without spectral evolution (ECLAIRs + GRM, no orbit, no bright source).

    ``soft_shift_s`` delays every photon with true energy below ``soft_below_kev`` (in both
    instruments): an injected soft lag. Returns the files and the injected truth.
    """
    from svomflow.simulation.eclairs import simulate_eclairs, write_eclairs_l1
    from svomflow.simulation.grb import GRBModel, NorrisPulse
    from svomflow.simulation.grm import grm_photon_area, simulate_grm, write_grm_l1
    from svomflow.simulation.spectra import Spectrum
    from svomflow.tasks.attitude import Attitude

    rng = np.random.default_rng(seed)
    t0 = 1.0e8
    att = Attitude(150.0, 20.0, 0.0)
    tan = np.tan(np.radians(offaxis_deg))
    ra, dec = att.from_projected(tan * np.cos(0.5), tan * np.sin(0.5))
    sp = spectrum or {"model": "band", "alpha": -0.8, "beta": -2.4, "epeak": 200.0}
    grb = GRBModel(
        tuple(NorrisPulse(t_start=a, tau_rise=r, tau_decay=d) for a, r, d in pulses),
        Spectrum(**sp),  # type: ignore[arg-type]
        peak_flux=peak_flux,
        ra_deg=float(ra),
        dec_deg=float(dec),
        t0=t0,
    )
    t_start, t_stop = t0 + span[0], t0 + span[1]

    def shifted(p: Any) -> Any:
        if soft_shift_s == 0:
            return p
        t = p.time.copy()
        t[p.energy_kev < soft_below_kev] += soft_shift_s
        order = np.argsort(t, kind="stable")
        return replace(p, time=t[order], energy_kev=p.energy_kev[order])

    out.mkdir(parents=True, exist_ok=True)
    pe = shifted(
        grb.sample_photons(
            rng, area_cm2=1024.0, t_start=t_start, t_stop=t_stop, e_min_kev=3.0, e_max_kev=200.0
        )
    )
    ev = simulate_eclairs(
        [pe], attitude=att, t_start=t_start, t_stop=t_stop, rng=rng, run_trigger=False
    )
    ecl = write_eclairs_l1(ev, out / "eclairs_l1_events.fits", trigger_id=f"sim{seed}")
    pg = shifted(
        grb.sample_photons(
            rng,
            area_cm2=grm_photon_area(),
            t_start=t_start,
            t_stop=t_stop,
            e_min_kev=10.0,
            e_max_kev=10000.0,
        )
    )
    sim = simulate_grm([pg], attitude=att, t_start=t_start, t_stop=t_stop, rng=rng)
    grm = write_grm_l1(
        out / "grm_l1_events.fits",
        sim,
        attitude=att,
        trigger_time=t0,
        extra={"TRIGID": f"sim{seed}"},
    )
    truth = grb.truth([(10.0, 1000.0), (4.0, 150.0), (4.0, 120.0), (50.0, 300.0)])
    return {
        "files": [str(ecl), str(grm)],
        "t0": t0,
        "truth": truth,
        "spectrum": sp,
        "ra": ra,
        "dec": dec,
    }


@pytest.fixture
def burst_factory() -> Callable[..., dict[str, Any]]:
    """Return :func:`simulate_burst` (a callable, so tests choose seeds and options)."""
    return simulate_burst


@pytest.fixture(scope="module")
def bright_burst(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One bright simulated burst shared by a module's tests."""
    return simulate_burst(tmp_path_factory.mktemp("xband_burst"), seed=11)
