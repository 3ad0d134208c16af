"""Generate ``docs/products.md`` from the product catalogue and the flows' pipelines.

``python -m svomflow.flows.catalogue_docs > docs/products.md`` rewrites it; a test fails
when the committed file differs from what this module renders, so the page never drifts
from the code. For every product type it says which flow and step make it and which files
hold its declaration and its step; the calibration codes follow, with the steps using them.
"""

from __future__ import annotations

import sys
from collections import defaultdict

from svomflow.calibration.codes import CODES
from svomflow.flows.registry import REGISTRY
from svomflow.products.catalogue import PREVIEW_SUFFIX, TextModel, all_types

__all__ = ["render", "source_file"]

_HEADER = """# Products

Generated from the product catalogue (`svomflow.products.catalogue`) and the flows'
pipelines by `python -m svomflow.flows.catalogue_docs > docs/products.md`; do not edit
(a test compares this page with the code). How to add a product or a step:
`docs/steps.md`.
"""


def source_file(module: str) -> str:
    """Return the repository path of a module (``svomflow.tasks.x`` -> ``tasks/x.py``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return "foundation/__init__.py"
    if parts[1] in ("errors", "paths", "numba_policy"):
        return f"foundation/{parts[1]}.py"
    return "/".join(parts[1:]) + ".py"


def _makers() -> dict[str, list[tuple[str, str, str]]]:
    """Type code -> [(flow, step, step file)] from every registered pipeline."""
    out: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for spec in sorted(REGISTRY.values(), key=lambda s: s.name):
        pipeline = spec.load_pipeline()
        if pipeline is None:
            continue
        for step in pipeline.steps:
            for code in step.outputs:
                out[code].append((spec.name, step.name, source_file(step.module)))
    return out


def _users() -> dict[str, list[str]]:
    """CALDB code -> ["flow/step"] from every registered pipeline."""
    out: dict[str, list[str]] = defaultdict(list)
    for spec in sorted(REGISTRY.values(), key=lambda s: s.name):
        pipeline = spec.load_pipeline()
        if pipeline is None:
            continue
        for step in pipeline.steps:
            for code in step.calibration:
                out[code.upper()].append(f"{spec.name}/{step.name}")
    return out


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|")


def render() -> str:
    """Return the markdown of ``docs/products.md``."""
    types = all_types()
    makers = _makers()
    lines = [_HEADER, "## Product types", ""]
    lines += ["| code | instruments | what | made by |", "|---|---|---|---|"]
    for code, t in sorted(types.items()):
        if code.endswith(PREVIEW_SUFFIX):
            continue
        made = ", ".join(f"{f} / {s}" for f, s, _ in makers.get(code, [])) or "-"
        lines.append(
            f"| [{code}](#{code.lower()}) | {', '.join(t.instruments)} | "
            f"{_cell(t.description)} | {made} |"
        )
    lines.append("")
    for code, t in sorted(types.items()):
        if code.endswith(PREVIEW_SUFFIX):
            continue
        lines += [f"### {code}", "", t.description, ""]
        lines.append(f"- instruments: {', '.join(f'`{i}`' for i in t.instruments)}")
        ext = t.ext or ("html, md, json or xml" if t.model is TextModel else t.model.ext)
        lines.append(f"- data model: `{t.model.__name__}` (`.{ext}`)")
        lines.append(f"- declared in: `{source_file(t.module)}`")
        for flow, step, path in makers.get(code, []):
            lines.append(f"- made by: flow `{flow}`, step `{step}` (`{path}`)")
        if t.extensions:
            lines.append(f"- extensions: {', '.join(f'`{e}`' for e in t.extensions)}")
        if t.preview is not None:
            lines.append(f"- preview: `{code}{PREVIEW_SUFFIX}` (PNG)")
        if t.keywords:
            lines += ["", "| keyword | value | comment | HDU |", "|---|---|---|---|"]
            for k in t.keywords:
                value = "" if k.value is None else f"`{k.value!r}`"
                lines.append(f"| `{k.name}` | {value} | {_cell(k.comment)} | {k.hdu or 'any'} |")
        lines.append("")
    users = _users()
    lines += ["## Calibration files (CALDB code names)", ""]
    lines += ["| code | what | loaded by | used by |", "|---|---|---|---|"]
    for code, c in sorted(CODES.items()):
        module, func = c.loader.split(":")
        lines.append(
            f"| `{code}` | {_cell(c.description)} | `{func}` (`{source_file(module)}`) | "
            f"{', '.join(users.get(code, [])) or '-'} |"
        )
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
