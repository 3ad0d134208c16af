"""The product catalogue loads its declarations once, safely from several threads."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# A fresh interpreter: the table is loaded once per process, so the race only exists there.
SCRIPT = textwrap.dedent(
    """
    import threading
    from svomflow.products.catalogue import registry
    from svomflow.products.catalogue.registry import DECLARATIONS

    barrier = threading.Barrier(8)
    failures = []

    def lookup():
        barrier.wait()
        try:
            registry.product_type("OBLC")  # declared by one of the last modules loaded
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=lookup) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(len(failures), len(registry.all_types()))
    """
)


def test_first_lookups_from_eight_threads_all_find_the_type() -> None:
    """Eight threads asking for a VHF type at once in a fresh process all find it."""
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=120
    ).stdout.split()
    failures, n_types = int(out[0]), int(out[1])
    assert failures == 0
    assert n_types > 40  # every family declared, not a partial table
