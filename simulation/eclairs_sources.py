"""Add steady point sources to a simulated ECLAIRs L1 file (a bright X-ray source in the field).

The bench's burst simulators write one ECLAIRs file with a burst and the background; a test
or a Monte Carlo that needs a known bright source in the field adds it afterwards with
:func:`add_steady_sources`, so the burst's own draws stay exactly those of the seed. The
source's events go through the same mask, detector and pixel model
(:func:`~svomflow.simulation.eclairs.simulate_eclairs`, no background) and are merged with
the file's events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from svomflow.instruments.spectra import sample_energies
from svomflow.products.eclairs_l1 import read_eclairs_l1, write_eclairs_l1
from svomflow.simulation.eclairs import simulate_eclairs
from svomflow.simulation.orbit import load_bright_sources
from svomflow.simulation.photons import PhotonList

__all__ = ["add_steady_sources"]


def add_steady_sources(
    path: str | Path,
    sources: Sequence[tuple[str, float, float, float]],
    rng: np.random.Generator,
    *,
    area_cm2: float = 1024.0,
    e_min_kev: float = 3.0,
    e_max_kev: float = 200.0,
) -> dict[str, dict[str, float]]:
    """Add constant sources to the ECLAIRs L1 file ``path`` (rewritten in place).

    Parameters
    ----------
    path
        An ECLAIRs L1 event file (:func:`~svomflow.simulation.eclairs.write_eclairs_l1`).
    sources
        ``(name, ra_deg, dec_deg, flux_scale)``: the spectrum and flux of the source ``name``
        of the simulator's catalog (``config/scenarios/_bright_sources.yaml``) times
        ``flux_scale``, placed at ``(ra_deg, dec_deg)``; its events are labelled
        ``steady:<name>``.
    rng
        Random generator of the added photons.
    area_cm2, e_min_kev, e_max_kev
        Collecting area and energy range the photons are drawn for (those of the bench).

    Returns
    -------
    dict
        Per label: position, photon flux (ph/cm2/s in the drawn range) and events recorded.
    """
    l1 = read_eclairs_l1(path)
    catalog = {b.name: b for b in load_bright_sources()}
    photons, truth = [], {}
    for name, ra, dec, scale in sources:
        if name not in catalog:
            raise KeyError(f"no source {name!r} in the simulator's catalog")
        spec = catalog[name].spectrum
        flux = float(scale) * spec.photon_flux(e_min_kev, e_max_kev)
        n = int(rng.poisson(flux * area_cm2 * (l1.t_stop - l1.t_start)))
        times = np.sort(rng.uniform(l1.t_start, l1.t_stop, n))
        energies = sample_energies(rng, spec, n, e_min=e_min_kev, e_max=e_max_kev)
        label = f"steady:{name}"
        photons.append(PhotonList(times, energies, float(ra), float(dec), area_cm2, label))
        truth[label] = {"ra_deg": float(ra), "dec_deg": float(dec), "photon_flux": flux}
    add = simulate_eclairs(
        photons,
        attitude=l1.attitude,
        t_start=l1.t_start,
        t_stop=l1.t_stop,
        rng=rng,
        background=False,
        dead_pixels=l1.dead_pixels,
        run_trigger=False,
    )
    # keep only events inside the file's good times (the added simulation has no SAA)
    inside = np.zeros(add.time.size, dtype=bool)
    for a, b in l1.gti:
        inside |= (add.time >= a) & (add.time < b)
    offset = len(l1.labels)
    time = np.concatenate([l1.time, add.time[inside]])
    order = np.argsort(time, kind="stable")
    merged = replace(
        l1,
        time=time[order],
        y=np.concatenate([l1.y, add.y[inside]])[order],
        z=np.concatenate([l1.z, add.z[inside]])[order],
        pi=np.concatenate([l1.pi, add.pi[inside]])[order],
        energy_kev=np.concatenate([l1.energy_kev, add.energy_kev[inside]])[order],
        origin=np.concatenate([l1.origin, (add.origin[inside] + offset).astype(l1.origin.dtype)])[
            order
        ],
        labels=[*l1.labels, *add.labels],
    )
    for k, label in enumerate(add.labels):
        if label in truth:
            truth[label]["events"] = float(np.sum(add.origin[inside] == k))
    with fits.open(path) as h:
        trigger_id = h[0].header.get("TRIGID")
    write_eclairs_l1(merged, path, trigger_id=trigger_id)
    return truth
