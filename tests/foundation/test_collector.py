"""The garbage-collector policy of svomflow commands: paused while importing, frozen after."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest
from svomflow import collector


def _in_a_fresh_process(code: str, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_without_the_policy_imports_frozen_leaves_the_host_process_alone() -> None:
    # a test session or notebook calling a command's function: its heap is not frozen
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    with collector.imports_frozen():
        assert gc.isenabled() is enabled
        made = [[i] for i in range(1000)]
    assert gc.isenabled() is enabled and gc.get_freeze_count() == frozen
    assert len(made) == 1000


@pytest.mark.parametrize("enabled_before", [True, False])
def test_imports_frozen_pauses_the_collector_and_freezes_what_the_block_made(
    enabled_before: bool,
) -> None:
    out = _in_a_fresh_process(
        """
        import gc, sys
        from svomflow import collector
        collector.adopt()
        (gc.enable if sys.argv[1] == "True" else gc.disable)()
        before = gc.get_freeze_count()
        with collector.imports_frozen():
            paused = not gc.isenabled()
            made = [[i] for i in range(1000)]
        print(paused, gc.isenabled(), gc.get_freeze_count() - before >= len(made))
        """,
        str(enabled_before),
    )
    assert out.split() == ["True", str(enabled_before), "True"]


def test_imports_frozen_restores_the_collector_when_the_block_fails() -> None:
    out = _in_a_fresh_process(
        """
        import gc
        from svomflow import collector
        collector.adopt()
        try:
            with collector.imports_frozen():
                raise ImportError("no such module")
        except ImportError:
            print(gc.isenabled())
        """
    )
    assert out.split() == ["True"]


@pytest.mark.parametrize(("adopted", "collected"), [(False, True), (True, False)])
def test_an_adopted_policy_leaves_nothing_for_the_final_collection(
    adopted: bool, collected: bool
) -> None:
    # the shutdown's collection finds an unreachable cycle only without the policy: with it,
    # that collection scans nothing (the CPU it saves is measured in bench_cold_start)
    out = _in_a_fresh_process(
        """
        import sys
        from svomflow import collector
        if sys.argv[1] == "True":
            collector.adopt()
        class Cycle:
            def __del__(self):
                print("collected", flush=True)
        c = Cycle()
        c.itself = c
        del c
        """,
        str(adopted),
    )
    assert ("collected" in out) is collected
