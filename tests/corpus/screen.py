"""Triage the corpus in-process: break each case's input and call its readers, no CLI.

A CLI case costs about a minute (interpreter, Prefect server, the whole flow); calling the
readers of the broken file directly costs a fraction of a second, so the 600 cases screen in
minutes. It finds only reader crashes (an exception that is not a user error), not
unflagged numbers or crashes further down a flow: the CLI corpus stays the test.

Usage (from the project root)::

    python -m tests.corpus.screen BASE [--first 21] [--per-family 100] [--families mxt,vhf]

where ``BASE`` is a directory prepared by :func:`tests.corpus.runner.prepare`.
"""

from __future__ import annotations

import argparse
import collections
import re
import resource
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from svomflow.errors import SvomflowError

from .report import SEED
from .runner import FAMILIES, MEMORY_LIMIT, Case, _materialise, cases, prepare


def reader_calls(key: str, path: Path) -> Iterator[tuple[str, Callable[[], object]]]:
    """Yield ``(name, call)`` for every reader the family's command applies to input ``key``."""
    from svomflow.config import load_instrument
    from svomflow.instruments.ccd_camera import load_camera
    from svomflow.products.ccd_frames import read_frame_info, read_image_header, read_raw
    from svomflow.products.eclairs_l1 import read_eclairs_l1
    from svomflow.products.events import read_events
    from svomflow.products.ogip_spectra import read_arf, read_pha, read_response_set
    from svomflow.tasks.vhf.lightcurve_input import is_lightcurve_file
    from svomflow.tasks.xray.events import read_attitude, read_pass, read_saa

    if key == "eclairs":
        yield "read_eclairs_l1", lambda: read_eclairs_l1(path)
    if key in ("eclairs", "grm"):
        # `svomflow vhf` first asks whether its inputs are binned light curves (vhf-039)
        yield "is_lightcurve_file", lambda: is_lightcurve_file(path)
        yield "read_events", lambda: read_events([path])
    elif key.startswith("mxt_pass"):
        yield "read_pass", lambda: read_pass(path, load_instrument("mxt"))
    elif key == "mxt_att":
        yield "read_attitude", lambda: read_attitude(path)
    elif key == "mxt_saa":
        yield "read_saa", lambda: read_saa(path)
    elif key == "pha":
        yield "read_pha", lambda: read_pha(path)
    elif key == "rmf":
        yield "read_response_set", lambda: read_response_set(path)
    elif key == "arf":
        yield "read_arf", lambda: read_arf(path)
    elif key in ("image", "rawframe") or key.startswith("bias"):
        yield "read_image_header", lambda: read_image_header(path)
        yield "read_frame_info", lambda: read_frame_info(path, load_camera())
        yield "read_raw", lambda: read_raw(path, load_camera())


def reader_crashes(case: Case, base: Path) -> list[str]:
    """Return the signatures of the non-user errors the readers raise on ``case``'s input."""
    found = []
    with tempfile.TemporaryDirectory() as work, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as on the command line: astropy's notes are not errors
        files, _ = _materialise(case, base, Path(work))
        for name, call in reader_calls(case.target, files[case.target]):
            try:
                call()
            except SvomflowError:
                continue
            except Exception as exc:  # anything else is what we look for
                where = traceback.extract_tb(exc.__traceback__)[-1]
                found.append(
                    f"{name}: {type(exc).__name__} at {Path(where.filename).name}:"
                    f"{where.lineno}: {str(exc)[:100]}"
                )
    return found


def main(argv: list[str] | None = None) -> int:
    """Screen the cases and print each reader crash and the distinct signatures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--per-family", type=int, default=100)
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args(argv)
    base = prepare(args.base)
    # the CLI cases run under this cap too: a reader that allocates for an absurd header
    # then fails with MemoryError (listed) instead of exhausting the machine
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    signatures: dict[str, list[str]] = collections.defaultdict(list)
    screened = 0
    for family in args.families.split(","):
        for case in cases(family, args.per_family, SEED)[args.first :]:
            screened += 1
            print(f"screening {case.name}", flush=True)
            for sig in reader_crashes(case, base):
                print(f"crash {case.name}: {sig}", flush=True)
                signatures[re.sub(r"\d+", "N", sig)].append(case.name)
    print(f"{screened} cases screened, {len(signatures)} distinct reader crash signature(s)")
    for sig, names in signatures.items():
        print(f"{len(names):4d}  {sig}  ({', '.join(names[:4])})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
