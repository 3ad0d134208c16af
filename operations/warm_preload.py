"""Preload of the warm runner's forkserver: importing this module warms the process.

``multiprocessing``'s forkserver imports the modules of its preload list once, before it
forks any child; :func:`svomflow.operations.warm_runner.start_warm_server` lists this one.
Its import loads the served flows named by ``$SVOMFLOW_WARM_MODULES`` and the cached
kernels (:func:`~svomflow.operations.warm_runner.preload`). Import it nowhere else.
"""

from __future__ import annotations

from svomflow.operations.warm_runner import preload_from_environment

__all__: list[str] = []

preload_from_environment()
