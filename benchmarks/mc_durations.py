"""T90/T50 Monte Carlo on bursts with a faint tail and a drifting background (issue 13).

Run: ``python -m benchmarks.mc_durations [--n N] [--seed S] [--drift none linear quadratic]
[--json]``. Each trial simulates one burst of
:class:`svomflow.simulation.drift_tail.DriftTailScenario` (a FRED of 1000 counts/s peak, a
second FRED at 5 % of the peak lasting tens of seconds, 400 counts/s of background drifting
by 5 % over 300 s: linearly, or up and back down) and measures T90/T50 as the VHF flow does
on events (:func:`svomflow.simulation.drift_tail.run_duration_trials`). Prints per scenario
the mean relative bias with its standard error and the 1-sigma coverage with the binomial
standard error of a correct 68 % and the coverage's 95 % Clopper-Pearson interval.
"""

from __future__ import annotations

import argparse
import json
import time

from svomflow.simulation.drift_tail import (
    DriftTailScenario,
    bias_and_coverage,
    run_duration_trials,
)


def main(argv: list[str] | None = None) -> int:
    """Run the Monte Carlo and print (or dump as JSON) the bias and coverage per scenario."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="bursts per scenario")
    ap.add_argument("--seed", type=int, default=1000, help="seed of the first burst")
    ap.add_argument("--drift", nargs="+", default=["none", "linear", "quadratic"], help="scenarios")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for drift in args.drift:
        t = time.perf_counter()
        trials = run_duration_trials(DriftTailScenario(drift=drift), args.n, args.seed)
        out[drift] = {w: bias_and_coverage(trials, w) for w in ("t90", "t50")}
        if not args.json:
            for w, s in out[drift].items():
                print(
                    f"{drift:9s} {w}: bias {100 * s['bias']:+.1f} ± {100 * s['bias_err']:.1f} %  "
                    f"coverage {100 * s['coverage']:.0f} % [{100 * s['coverage_lo']:.0f}, "
                    f"{100 * s['coverage_hi']:.0f}] (68 ± {100 * s['coverage_err']:.0f} "
                    f"expected)  mean error {100 * s['rel_err']:.1f} %  n={int(s['n'])}"
                )
            print(f"{drift:9s} {time.perf_counter() - t:.0f} s")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
