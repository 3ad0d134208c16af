"""`svomflow warm --stamp` lists what the warmed caches depend on (make warm's prerequisites)."""

from __future__ import annotations

from pathlib import Path

import pytest
from numba.core.dispatcher import Dispatcher
from svomflow import array_cache, numba_policy
from svomflow.array_cache import source_digest
from svomflow.cli.warm_cmd import warmed_sources
from svomflow.instruments import spectra
from svomflow.tasks.coded_mask import _kernels as coded_mask_kernels


def test_warmed_sources_list_kernel_modules_and_the_array_cache_versions() -> None:
    source_digest(spectra)  # a module whose source versions a cached computation
    files = warmed_sources()
    for module in (spectra, array_cache, numba_policy):
        assert Path(module.__file__).resolve() in files
    if not isinstance(coded_mask_kernels.accumulate_shadowgram, Dispatcher):
        pytest.skip("NUMBA_DISABLE_JIT: no compiled kernels")
    # its types are declared: compiled (or loaded) at import, so in the cache
    assert Path(coded_mask_kernels.__file__).resolve() in files
    assert all(f.is_file() and f.suffix == ".py" for f in files)
