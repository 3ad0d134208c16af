"""Every flow's pipeline keeps the step contract (ARCHITECTURE.md §3, §6).

Walks the pipeline definition of each registered flow: every step declares its config (a
``StepConfig`` found in the flow's configuration), its calibration (CALDB codes with a
loader and an ``override_<code>`` field) and its outputs (catalogue codes); no step module
imports Prefect, the product store or the CALDB.
"""

from __future__ import annotations

import ast
import inspect
import sys

import pytest
from svomflow.calibration.codes import CODES
from svomflow.config.base import StepConfig
from svomflow.flows.registry import REGISTRY
from svomflow.products.catalogue import all_types
from svomflow.tasks.step import Pipeline, Step, config_sections, override_field

SPECS = sorted(REGISTRY.values(), key=lambda s: s.name)

# what a step module must not import: orchestration, product writing, calibration lookup
FORBIDDEN = ("prefect", "svomflow.products.store", "svomflow.products.catalogue.publish",
             "svomflow.calibration.caldb", "svomflow.flows")  # fmt: skip


def test_every_flow_is_built_on_a_pipeline() -> None:
    missing = [s.name for s in SPECS if s.pipeline is None]
    assert not missing, f"flows without a pipeline definition: {missing}"


NAMES = [s.name for s in SPECS]


def _pipeline(name: str) -> Pipeline:  # type: ignore[type-arg]
    pipeline = REGISTRY[name].load_pipeline()
    assert isinstance(pipeline, Pipeline), f"{name}: {REGISTRY[name].pipeline} is not a Pipeline"
    return pipeline


@pytest.mark.parametrize("name", NAMES)
def test_every_step_declares_config_calibration_and_outputs(name: str) -> None:
    pipeline = _pipeline(name)
    assert pipeline.flow_name == name
    assert pipeline.steps, f"{name}: no steps"
    types = all_types()
    config = pipeline.config()
    names = [s.name for s in pipeline.steps]
    assert len(names) == len(set(names)), f"{name}: step names repeat: {names}"
    for s in pipeline.steps:
        assert isinstance(s, Step)
        assert issubclass(s.config, StepConfig), f"{s.name}: config is not a StepConfig"
        assert config_sections(config, s.config), (
            f"{name}.{s.name}: the flow config {type(config).__name__} has no "
            f"{s.config.__name__} section"
        )
        for code in s.calibration:
            assert code.upper() in CODES, f"{s.name}: CALDB code {code} has no loader"
            assert override_field(code) in s.config.model_fields
        assert s.outputs or s.inputs, f"{s.name}: neither inputs nor outputs"
        for code in s.outputs:
            assert code in types, f"{name}.{s.name}: output {code} is not in the catalogue"


@pytest.mark.parametrize("name", NAMES)
def test_no_step_module_imports_prefect_the_store_or_the_caldb(name: str) -> None:
    pipeline = _pipeline(name)
    offenders = []
    for s in pipeline.steps:
        src = inspect.getsource(sys.modules[s.module])
        for node in ast.walk(ast.parse(src)):
            mods: list[str] = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            for m in mods:
                if any(m == f or m.startswith(f + ".") for f in FORBIDDEN):
                    offenders.append(f"{s.module} (step {s.name}) imports {m}")
    assert not offenders, "\n".join(sorted(set(offenders)))


def test_the_contract_rejects_a_step_without_its_override_field() -> None:
    from svomflow.tasks.step import step

    class Plain(StepConfig):
        pass

    with pytest.raises(TypeError, match="override_gain"):

        @step(name="x", config=Plain, calibration=("GAIN",))
        def x(data: int, *, config: Plain, calibration: object) -> int:
            return data

    with pytest.raises(TypeError, match="'config' parameter"):

        @step(name="y", config=Plain)
        def y(data: int) -> int:
            return data
