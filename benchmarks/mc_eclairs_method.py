"""Monte Carlo: time-background vs mask-weighted ECLAIRs spectra in the joint ECLAIRs + GRM fit.

Each trial simulates one burst (:func:`svomflow.simulation.xband_mc.simulate_burst`: random
off-axis angle 5-30 deg, bright or faint, Band or CPL spectrum), in a third of the trials
with a Crab-like steady source (1-3 Crab, 3-8 deg from the burst, listed in
``known_sources``), runs the ``xband_analysis`` steps (timing, intervals, PO_ECL, responses,
spectra) once per ``spectral.eclairs_method`` on the same files and intervals, and compares
the joint (ECLGRM) main-interval fit with the truth: alpha, Epeak and the 10-1000 keV
fluence (bias, scatter, 1-sigma coverage). Prints one line per trial and a summary; run::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/mc_eclairs_method.py \\
        --trials 40 --seed 1 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("time_background", "mask_weighted")
KEYS = ("alpha", "epeak", "fluence")


def _pull(value: float, lo: float | None, hi: float | None, truth: float) -> float:
    err = hi if value < truth else -(lo or 0.0)
    return (value - truth) / err if err and err > 0 else math.inf


def _setup(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    band = rng.random() < 0.5
    sp = (
        {"model": "band", "alpha": float(rng.choice([-1.0, -0.6])), "beta": -2.4, "epeak": 200.0}
        if band
        # the simulator's CPL takes its photon index as `index` (an `alpha` key is ignored)
        else {"model": "cpl", "index": float(rng.choice([-1.2, -0.8])), "epeak": 120.0}
    )
    bright = rng.random() < 0.5
    return {
        "spectrum": sp,
        "model": "band" if band else "cpl",
        "peak_flux": 15.0 if bright else 5.0,
        "offaxis_deg": float(rng.uniform(5.0, 30.0)),
        "crab": seed % 3 == 0,
        "crab_scale": float(rng.uniform(1.0, 3.0)),
        "crab_sep_deg": float(rng.uniform(3.0, 8.0)),
        "crab_angle": float(rng.uniform(0, 2 * np.pi)),
    }


def run_trial(seed: int) -> dict[str, Any]:
    """Simulate one burst and fit it with both ECLAIRs methods; return values, errors, pulls."""
    from svomflow.simulation.eclairs_sources import add_steady_sources
    from svomflow.simulation.xband_mc import read_burst, simulate_burst
    from svomflow.tasks.xband.config import XbandAnalysisConfig
    from svomflow.tasks.xband.extraction import spectra
    from svomflow.tasks.xband.localise import localise
    from svomflow.tasks.xband.pipeline import fit_plans
    from svomflow.tasks.xband.responses import responses
    from svomflow.tasks.xband.spectral_fits import fit
    from svomflow.tasks.xband.t90 import timing

    s = _setup(seed)
    out: dict[str, Any] = {"seed": seed, **{k: s[k] for k in ("model", "peak_flux", "crab")}}
    out["offaxis_deg"] = s["offaxis_deg"]
    with tempfile.TemporaryDirectory(prefix="mc-eclm-") as tmp:
        d = Path(tmp)
        b = simulate_burst(
            d / "sim",
            seed,
            spectrum=s["spectrum"],
            peak_flux=s["peak_flux"],
            offaxis_deg=s["offaxis_deg"],
            span=(-30.0, 45.0),
        )
        known: list[dict[str, Any]] = []
        if s["crab"]:
            dec = float(b["dec"]) + s["crab_sep_deg"] * math.sin(s["crab_angle"])
            ra = float(b["ra"]) + s["crab_sep_deg"] * math.cos(s["crab_angle"]) / math.cos(
                math.radians(dec)
            )
            add_steady_sources(
                b["files"][0], [("Crab", ra, dec, s["crab_scale"])], np.random.default_rng(seed)
            )
            known = [{"name": "Crab-like", "ra_deg": ra, "dec_deg": dec}]
        truth = {
            "alpha": s["spectrum"].get("alpha", s["spectrum"].get("index")),
            "epeak": s["spectrum"]["epeak"],
            "fluence": b["truth"]["bands"]["10-1000"]["energy_fluence_erg"],
        }
        out["truth"] = truth
        base = {
            "known_sources": known,
            "spectral": {"model": s["model"], "flux_samples": 200},
            "intervals": {"max_resolved": 1},
            "seed": seed,
        }
        try:
            cfg = XbandAnalysisConfig.model_validate(base)
            cal = b["calibration"]
            ev = read_burst(b)
            ins, t0 = ev.instruments, ev.t0
            ci = timing(ins, t0, config=cfg.intervals).intervals
            pos = localise(ins, ci, cfg.known_sources, t0, config=cfg.localise, calibration=cal)
        except Exception as exc:  # counted, not fatal
            out["error"] = f"{type(exc).__name__}: {exc}"
            return out
        for method in METHODS:
            cfg = XbandAnalysisConfig.model_validate(
                {**base, "spectral": {**base["spectral"], "eclairs_method": method}}
            )
            try:
                rsp = responses(ins, pos, config=cfg.spectral, calibration=cal)
                sp = spectra(
                    ins, ci.fitted(), ci.off_source, pos, rsp, cfg.known_sources, t0,
                    config=cfg.spectral, calibration=cal,
                )  # fmt: skip
                joint = next(p for p in fit_plans(list(sp.detectors), cfg) if p.code == "ECLGRM")
                res = fit(
                    joint.code, joint.instruments, sp, joint.fluence_bands, joint.flux_bands,
                    None, t0, cfg.seed, config=cfg.spectral,
                )  # fmt: skip
            except Exception as exc:  # counted, not fatal
                out[method] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            m = res.main.summary()
            p = dict(m["parameters"])
            p.setdefault("alpha", p.get("index"))  # the CPL's index is its alpha
            fx = m["fluxes"]["fluence_10-1000"]
            vals = {
                "alpha": (p["alpha"]["value"], p["alpha"]["error_low"], p["alpha"]["error_high"]),
                "epeak": (p["epeak"]["value"], p["epeak"]["error_low"], p["epeak"]["error_high"]),
                "fluence": (fx["value"], fx["error_low"], fx["error_high"]),
            }
            out[method] = {
                "value": {k: v[0] for k, v in vals.items()},
                "pull": {k: _pull(*vals[k], truth[k]) for k in KEYS},
                "statistic": m["statistic"],
                "chi2_dof": [m["stat"], m["dof"]],
                "cancelled": sp.cancelled_sources.get("eclairs", []),
            }
    return out


def summarise(trials: list[dict[str, Any]], subset: str = "all") -> dict[str, Any]:
    """Bias (mean of value/truth - 1, or value - truth for alpha), scatter and coverage."""
    rows = [t for t in trials if "error" not in t]
    if subset == "crab":
        rows = [t for t in rows if t["crab"]]
    elif subset == "no_crab":
        rows = [t for t in rows if not t["crab"]]
    summary: dict[str, Any] = {"n": len(rows)}
    for method in METHODS:
        ok = [t for t in rows if "value" in t.get(method, {})]
        ms: dict[str, Any] = {"n_ok": len(ok)}
        for k in KEYS:
            v = np.array([t[method]["value"][k] for t in ok])
            tr = np.array([t["truth"][k] for t in ok])
            pl = np.array([t[method]["pull"][k] for t in ok])
            d = v - tr if k == "alpha" else v / tr - 1.0
            ms[k] = {
                "bias": float(d.mean()) if d.size else math.nan,
                "bias_err": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else math.nan,
                "scatter": float(d.std(ddof=1)) if d.size > 1 else math.nan,
                "coverage": float(np.mean(np.abs(pl) < 1.0)) if pl.size else math.nan,
                "median_abs_pull": float(np.median(np.abs(pl))) if pl.size else math.nan,
            }
        summary[method] = ms
    return summary


def _print(summary: dict[str, Any], title: str) -> None:
    print(f"\n{title}: {summary['n']} trials (expected coverage 0.683)")
    for method in METHODS:
        ms = summary[method]
        print(f"  {method:16s} ok {ms['n_ok']}")
        for k in KEYS:
            q = ms[k]
            print(
                f"    {k:8s} bias {q['bias']:+.4f} +- {q['bias_err']:.4f}  scatter "
                f"{q['scatter']:.4f}  coverage {q['coverage']:.2f}  median|pull| "
                f"{q['median_abs_pull']:.2f}"
            )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the Monte Carlo and print per-trial lines and the summaries."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    trials = []
    for seed in range(args.seed, args.seed + args.trials):
        t = run_trial(seed)
        trials.append(t)
        line = f"seed {seed} {t['model']} pf {t['peak_flux']:g} off {t['offaxis_deg']:.1f}"
        line += " crab" if t["crab"] else ""
        if "error" in t:
            line += f" ERROR {t['error']}"
        for method in METHODS:
            r = t.get(method, {})
            if "pull" in r:
                line += f" | {method[:4]} " + " ".join(f"{r['pull'][k]:+.2f}" for k in KEYS)
            elif r:
                line += f" | {method[:4]} ERROR {r['error']}"
        print(line, flush=True)
        if args.json:
            args.json.write_text(json.dumps(trials, indent=1, default=float))
    out = {s: summarise(trials, s) for s in ("all", "crab", "no_crab")}
    for s, v in out.items():
        _print(v, s)
    return {"trials": trials, "summary": out}


if __name__ == "__main__":
    main()
