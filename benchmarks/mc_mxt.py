"""MXT Monte Carlo figures: position errors, r90 coverage, completeness and false detections.

Run: ``python -m benchmarks.mc_mxt [--trials N] [--seed S] [--json]``. Uses
:mod:`svomflow.simulation.mxt_mc` (the same functions as the slow tests): bright (0.05
ph/cm2/s), faint (0.004) and crowded (three sources, two 4 arcmin apart) fields, and a
single source at five flux levels for completeness and false detections per field; and the
PSF-mismatch grid (issue 13): photons through PSFs that are not the CALDB model (Moffat core,
exponential arms; core FWHM x0.5-x1.5, arm length x0.5-x3), false detections per field and
r90 coverage, with the detection as it is and as it was (``--mismatch`` runs only the grid).
"""

from __future__ import annotations

import argparse
import json
import time

from svomflow.simulation.mxt_mc import (
    FIELDS,
    completeness_table,
    field_trials,
    mismatch_table,
    position_summary,
)

FLUXES = (0.0005, 0.001, 0.002, 0.004, 0.01)
#: (core factor, arm factor) of the sky's PSF relative to the CALDB model; None: the model
MISMATCH_GRID = (
    (None, 1.0), (0.5, 0.5), (0.5, 1.0), (0.5, 3.0), (1.0, 0.5), (1.0, 2.0), (1.0, 3.0),
    (1.5, 0.5), (1.5, 1.0), (1.5, 3.0),
)  # fmt: skip
#: the detection before the PSF self-calibration (issue 13)
PREVIOUS = {"psf_self_calibration": False, "arm_candidates": "keep", "residual_systematic": 0.0}


def print_mismatch(trials: int, seed: int, previous: bool) -> dict:
    """Run the PSF-mismatch grid and print its table; return the rows."""
    out = {"now": mismatch_table(MISMATCH_GRID, trials, seed)}
    if previous:
        out["previous"] = mismatch_table(MISMATCH_GRID, trials, seed, overrides=PREVIOUS)
    print(f"PSF mismatch grid: {trials} fields per row (3 sources, ~1e5 events), seed {seed}")
    print("core  arms   version   false/field  found  inside r90  median err")
    for version, rows in out.items():
        for r in rows:
            core = "model" if r["core_factor"] != r["core_factor"] else f"x{r['core_factor']:.1f}"
            print(
                f"{core:5s} x{r['arm_factor']:.1f}  {version:8s}  {r['false_per_field']:8.2f}  "
                f'{r["found"]:8.2f}  {r["inside_r90"]:8.2f}  {r["median_error_arcsec"]:8.1f}"'
            )
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the Monte Carlo and print the tables; return the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=40, help="trials per field / flux level")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--mismatch", action="store_true", help="only the PSF-mismatch grid")
    ap.add_argument("--no-previous", action="store_true", help="grid without the previous version")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.mismatch:
        rows = print_mismatch(args.trials, args.seed, not args.no_previous)
        print(f"\nwall {time.perf_counter() - t0:.0f} s")
        return {"mismatch": rows}
    out: dict = {"trials": args.trials, "seed": args.seed, "fields": {}, "completeness": []}
    for j, name in enumerate(("bright", "faint", "crowded")):
        tr = field_trials(FIELDS[name], args.trials, args.seed + j)
        per_src = [position_summary(tr, i) for i in range(len(FIELDS[name]["sources"]))]
        out["fields"][name] = {
            "pooled": position_summary(tr),
            "per_source": per_src,
            "false_per_field": sum(t.false_detections for t in tr) / len(tr),
            "completeness": [sum(t.matched[i] for t in tr) / len(tr) for i in range(len(per_src))],
        }
    out["completeness"] = completeness_table(FLUXES, args.trials, args.seed + 10)
    out["wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(out, indent=1))
        return out
    print(f"MXT Monte Carlo: {args.trials} trials per row, seed {args.seed}")
    print(
        "field     source  n   median err  p68   p90   median r90  inside r90  found  false/field"
    )
    for name, f in out["fields"].items():
        for i, p in enumerate(f["per_source"]):
            if p.get("n", 0) == 0:
                print(f"{name:9s} {i:6d}  0")
                continue
            print(
                f'{name:9s} {i:6d} {p["n"]:3d}  {p["median_error_arcsec"]:8.1f}"  '
                f"{p['p68_error_arcsec']:5.1f} {p['p90_error_arcsec']:5.1f}  "
                f'{p["median_r90_arcsec"]:8.1f}"   {p["inside_r90"]:8.2f}   '
                f"{f['completeness'][i]:5.2f}  {f['false_per_field']:6.2f}"
            )
    print("\nflux (ph/cm2/s, 0.3-10 keV)  completeness      false/field  inside r90  median err")
    for r in out["completeness"]:
        print(
            f"{r['flux_ph_cm2_s']:10.4f}                 {r['completeness']:.2f} +- "
            f"{r['completeness_err']:.2f}      {r['false_per_field']:.2f}        "
            f'{r["inside_r90"]:.2f}      {r["median_error_arcsec"]:.1f}"'
        )
    print(f"\nwall {out['wall_s']:.0f} s")
    return out


if __name__ == "__main__":
    main()
