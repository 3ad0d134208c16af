"""Run every benchmark in this folder one after the other; tables go to ``docs/bench.md``.

Each ``bench_*.py`` module prints its own figures as ratios against a peer measured in the
same run, and one ``@bench`` line per target (:func:`benchmarks._report.result`). This
runner shows the output as it comes, collects those lines and writes them as one table
per benchmark at the end of ``docs/bench.md`` (below :data:`MARKER`), with the load at the
time of each figure. Pass names to
run a subset (``python -m benchmarks bayesian_blocks cold_start``): their sections of
``docs/bench.md`` are replaced and the others kept. ``--no-write`` leaves the file alone.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import pkgutil
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._report import PREFIX, load

DOC = Path(__file__).resolve().parent.parent / "docs" / "bench.md"
MARKER = "<!-- speed benchmarks below: written by `make bench`, edit the benchmarks instead -->"
HEADER = """# Speed benchmarks (`make bench`)

Written by `make bench` (`python -m benchmarks`); each section is the last run of one
`benchmarks/bench_*.py`. Every figure is a ratio against a peer measured in the same run
(astropy, sep, photutils, plain Python, the previous version or a warm run), with the load
average when it was measured: the machine is shared, absolute times vary with the load,
ratios much less. "met" is the target of issue 16 or of the benchmark's docstring.
"""


def _run(name: str, cwd: Path) -> tuple[int, float, list[dict]]:
    """Run one benchmark in a fresh interpreter, echo its output, return its rows."""
    t0 = time.perf_counter()
    rows = []
    # a fresh process per benchmark: no warm caches or threads shared between them
    with subprocess.Popen(
        [sys.executable, "-m", f"benchmarks.{name}"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(PREFIX):
                rows.append(json.loads(line[len(PREFIX) :]))
            else:
                print(line, end="", flush=True)
    return proc.returncode, time.perf_counter() - t0, rows


def _section(name: str, rc: int, seconds: float, rows: list[dict], started: str) -> str:
    head = f"## {name}\n\n{started}, {seconds:.0f} s, exit {rc}.\n"
    if not rows:
        return head + "\nNo table rows (figures in the benchmark's printed output).\n"
    lines = ["", "| target | figure | ratio | met | load |", "|---|---|---|---|---|"]
    for r in rows:
        met = {True: "yes", False: "**no**", None: "-"}[r.get("met")]
        cells = [r["target"], r["figure"], r["ratio"], met, r["load"]]
        lines.append("| " + " | ".join(str(c).replace("|", "/") for c in cells) + " |")
    return head + "\n".join(lines) + "\n"


def _write(sections: dict[str, str]) -> None:
    """Replace the sections just run below :data:`MARKER` in ``docs/bench.md``, keep the rest.

    The text above the marker (the Monte Carlo bench's documentation) is never touched.
    """
    text = DOC.read_text() if DOC.is_file() else ""
    above, _, below = text.partition(MARKER)
    old: dict[str, str] = {}
    for part in below.split("\n## ")[1:]:
        title = part.split("\n", 1)[0].strip()
        old[title] = "## " + part.rstrip() + "\n"
    old.update(sections)
    body = "\n".join(old[k] for k in sorted(old))
    DOC.write_text(above.rstrip() + "\n\n" + MARKER + "\n\n" + HEADER + "\n" + body)
    print(f"wrote {DOC}")


def main(argv: list[str]) -> int:
    """Run the selected benchmark modules; return non-zero on failure."""
    here = Path(__file__).parent
    write = "--no-write" not in argv
    argv = [a for a in argv if a != "--no-write"]
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        wanted = {a.removeprefix("bench_") for a in argv}
        names = [n for n in names if n.removeprefix("bench_") in wanted]
    failed = []
    sections = {}
    for name in names:
        started = (
            f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.node() or 'this machine'}"
            f" ({load()} at start)"
        )
        print(f"\n=== {name} ===", flush=True)
        rc, seconds, rows = _run(name, here.parent)
        print(f"=== {name}: exit {rc}, {seconds:.1f} s, {len(rows)} table rows ===", flush=True)
        sections[name] = _section(name, rc, seconds, rows, started)
        if rc:
            failed.append(name)
    if write and sections:
        _write(sections)
    if failed:
        print("failed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    importlib.invalidate_caches()
    sys.exit(main(sys.argv[1:]))
