"""numba kernels of the simulators (sequential steps that NumPy cannot vectorise)."""

from __future__ import annotations

import numpy as np
from svomflow.numba_policy import kernel

__all__ = ["nonparalyzable_deadtime"]


@kernel
def nonparalyzable_deadtime(times: np.ndarray, tau: float) -> np.ndarray:
    """Return a keep-mask for time-sorted events under a non-paralyzable dead time ``tau``.

    An event is recorded when it arrives at least ``tau`` after the last *recorded* event;
    events inside the dead window are lost and do not extend it.
    """
    n = times.size
    keep = np.zeros(n, dtype=np.bool_)
    last = -np.inf
    for i in range(n):
        if times[i] - last >= tau:
            keep[i] = True
            last = times[i]
    return keep
