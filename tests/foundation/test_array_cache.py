"""Cross-process array cache: exact round trip, keys that follow their inputs, corrupt files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from svomflow.array_cache import cached_arrays, digest


def _compute(calls: list[int]) -> dict[str, np.ndarray]:
    calls.append(1)
    rng = np.random.default_rng(3)
    return {"a": rng.normal(size=(50, 3)), "b": np.arange(7, dtype=np.int32)}


def test_stored_arrays_are_identical_and_read_without_recomputing(tmp_path: Path) -> None:
    calls: list[int] = []
    first = cached_arrays("t", digest("k"), lambda: _compute(calls), folder=tmp_path)
    again = cached_arrays("t", digest("k"), lambda: _compute(calls), folder=tmp_path)
    assert len(calls) == 1
    assert set(again) == {"a", "b"}
    for k in first:
        assert again[k].dtype == first[k].dtype
        np.testing.assert_array_equal(again[k], first[k])
    # nothing but the one file is left in the folder (the temporary file was renamed)
    assert [p.name for p in tmp_path.iterdir()] == [f"t-{digest('k')}.npz"]


def test_corrupt_file_is_recomputed_with_a_warning(tmp_path: Path) -> None:
    calls: list[int] = []
    key = digest("k")
    cached_arrays("t", key, lambda: _compute(calls), folder=tmp_path)
    path = tmp_path / f"t-{key}.npz"
    path.write_bytes(path.read_bytes()[:100])  # truncated, as by a full disk
    with pytest.warns(RuntimeWarning, match="unreadable cache file"):
        out = cached_arrays("t", key, lambda: _compute(calls), folder=tmp_path)
    assert len(calls) == 2
    np.testing.assert_array_equal(out["a"], _compute([])["a"])
    # rewritten whole: the next read needs no computation
    cached_arrays("t", key, lambda: _compute(calls), folder=tmp_path)
    assert len(calls) == 2


def test_a_file_holding_another_key_is_not_trusted(tmp_path: Path) -> None:
    calls: list[int] = []
    cached_arrays("t", digest("k1"), lambda: _compute(calls), folder=tmp_path)
    (tmp_path / f"t-{digest('k1')}.npz").rename(tmp_path / f"t-{digest('k2')}.npz")
    with pytest.warns(RuntimeWarning, match="another key"):
        cached_arrays("t", digest("k2"), lambda: _compute(calls), folder=tmp_path)
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
