import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest
from svomflow.numba_policy import cache_enabled, kernel, parallel_kernel


def test_cache_switch(monkeypatch) -> None:
    monkeypatch.delenv("SVOMFLOW_NUMBA_CACHE", raising=False)
    assert cache_enabled()
    for off in ("0", "false", "NO"):
        monkeypatch.setenv("SVOMFLOW_NUMBA_CACHE", off)
        assert not cache_enabled()


def test_kernels_follow_policy() -> None:
    @kernel
    def add(a, b):
        return a + b

    @parallel_kernel
    def total(x):
        s = 0.0
        for i in numba.prange(x.size):
            s += x[i]
        return s

    assert add(2, 3) == 5
    assert total(np.arange(10.0)) == 45.0
    assert add.targetoptions["nogil"] is True
    assert add.targetoptions.get("fastmath", False) is False
    assert total.targetoptions["parallel"] is True


def test_declared_signatures_compile_at_definition_and_fix_the_types() -> None:
    @kernel(signatures=["(float64[::1], float64)"])
    def scaled_sum(x, k):
        return x.sum() * k

    if not hasattr(scaled_sum, "signatures"):
        pytest.skip("NUMBA_DISABLE_JIT: plain Python")
    assert len(scaled_sum.signatures) == 1  # compiled before any call
    assert scaled_sum(np.arange(4.0), 2) == 12.0  # a scalar is converted
    with pytest.raises(TypeError):
        scaled_sum(np.arange(4), 2.0)  # an array of another dtype is refused, not compiled
    assert len(scaled_sum.signatures) == 1


def test_cache_goes_to_a_writable_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    mod = tmp_path / "kmod.py"
    mod.write_text(
        textwrap.dedent(
            """
            from svomflow.numba_policy import kernel
            @kernel
            def sq(x):
                return x * x
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(SVOMFLOW_HOME=str(home), PYTHONPATH=str(tmp_path))
    code = "import kmod; assert kmod.sq(3) == 9"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    cached = list((home / "numba_cache").rglob("*.nbi"))
    assert cached, "no numba cache index written under SVOMFLOW_HOME/numba_cache"
    env["SVOMFLOW_NUMBA_CACHE"] = "0"
    home2 = tmp_path / "home2"
    env["SVOMFLOW_HOME"] = str(home2)
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    assert not list(home2.rglob("*.nbi"))
