"""The wheel carries every module of every top-level folder under the one svomflow namespace."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _package_dirs() -> dict[str, str]:
    """Folder -> wheel prefix, read from pyproject's package-dir (the one mapping)."""
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())
    dirs = cfg["tool"]["setuptools"]["package-dir"]
    return {folder: pkg.replace(".", "/") for pkg, folder in dirs.items()}


MAPPING = _package_dirs()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (whl,) = out.glob("svomflow-*.whl")
    return zipfile.ZipFile(whl)


def test_wheel_has_every_module_under_the_namespace(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    missing = []
    for folder, prefix in MAPPING.items():
        for src in (REPO / folder).rglob("*.py"):
            rel = src.relative_to(REPO / folder)
            if "__pycache__" in rel.parts:
                continue
            if f"{prefix}/{rel.as_posix()}" not in names:
                missing.append(f"{folder}/{rel}")
    assert not missing, f"not in the wheel: {missing[:10]}"
    assert not any(n.startswith(("tests/", "benchmarks/", "notebooks/")) for n in names)


def test_wheel_carries_instrument_and_pipeline_data(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for inst in ("eclairs", "grm", "mxt", "colibri_ddrago_b"):
        assert f"svomflow/config/instruments/{inst}.yaml" in names
    assert "svomflow/py.typed" in names
    entry = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "svomflow = svomflow.cli.main:main" in entry


def test_no_module_imports_bare_folder_names() -> None:
    import re

    bare = re.compile(r"^\s*(from|import)\s+(" + "|".join(MAPPING) + r")(\.|\s|$)")
    offenders = []
    for folder in MAPPING:
        for src in (REPO / folder).rglob("*.py"):
            for i, line in enumerate(src.read_text().splitlines(), 1):
                if bare.match(line):
                    offenders.append(f"{src.relative_to(REPO)}:{i}")
    assert not offenders, offenders


def test_type_checker_resolves_the_namespace(tmp_path: Path) -> None:
    """mypy follows ``svomflow.*`` into the installed package (the reason for strict mode)."""
    import svomflow

    if Path(svomflow.__file__).parent.name != "svomflow":
        pytest.skip("lenient editable install (import hook): `make test` installs strict mode")
    src = tmp_path / "use.py"
    src.write_text(
        "from svomflow.config import load_instrument\n"
        "from svomflow.tasks.timing import bayesian_blocks\n"
        "x: int = load_instrument('eclairs')\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental", str(src)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    # the deliberate error proves mypy saw the real return type
    assert 'expression has type "InstrumentDefinition"' in out.stdout, out.stdout + out.stderr
    assert "Cannot find implementation or library stub" not in out.stdout
