"""Cross-process array cache: exact round trip, keys follow inputs, corrupt and old files."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from svomflow import array_cache
from svomflow.array_cache import cached_arrays, digest, digested_sources, source_digest
from svomflow.atomic import TMP_PREFIX

V = "code-1"


def _compute(calls: list[int]) -> dict[str, np.ndarray]:
    calls.append(1)
    rng = np.random.default_rng(3)
    return {"a": rng.normal(size=(50, 3)), "b": np.arange(7, dtype=np.int32)}


def test_stored_arrays_are_identical_and_read_without_recomputing(tmp_path: Path) -> None:
    calls: list[int] = []
    first = cached_arrays("t", digest("k"), lambda: _compute(calls), version=V, folder=tmp_path)
    again = cached_arrays("t", digest("k"), lambda: _compute(calls), version=V, folder=tmp_path)
    assert len(calls) == 1
    assert set(again) == {"a", "b"}
    for k in first:
        assert again[k].dtype == first[k].dtype
        np.testing.assert_array_equal(again[k], first[k])
    # nothing but the one file is left in the folder (the temporary file was renamed)
    assert [p.name for p in tmp_path.iterdir()] == [_name("t", V, digest("k"))]


def test_corrupt_file_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    calls: list[int] = []
    key = digest("k")
    cached_arrays("t", key, lambda: _compute(calls), version=V, folder=tmp_path)
    path = tmp_path / _name("t", V, key)
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a full disk
    with pytest.warns(RuntimeWarning, match="unreadable cache file"):
        out = cached_arrays("t", key, lambda: _compute(calls), version=V, folder=tmp_path)
    assert len(calls) == 2
    np.testing.assert_array_equal(out["a"], _compute([])["a"])
    # rewritten whole: the next read needs no computation
    cached_arrays("t", key, lambda: _compute(calls), version=V, folder=tmp_path)
    assert len(calls) == 2


def test_a_file_holding_another_key_is_not_trusted(tmp_path: Path) -> None:
    calls: list[int] = []
    cached_arrays("t", digest("k1"), lambda: _compute(calls), version=V, folder=tmp_path)
    (tmp_path / _name("t", V, digest("k1"))).rename(tmp_path / _name("t", V, digest("k2")))
    with pytest.warns(RuntimeWarning, match="another key"):
        cached_arrays("t", digest("k2"), lambda: _compute(calls), version=V, folder=tmp_path)
    assert len(calls) == 2


@dataclasses.dataclass(frozen=True)
class _Geom:
    area: float
    edges: tuple[float, ...]


def test_digest_changes_with_any_number_and_is_stable() -> None:
    base = (_Geom(120.0, (8.0, 30.0)), {"d1": np.array([1.0, 0.0, 0.0])}, (50.0, 300.0), 20000)
    assert digest(*base) == digest(*base)
    changed = [
        (_Geom(120.0 + 1e-12, (8.0, 30.0)), *base[1:]),  # below repr's usual rounding
        (_Geom(120.0, (8.0, 30.5)), *base[1:]),
        (base[0], {"d1": np.array([1.0, 0.0, 1e-9])}, *base[2:]),
        (base[0], {"d2": np.array([1.0, 0.0, 0.0])}, *base[2:]),
        (*base[:2], (50.0, 350.0), base[3]),
        (*base[:3], 20001),
    ]
    keys = {digest(*c) for c in changed}
    assert len(keys) == len(changed) and digest(*base) not in keys
    # the same numbers as float32 are another array
    assert digest(np.zeros(3)) != digest(np.zeros(3, dtype=np.float32))


def test_digest_refuses_objects_without_an_exact_form() -> None:
    with pytest.raises(TypeError):
        digest(object())


def _name(name: str, version: str, key: str) -> str:
    return f"{name}-{digest(array_cache.FORMAT, version)[:16]}-{key}.npz"


def _store(folder: Path, name: str, key: str, version: str = V, **kw: int) -> None:
    cached_arrays(name, digest(key), lambda: _compute([]), version=version, folder=folder, **kw)


def test_a_new_version_deletes_the_files_of_older_versions_and_layouts(tmp_path: Path) -> None:
    _store(tmp_path, "t", "k1", "code-1")
    _store(tmp_path, "t", "k2", "code-1")
    _store(tmp_path, "other", "k1", "code-1")  # another name: not touched
    unversioned = tmp_path / f"t-{digest('k0')}.npz"  # the layout before versions
    unversioned.write_bytes(b"old")
    assert len(list(tmp_path.glob("t-*.npz"))) == 3
    _store(tmp_path, "t", "k1", "code-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [_name("t", "code-2", digest("k1")), _name("other", "code-1", digest("k1"))]
    )


def test_only_the_most_recently_used_files_of_a_version_are_kept(tmp_path: Path) -> None:
    for k in range(3):
        _store(tmp_path, "t", f"k{k}", keep=3)
        os.utime(tmp_path / _name("t", V, digest(f"k{k}")), (1000.0 + k, 1000.0 + k))
    _store(tmp_path, "t", "k0", keep=3)  # a hit: k0 becomes the most recently used
    _store(tmp_path, "t", "k3", keep=3)  # a new file: the least recently used (k1) goes
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {_name("t", V, digest(k)) for k in ("k0", "k2", "k3")}


def test_temporary_files_of_killed_writers_are_deleted_when_old(tmp_path: Path) -> None:
    old = tmp_path / f"{TMP_PREFIX}t-{'0' * 16}-{'1' * 64}.npz.abc"
    fresh = tmp_path / f"{TMP_PREFIX}t-{'0' * 16}-{'2' * 64}.npz.def"  # a write in progress
    for p in (old, fresh):
        p.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    _store(tmp_path, "t", "k")
    assert not old.exists() and fresh.exists()


def test_a_key_must_be_a_digest(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="digest"):
        cached_arrays("t", "k", lambda: _compute([]), version=V, folder=tmp_path)


def test_digested_sources_list_the_modules_read_and_the_cache_itself() -> None:
    source_digest(sys.modules[__name__])
    files = digested_sources()
    assert Path(__file__).resolve() in files
    assert Path(array_cache.__file__).resolve() in files
