"""Build the corpus's valid inputs, generate the seeded cases and run each through the CLI."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .mutations import INVALID, MUTATIONS, TABLE_ONLY, mutate

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("SVOMFLOW_SHARED_DATA", ROOT / ".." / "shared" / "data"))
SVOMFLOW = [str(Path(sys.executable).parent / "svomflow")]
TIMEOUT_S = 300.0
MEMORY_LIMIT = 2 * 1024**3
_BASELINE_LOCK = threading.Lock()
FAMILIES = ("vhf", "xband", "mxt", "spectrum", "gp1", "calib")


@dataclass(frozen=True)
class Case:
    """One broken input: which family, which valid file it breaks, how, and its seed."""

    family: str
    index: int
    mutation: str
    target: str
    seed: int

    @property
    def name(self) -> str:
        """Return a stable identifier used as the pytest id."""
        return f"{self.family}-{self.index:03d}-{self.mutation}-{Path(self.target).stem}"


@dataclass
class Outcome:
    """What one case did: its class, exit code and the last line of its error output."""

    case: Case
    kind: str  # error | flagged | accepted | crash | hang | unflagged | escape
    returncode: int | None
    detail: str


def _sim(base: Path) -> dict[str, Path]:
    """Return the valid input files of every family under the prepared directory ``base``."""
    mxt = base / "mxt_one_source" / "mxt"
    # every bias frame of the night (7, above the minimum of 5 for a master): a broken frame
    # is then skipped and the master built from the others, as on a real night
    raw = sorted((base / "colibri_night" / "colibri" / "raw").glob("*_bias_*.fits"))
    return {
        "eclairs": base / "short_grb" / "eclairs_l1_events.fits",
        "grm": base / "short_grb" / "grm_l1_events.fits",
        "mxt_pass0": mxt / "mxt_l1_pass00.fits",
        "mxt_pass1": mxt / "mxt_l1_pass01.fits",
        "mxt_att": mxt / "mxt_att.fits",
        "mxt_saa": mxt / "mxt_saa_week0165.fits",
        "pha": SHARED / "xray" / "asca" / "s0_mar24_bin.pha",
        "rmf": SHARED / "xray" / "asca" / "s0_mar24.rmf",
        "arf": SHARED / "xray" / "asca" / "s0_mar24.arf",
        "image": SHARED / "optical" / "sep" / "image.fits",
        "rawframe": SHARED / "optical" / "raw" / "a8280271.fits",
        **{f"bias{i}": p for i, p in enumerate(raw)},
    }


#: The inputs taken from ../shared/data (real public files) rather than from the simulator.
SHARED_INPUTS = frozenset({"pha", "rmf", "arf", "image", "rawframe"})

#: For each family: the inputs a case may break, and the file another instrument would give.
TARGETS: dict[str, tuple[tuple[str, ...], str]] = {
    "vhf": (("eclairs", "grm"), "mxt_pass1"),
    "xband": (("eclairs", "grm"), "image"),
    "mxt": (("mxt_pass1", "mxt_att", "mxt_saa"), "eclairs"),
    "spectrum": (("pha", "rmf", "arf"), "grm"),
    "gp1": (("image", "rawframe"), "eclairs"),
    "calib": (("bias0",), "image"),
}


def prepare(base: Path) -> Path:
    """Simulate the small scenarios into ``base`` once (with their CALDB in ``base/home``)."""
    base.mkdir(parents=True, exist_ok=True)
    env = _env(base / "home", base / "prefect")
    for scenario in ("short_grb", "mxt_one_source", "colibri_night"):
        if not (base / scenario / "truth.json").exists():
            subprocess.run(
                [*SVOMFLOW, "simulate", scenario, "--out", str(base / scenario), "--seed", "1"],
                env=env,
                check=True,
                capture_output=True,
            )
    return base


#: Mutations that act on bytes (no astropy rewrite of the file).
BYTE_LEVEL = (
    "truncate",
    "flip_header",
    "flip_data",
    "not_fits",
    "truncated_gzip",
    "absurd_size",
    "foreign",
)

#: Inputs astropy cannot rewrite faithfully: rewriting the ASCA RMF garbles its N_CHAN
#: variable-length column (astropy writes F_CHAN's heap data for it), so only byte-level
#: mutations apply to it.
BYTE_ONLY_TARGETS = frozenset({"rmf"})


def cases(family: str, count: int, seed: int) -> list[Case]:
    """Return ``count`` seeded cases of ``family``, cycling through every applicable mutation."""
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    images = family in ("gp1", "calib")
    names = [m for m in MUTATIONS if not (images and m in TABLE_ONLY)]
    targets = TARGETS[family][0]
    out = []
    for i in range(count):
        if i % len(names) == 0:
            rng.shuffle(names)
        mutation = names[i % len(names)]
        target = targets[int(rng.integers(0, len(targets)))]
        if mutation not in BYTE_LEVEL and target in BYTE_ONLY_TARGETS:
            target = next(t for t in targets if t not in BYTE_ONLY_TARGETS)
        out.append(Case(family, i, mutation, target, int(rng.integers(0, 2**31))))
    return out


def _argv(case: Case, files: dict[str, Path], out: Path, night: str) -> list[str]:
    """Return the command line of ``case`` given its (partly broken) input files."""
    f = {k: str(v) for k, v in files.items()}
    if case.family == "vhf":
        return [
            "vhf",
            "--no-prefect",
            "--events",
            f["eclairs"],
            f["grm"],
            "--out",
            str(out),
            "--json",
        ]
    if case.family == "xband":
        return [
            "xband",
            "--events",
            f["eclairs"],
            "--events",
            f["grm"],
            "--out",
            str(out),
            "--json",
        ]
    if case.family == "mxt":
        return [
            "mxt",
            "--events",
            f["mxt_pass0"],
            f["mxt_pass1"],
            "--attitude",
            f["mxt_att"],
            "--saa",
            f["mxt_saa"],
            "--out",
            str(out),
            "--json",
        ]
    if case.family == "spectrum":
        return [
            "spectrum",
            "fit",
            "--pha",
            f["pha"],
            "--rmf",
            f["rmf"],
            "--arf",
            f["arf"],
            "--model",
            "pl",
            "--no-errors",
            "--json",
        ]
    if case.family == "gp1":
        if case.target == "image":
            return ["gp1", "module", "findstars", "--reduced", "-i", f["image"], "-o", str(out)]
        return ["gp1", "module", "reduction", "-i", f["rawframe"], "-o", str(out)]
    raw = Path(f["bias0"]).parent
    return ["calib", "nightly", "--night", night, "--raw", str(raw), "--out", str(out), "--json"]


def _clean_env() -> dict[str, str]:
    """Return this process's environment without svomflow's and Prefect's settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SVOMFLOW_", "PREFECT_"))}


_SERVER_LOCK = threading.Lock()
_SERVER: list[str] = []


def _shared_api(base: Path) -> str:
    """Return the API URL of the one Prefect server every case's flow runs on.

    Started on first use (its home under ``base``) and stopped when this process exits. A
    case in a fresh home would otherwise start that home's own server (about 10 s each) and
    leave it running, as a user's first command does on purpose.
    """
    from svomflow.operations.local_server import prefect_server

    with _SERVER_LOCK:
        if not _SERVER:
            (base / "prefect-server").mkdir(parents=True, exist_ok=True)
            stack = contextlib.ExitStack()
            atexit.register(stack.close)
            env = _clean_env() | {"PREFECT_HOME": str(base / "prefect-server")}
            log = base / "prefect-server.log"
            _SERVER.append(stack.enter_context(prefect_server(env=env, log_file=log)))
        return _SERVER[0]


def _env(home: Path, prefect: Path, api_url: str | None = None) -> dict[str, str]:
    """Return the environment of a run in its own home (on the server ``api_url``, if given)."""
    env = _clean_env()
    env.update(SVOMFLOW_HOME=str(home), PREFECT_HOME=str(prefect), COLUMNS="200")
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _limit_memory() -> None:
    """Cap the child's address space (run in the child before exec)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def _materialise(case: Case, base: Path, work: Path) -> tuple[dict[str, Path], str]:
    """Copy the valid inputs into ``work``, break the case's target; return the mutation applied."""
    src = _sim(base)
    needed = (
        [k for k in src if k.startswith("bias")]
        if case.family == "calib"
        else list(TARGETS[case.family][0])
    )
    files: dict[str, Path] = dict(src)
    applied = case.mutation
    for key in needed:
        name = src[key].name if key.startswith("bias") else f"{key}{''.join(src[key].suffixes)}"
        dst = work / ("raw" if key.startswith("bias") else "in") / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if key == case.target:
            if case.mutation == "truncated_gzip":
                dst = dst.with_name(dst.name + ".gz")
            applied = mutate(
                case.mutation,
                src[key],
                dst,
                np.random.default_rng(case.seed),
                foreign=src[TARGETS[case.family][1]],
            )
        else:
            shutil.copyfile(src[key], dst)
        files[key] = dst
    return files, applied


_FLAG_TEXT = re.compile(r"\bflag(ged|s)?\b|\bskipped\b|svomflow: warning", re.IGNORECASE)
#: gp1's documented per-image failure line (exit code 1 when an image failed).
_FAILED_IMAGE = re.compile(r"^\s*failed \S+: .+$", re.MULTILINE)
_FLAG_KEYS = frozenset(
    {"flags", "warnings", "quality", "skipped", "failed", "refused", "rejected_frames"}
)


def _json_flags(value: object, found: set[str]) -> None:
    """Collect the non-empty ``flags``-like entries of a JSON value, at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key.lower() in _FLAG_KEYS and item not in (None, "", "none", [], {}, 0):
                found.update(str(v) for v in item) if isinstance(item, list) else found.add(
                    f"{key}={item}"
                )
            _json_flags(item, found)
    elif isinstance(value, list):
        for item in value:
            _json_flags(item, found)


def flags(stdout: str, stderr: str) -> set[str]:
    """Return the flags, warnings of its own and skipped inputs a run reported."""
    found: set[str] = set()
    start = stdout.find("{")
    if start >= 0:
        try:
            _json_flags(json.loads(stdout[start:]), found)
        except ValueError:
            pass
    lines = (stdout + "\n" + stderr).splitlines()
    found.update(
        re.sub(r"/\S+", "<path>", line.strip())
        for line in lines
        if not line.lstrip().startswith("{") and _FLAG_TEXT.search(line)
    )
    return found


def last_line(stdout: str, stderr: str) -> str:
    """Return the last line of the error output (else of the output), without the corpus's notes."""
    err = [line for line in stderr.strip().splitlines() if not line.startswith("[corpus]")]
    return (err or stdout.strip().splitlines() or [""])[-1][:300]


def classify(
    case: Case,
    rc: int | None,
    stdout: str,
    stderr: str,
    escaped: list[str],
    baseline: set[str] = frozenset(),
) -> Outcome:  # type: ignore[assignment]
    """Sort one run into an outcome class (see docs/robustness.md).

    A run counts as flagged only when it reports a flag that the run on the valid inputs
    (``baseline``) did not.
    """
    last = last_line(stdout, stderr)
    if escaped:
        return Outcome(case, "escape", rc, "wrote " + ", ".join(escaped[:3]))
    if rc is None:
        return Outcome(case, "hang", rc, f"no exit after {TIMEOUT_S:.0f} s")
    if (
        "Traceback (most recent call last)" not in stderr
        and rc == 1
        and _FAILED_IMAGE.search(stdout)
    ):
        return Outcome(case, "error", rc, _FAILED_IMAGE.search(stdout).group(0)[:300])  # type: ignore[union-attr]
    if "Traceback (most recent call last)" in stderr or rc not in (0, 2):
        return Outcome(case, "crash", rc, last)
    if rc == 2:
        return Outcome(case, "error", rc, last)
    new_flags = flags(stdout, stderr) - set(baseline)
    if new_flags:
        return Outcome(case, "flagged", rc, "; ".join(sorted(new_flags))[:300])
    return Outcome(case, "unflagged" if case.mutation in INVALID else "accepted", rc, last)


def _end_leftovers(work: Path) -> list[str]:
    """End the processes a case left behind (their command line names the case directory)."""
    left = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(work) in cmd and int(proc.name) != os.getpid():
            left.append(cmd)
            try:
                os.kill(int(proc.name), signal.SIGTERM)
            except OSError:
                pass
    return left


def _files(root: Path) -> set[str]:
    """Return every file path under ``root``."""
    return {str(p) for p in root.rglob("*") if p.is_file()}


#: Families whose command depends on the broken input (gp1: findstars on a reduced image,
#: reduction on a raw frame): their valid run is one per input, not one per family.
_COMMAND_PER_TARGET = frozenset({"gp1"})


@dataclass(frozen=True)
class Baseline:
    """What a family's command reports on the valid inputs: its flags and its numbers."""

    flags: set[str]
    numbers: dict[str, float]


def _baseline_key(case: Case) -> str:
    """Return the name of the valid run ``case`` is compared with."""
    return f"{case.family}-{case.target}" if case.family in _COMMAND_PER_TARGET else case.family


def numbers(stdout: str, out: Path) -> dict[str, float]:
    """Return the numbers a run reported, by JSON path (wall-clock timings left out).

    They are the numeric leaves of the command's JSON output, or for a command without one
    (``gp1 module``) of the image summaries (``IMGSUM*.json``) it wrote under ``out``.
    """
    start = stdout.find("{")
    texts = [stdout[start:]] if start >= 0 else []
    texts += [p.read_text() for p in sorted(out.rglob("IMGSUM*.json"))] if out.is_dir() else []
    found: dict[str, float] = {}

    def walk(value: object, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}")
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if "timing" not in key:  # seconds taken: differ between two runs of one input
                found[key] = float(value)

    for i, text in enumerate(texts):
        try:
            walk(json.loads(text), f"#{i}")
        except ValueError:
            continue
    return found


#: Relative change below which two runs' numbers count as the same after a mutation the
#: corpus does not call invalid: well under the quoted uncertainty of every product (a
#: flipped pixel of one bias in seven moves the master's noise by 3e-5, calib-031; one
#: event in two thousand, 5e-4), far from a changed result. Two runs of the same inputs with
#: the same code give the same numbers to the last bit (vhf, measured); the valid run is
#: cached in ``base``: remove ``base/baseline-*.json`` after the analysis code changed.
SAME_NUMBER_RTOL = 1e-3
#: After an invalid mutation (NaN, bad times...) only the very numbers of the valid inputs
#: show that the broken part was not read (a NaN in an ORBIT table the run does not use).
EXACT_RTOL = 1e-12


def differences(found: dict[str, float], valid: dict[str, float], rtol: float) -> list[str]:
    """Return ``key: valid -> found`` for every number that differs (or is new or missing)."""
    out = []
    for key in sorted(set(found) | set(valid)):
        a, b = valid.get(key), found.get(key)
        if a is None or b is None or not np.isclose(b, a, rtol=rtol, atol=1e-12, equal_nan=True):
            out.append(f"{key}: {a} -> {b}")
    return out


#: Accepted cases whose numbers differ from the valid run and that were judged harmless by
#: hand, with the reason the result is still right (none is assumed: each is named here).
_NOT_THIS_CAMERA = (
    "INSTRUME set to a path: the frame is no longer a DDRAGO-B frame and is left out as "
    "another camera's frame in the raw folder is; the master is made of the six valid frames"
)
JUDGED_HARMLESS: dict[str, str] = {
    "calib-032-path_like_header-bias0": _NOT_THIS_CAMERA,
    "calib-044-path_like_header-bias0": _NOT_THIS_CAMERA,
    "calib-061-path_like_header-bias0": _NOT_THIS_CAMERA,
    "calib-073-path_like_header-bias0": _NOT_THIS_CAMERA,
    "calib-088-path_like_header-bias0": _NOT_THIS_CAMERA,
}


def check_numbers(outcome: Outcome, found: dict[str, float], valid: Baseline) -> Outcome:
    """Judge a run that exited 0 without a new flag by its numbers against the valid run's.

    An accepted case (a byte flip, a dropped keyword) stays accepted only if the command
    returns the valid inputs' numbers (within :data:`SAME_NUMBER_RTOL`) or a person judged
    the difference right (:data:`JUDGED_HARMLESS`); otherwise the broken input changed the
    result without a flag: ``unflagged`` (mxt-022, a flipped byte in an SAA bound). An
    unflagged case (an invalid mutation) is accepted when its numbers are exactly the valid
    run's: the broken part was not read. Without numbers to compare, nothing changes.
    """
    if outcome.kind not in ("accepted", "unflagged") or not valid.numbers:
        return outcome
    if outcome.kind == "unflagged":
        if differences(found, valid.numbers, EXACT_RTOL):
            return outcome
        return replace(
            outcome,
            kind="accepted",
            detail="the valid inputs' numbers to the last bit: the broken part does not enter them",
        )
    diff = differences(found, valid.numbers, SAME_NUMBER_RTOL)
    if not diff or outcome.case.name in JUDGED_HARMLESS:
        return outcome
    return replace(
        outcome,
        kind="unflagged",
        detail=f"{len(diff)} number(s) differ from the valid inputs' run: " + "; ".join(diff[:3]),
    )


def baseline(case: Case, base: Path, folder: Path) -> Baseline:
    """Return what ``case``'s command reports on the valid inputs (run once, cached in ``base``).

    The valid run, when needed, runs in ``folder/baseline-<family>`` beside the cases.
    """
    key = _baseline_key(case)
    cache = base / f"baseline-{key}.json"
    work = folder / f"baseline-{key}"
    with _BASELINE_LOCK:
        if not cache.exists():
            valid = Case(case.family, -1, "none", case.target, 0)
            run = _run(valid, base, work)
            outcome = run.classify()
            if outcome.kind not in ("accepted", "flagged"):
                raise RuntimeError(f"{key}: the valid inputs do not run cleanly: {outcome.detail}")
            cache.write_text(
                json.dumps(
                    {
                        "flags": sorted(flags(run.stdout, run.stderr)),
                        "numbers": numbers(run.stdout, work / "out"),
                    }
                )
            )
    saved = json.loads(cache.read_text())
    return Baseline(set(saved["flags"]), saved["numbers"])


def run_case(case: Case, base: Path, work: Path) -> Outcome:
    """Run ``case`` in a fresh home under ``work`` and classify it against the valid run.

    The command's run on the valid inputs is needed only to tell a new flag from a usual one
    and to compare the numbers of an accepted case, so it runs (once per ``base``) only
    when the case itself exits 0.
    """
    return _judge(_run(case, base, work), base, work)


def rejudge(case: Case, base: Path, work: Path, returncode: int | None) -> Outcome:
    """Classify a case again from the outputs its run saved in ``work`` (no new run).

    Against the valid run cached in ``base`` now: after the analysis code changed, a flag
    or a number that is new for the old valid run may be the code's, not the mutation's.
    """
    applied = case.mutation
    if returncode == 0:  # which mutation really applied matters only to a run that succeeded
        with tempfile.TemporaryDirectory() as tmp:
            applied = _materialise(case, base, Path(tmp))[1]
    run = _Run(
        case,
        applied,
        returncode,
        (work / "stdout.txt").read_text(),
        (work / "stderr.txt").read_text(),
        [],
    )
    return _judge(run, base, work)


def _judge(run: _Run, base: Path, work: Path) -> Outcome:
    """Classify a run in ``work``: by its exit, then against the valid run's flags and numbers."""
    if run.returncode != 0 or run.escaped:
        return run.classify()
    valid = baseline(run.case, base, work.parent)
    found = numbers(run.stdout, work / "out")
    outcome = check_numbers(run.classify(valid.flags), found, valid)
    return masked_damage(outcome, found, valid, base, work)


def _damaged_pixels(case: Case, base: Path, work: Path) -> tuple[int, int] | None:
    """Return (pixels that differ from the valid image, pixels in it); None if not comparable."""
    from astropy.io import fits
    from svomflow.products.ogip import MALFORMED_FILE_ERRORS

    broken = work / "in" / f"{case.target}.fits"
    if not broken.is_file():
        return None
    try:
        a = np.asarray(fits.getdata(_sim(base)[case.target]), dtype=float)
        b = np.asarray(fits.getdata(broken), dtype=float)
    except MALFORMED_FILE_ERRORS:  # the broken copy does not read: nothing to compare
        return None
    if a.shape != b.shape:
        return None
    return int(np.count_nonzero((a != b) & ~(np.isnan(a) & np.isnan(b)))), a.size


def masked_damage(
    outcome: Outcome, found: dict[str, float], valid: Baseline, base: Path, work: Path
) -> Outcome:
    """Accept an image whose only changed number is its masked fraction, by the damage's size.

    A byte flip in a raw frame's pixels (no ``DATASUM`` to tell) makes a few pixels look
    hot; those above the saturation level are masked and ``bad_fraction`` grows (gp1-043,
    -060...). The mask is the product's pixel-level flag: the case counts as flagged when
    nothing but ``bad_fraction`` moved, and by no more than the damaged pixels (the fraction
    is printed to two significant digits over the frame without its overscan: 10 % slack).
    """
    if outcome.kind != "unflagged" or outcome.case.family != "gp1":
        return outcome
    diff = differences(found, valid.numbers, SAME_NUMBER_RTOL)
    keys = {d.split(":", 1)[0] for d in diff}
    if not keys or not all(k.endswith(".bad_fraction") for k in keys):
        return outcome
    compared = _damaged_pixels(outcome.case, base, work)
    if compared is None:
        return outcome
    damaged, n_pixels = compared
    grown = max(found[k] - valid.numbers[k] for k in keys) * n_pixels
    if grown > 1.1 * damaged + 0.5:
        return outcome
    return replace(
        outcome,
        kind="flagged",
        detail=f"{damaged} damaged pixel(s); the ones masked (bad_fraction up by "
        f"{round(grown)} pixel(s)) are the only change",
    )


@dataclass
class _Run:
    """The raw result of one command run: exit code, outputs, escaped files, mutation applied."""

    case: Case
    applied: str
    returncode: int | None
    stdout: str
    stderr: str
    escaped: list[str]

    def classify(self, known: set[str] = frozenset()) -> Outcome:  # type: ignore[assignment]
        """Return the run's outcome, counting as flags only those not in ``known``."""
        outcome = classify(
            replace(self.case, mutation=self.applied),
            self.returncode,
            self.stdout,
            self.stderr,
            self.escaped,
            known,
        )
        return replace(outcome, case=self.case)


def reads_shared_data(case: Case) -> bool:
    """Return whether ``case`` reads a file of ``../shared/data`` (not a simulator output)."""
    inputs = set(TARGETS[case.family][0])
    if case.mutation == "foreign":
        inputs.add(TARGETS[case.family][1])
    return bool(inputs & SHARED_INPUTS)


def _run(case: Case, base: Path, work: Path) -> _Run:
    """Run ``case`` in a fresh home under ``work``; return what the command did."""
    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    shutil.copytree(base / "home", home, dirs_exist_ok=True)
    files, applied = _materialise(case, base, work)
    out = work / "out"
    before = _files(work)
    argv = _argv(case, files, out, "2026-11-23")
    try:
        proc = subprocess.run(
            [*SVOMFLOW, *argv],
            env=_env(home, work / "prefect", _shared_api(base)),
            cwd=work,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            preexec_fn=_limit_memory,
        )
        rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, stdout, stderr = None, str(exc.stdout or ""), str(exc.stderr or "")
    left = _end_leftovers(work)
    if left:  # a command that leaves a server running behind it is reported with its case
        stderr += f"\n[corpus] {len(left)} process(es) left running after exit: {left[0][:120]}"
    (work / "stdout.txt").write_text(stdout)
    (work / "stderr.txt").write_text(stderr)
    allowed = (str(out), str(home), str(work / "prefect"))
    escaped = sorted(
        p
        for p in _files(work) - before
        if not p.startswith(allowed) and not p.endswith(("stdout.txt", "stderr.txt"))
    )
    return _Run(case, applied, rc, stdout, stderr, escaped)
