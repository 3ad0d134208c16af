"""Run the bad-input corpus and write its outcome table to docs/robustness.md.

Usage (from the project root)::

    python -m tests.corpus.report --per-family 100 --jobs 2 [--work DIR] [--families vhf,mxt]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .runner import FAMILIES, ROOT, Case, Outcome, cases, prepare, rejudge, run_case

KINDS = ("error", "flagged", "accepted", "crash", "hang", "unflagged", "escape")
SEED = 15


def signature(outcome: Outcome) -> str:
    """Return a crash's signature: its last error line without paths and numbers."""
    text = re.sub(r"/\S+", "<path>", outcome.detail)
    return re.sub(r"\d+", "N", text)[:160]


def table(outcomes: list[Outcome]) -> str:
    """Return the Markdown outcome table (family | cases | one column per outcome class)."""
    head = "| family | cases | clean errors | flagged | accepted (harmless) | crashes | hangs | unflagged | outside root |"
    lines = [head, "|" + "---|" * 9]
    for family in FAMILIES:
        mine = [o for o in outcomes if o.case.family == family]
        if mine:
            count = collections.Counter(o.kind for o in mine)
            lines.append(
                f"| {family} | {len(mine)} | " + " | ".join(str(count[k]) for k in KINDS) + " |"
            )
    return "\n".join(lines)


def details(outcomes: list[Outcome]) -> str:
    """Return the Markdown list of the failing cases (crash, hang, unflagged, escape)."""
    bad = [o for o in outcomes if o.kind in ("crash", "hang", "unflagged", "escape")]
    rows = [
        f"| {o.case.name} | {o.kind} | {o.returncode} | `{signature(o)}` |"
        for o in sorted(bad, key=lambda o: o.case.name)
    ]
    return "\n".join(["| case | outcome | exit | last line |", "|---|---|---|---|", *rows])


def _outcome(case: Case, base: Path, work: Path, reuse: bool) -> Outcome:
    """Run one case, or with ``reuse`` judge again the run a previous call saved in ``work``."""
    saved = work / "cases" / case.name / "outcome.json"
    if reuse and saved.exists():
        kind, returncode, detail = json.loads(saved.read_text())
        if kind in ("hang", "escape"):  # what the run did, not a judgement of its outputs
            return Outcome(case, kind, returncode, detail)
        return rejudge(case, base, saved.parent, returncode)
    if (work / "cases" / case.name).exists():
        shutil.rmtree(work / "cases" / case.name)
    outcome = run_case(case, base, work / "cases" / case.name)
    saved.write_text(json.dumps([outcome.kind, outcome.returncode, outcome.detail]))
    return outcome


def main(argv: list[str] | None = None) -> int:
    """Run the corpus and write the table between the markers of docs/robustness.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=10)
    parser.add_argument(
        "--first", type=int, default=0, help="skip each family's first cases (already run)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="judge the runs saved in --work again instead of running them",
    )
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "robustness.md")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="svomflow-corpus-"))
    base = prepare(work / "base")
    # families interleaved: a partial run covers every family
    todo = sorted(
        (
            c
            for f in args.families.split(",")
            for c in cases(f, args.per_family, SEED)[args.first :]
        ),
        key=lambda c: (c.index, FAMILIES.index(c.family)),
    )
    with ThreadPoolExecutor(args.jobs) as pool:
        outcomes = []
        for done, outcome in enumerate(
            pool.map(lambda c: _outcome(c, base, work, args.reuse), todo), 1
        ):
            print(
                f"[{done}/{len(todo)}] {outcome.kind:9s} {outcome.case.name}: {outcome.detail[:120]}",
                flush=True,
            )
            outcomes.append(outcome)
    block = f"<!-- corpus:begin -->\nSeed {SEED}, cases {args.first}..{args.per_family - 1} of each family.\n\n{table(outcomes)}\n\n{details(outcomes)}\n<!-- corpus:end -->"
    text = (
        args.doc.read_text() if args.doc.exists() else "<!-- corpus:begin --><!-- corpus:end -->\n"
    )
    text = re.sub(
        r"<!-- corpus:begin -->.*<!-- corpus:end -->", lambda _: block, text, flags=re.DOTALL
    )
    args.doc.write_text(text)
    print(table(outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
