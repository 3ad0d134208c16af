"""The import directions of ARCHITECTURE.md §11, checked on the source (AST, lazy imports too).

Layers, lowest first: the package root (version, errors, paths, numba policy) -> config ->
instrument models -> products -> calibration -> tasks (steps) -> flows -> operations -> web
site -> command line. A module may import its own layer and the layers below, never above; nothing
imports ``svomflow.simulation`` but the simulator itself and the commands that run it
(``simulate``, ``bench``, ``demo``, ``warm``); there are no import cycles between modules.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# package -> layer rank; a module may import ranks <= its own
LAYERS: dict[str, int] = {
    "svomflow": 0,  # the root package (foundation/): errors, paths, atomic, caches, collector
    "svomflow.config": 1,
    "svomflow.instruments": 2,
    "svomflow.products": 3,
    "svomflow.calibration": 4,
    "svomflow.tasks": 5,
    "svomflow.simulation": 6,  # above the models and steps it simulates through
    "svomflow.flows": 7,
    "svomflow.operations": 8,
    "svomflow.web": 9,  # the instrument-centre site: reads what operations and flows write
    "svomflow.cli": 10,
}
# the only modules outside the simulator that may import it: the commands that run it
SIMULATION_USERS = (
    "svomflow.cli.simulate_cmd",
    "svomflow.cli.bench_cmd",
    "svomflow.cli.demo_cmd",
    "svomflow.cli.demo_centre",  # a day of simulated housekeeping for the demo's site
    "svomflow.cli.hk_cmd",  # `svomflow hk simulate`: housekeeping files with known anomalies
    "svomflow.cli.warm_cmd",  # simulates a burst to compile the VHF kernels
)


def _modules() -> dict[str, Path]:
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    out: dict[str, Path] = {}
    for pkg, folder in cfg["tool"]["setuptools"]["package-dir"].items():
        for src in (REPO / folder).rglob("*.py"):
            rel = src.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([pkg, *parts])] = src
    return out


MODULES = _modules()


def _imports(path: Path, module: str) -> set[str]:
    """Every svomflow module imported by a module, at top level or inside functions."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative import
                pkg = module.split(".")[: -node.level or None]
                base = ".".join([*pkg, node.module])
            # "from pkg import submodule" depends on the submodule; "from mod import name"
            # on the module
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]
            names = subs if len(subs) == len(node.names) else [base, *subs]
        for n in names:
            if n.startswith("svomflow"):
                # the deepest known module that the name is or lies in
                while n and n not in MODULES:
                    n = n.rpartition(".")[0]
                if n and n != module:
                    found.add(n)
    return found


GRAPH = {m: _imports(p, m) for m, p in MODULES.items()}


def _layer(module: str) -> tuple[str, int]:
    best = "svomflow"
    for pkg in LAYERS:
        if (module == pkg or module.startswith(pkg + ".")) and len(pkg) > len(best):
            best = pkg
    return best, LAYERS[best]


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for mod, targets in GRAPH.items():
        _, rank = _layer(mod)
        for t in targets:
            trank = _layer(t)[1]
            if trank > rank:
                upward.append(f"{mod} -> {t}")
    assert not upward, f"{len(upward)} upward import(s):\n" + "\n".join(sorted(upward))


def test_only_the_simulator_and_its_commands_import_simulation() -> None:
    offenders = [
        f"{mod} -> {t}"
        for mod, targets in GRAPH.items()
        for t in targets
        if t.startswith("svomflow.simulation")
        and not mod.startswith("svomflow.simulation")
        and mod not in SIMULATION_USERS
    ]
    assert not offenders, "\n".join(sorted(offenders))


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components over the module graph
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10_000)
    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_layer_table_covers_every_package() -> None:
    top = {".".join(m.split(".")[:2]) for m in MODULES if m.count(".") >= 1}
    unknown = sorted(
        p for p in top if p not in LAYERS and p.rpartition(".")[2] not in _ROOT_MODULES
    )
    assert not unknown, f"packages missing from LAYERS: {unknown}"


_ROOT_MODULES = {"errors", "paths", "numba_policy", "array_cache", "atomic", "collector"}


def test_a_known_violation_would_be_caught(tmp_path: Path) -> None:
    # the checker itself: an upward import written in a lower layer is seen
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from svomflow.flows.adapter import run_pipeline\n")
    found = _imports(src, "svomflow.products.fake")
    assert "svomflow.flows.adapter" in found
    assert _layer("svomflow.flows.adapter")[1] > _layer("svomflow.products.fake")[1]
