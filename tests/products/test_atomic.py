import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from svomflow.atomic import atomic_path, atomic_write_bytes, sha256_file


def test_failed_block_keeps_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "p.fits"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"new but broken")
        raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["p.fits"]


def test_process_killed_half_way_leaves_previous_state(tmp_path: Path) -> None:
    target = tmp_path / "product.fits"
    atomic_write_bytes(target, b"previous product")
    before = sha256_file(target)
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from svomflow.atomic import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(b"x" * 1_000_000)
                fh.flush()
                Path({str(ready)!r}).write_text("1")
                time.sleep(60)
                fh.write(b"never")
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(600):
            if ready.exists():
                break
            time.sleep(0.05)
        assert ready.exists(), "writer never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert sha256_file(target) == before
    # the half-written temporary file is hidden (dot prefix) and not the product
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in {"product.fits", "ready"}]
    assert all(name.startswith(".tmp-product.fits.") for name in leftovers)


def test_new_content_replaces_target(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.bin"
    atomic_write_bytes(target, b"1")
    atomic_write_bytes(target, b"22")
    assert target.read_bytes() == b"22"
