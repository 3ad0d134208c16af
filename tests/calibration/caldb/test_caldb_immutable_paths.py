"""Registered CALDB files have unique, immutable paths (issue 15, "CALDB").

The promoted master of a night used to keep its product name
(``candidate_bias_DDRAGOmB_1x1.fits``) in the CALDB; every registration now gets its own
name with the valid-from date and the index version, a name holding other bytes is never
reused, and an old index version resolves to byte-identical files after new promotions.
"""

from __future__ import annotations

import hashlib

import pytest
from svomflow.errors import InputDataError

MASTER = "candidate_bias_DDRAGOmB_1x1.fits"


def promote(caldb, src, night_start: str):
    return caldb.register(
        src,
        telescope="COLIBRI",
        instrument="COLIBRI_DDRAGO_B",
        codename="MASTER_BIAS",
        valid_from=night_start,
        description=f"master bias from night {night_start[:10]}",
    )


def test_old_index_version_resolves_to_the_same_bytes_after_a_new_promotion(caldb, make_file):
    night1 = b"SIMPLE night 1 bias " * 50
    src = make_file(MASTER)
    src.write_bytes(night1)
    first = promote(caldb, src, "2026-11-23T01:10:00")
    v1 = caldb.index_version
    # the next night's candidate of the same group: same product name, other bytes
    src.write_bytes(b"SIMPLE night 2 bias " * 50)
    second = promote(caldb, src, "2026-11-24T01:05:00")

    assert first.path.name == "candidate_bias_DDRAGOmB_1x1_20261123_v1.fits"
    assert second.path.name == "candidate_bias_DDRAGOmB_1x1_20261124_v2.fits"
    # the old index version still gives night 1's file, byte for byte
    old = caldb.select(
        "MASTER_BIAS", instrument="COLIBRI_DDRAGO_B", time="2026-11-25", index_version=v1
    )
    assert old.path == first.path and old.path.read_bytes() == night1
    assert hashlib.sha256(old.path.read_bytes()).hexdigest() == old.sha256
    (snap_entry,) = caldb.snapshot(v1)["entries"]
    assert (caldb.root / snap_entry["relpath"]).read_bytes() == night1
    new = caldb.select("MASTER_BIAS", instrument="COLIBRI_DDRAGO_B", time="2026-11-25")
    assert new.id == second.id and new.path.read_bytes() == src.read_bytes()


def test_a_name_holding_other_bytes_is_refused_not_reused(caldb, make_file):
    first = promote(caldb, make_file(MASTER, "night 1\n"), "2026-11-23T01:10:00")
    registered = caldb.root / first.relpath
    assert registered.stat().st_mode & 0o222 == 0  # read-only
    # bytes changed behind the index's back (root ignores the mode) cannot be registered
    # again under the registered name
    registered.chmod(0o644)
    registered.write_text("tampered\n")
    with pytest.raises(InputDataError, match=r"registered with other bytes"):
        promote(caldb, registered, "2026-11-24T01:05:00")
    assert caldb.index_version == 1  # nothing registered


def test_an_unregistered_file_at_the_next_name_is_set_aside(caldb, make_file):
    """What a registration killed before its commit placed: moved to orphans/, not reused."""
    promote(caldb, make_file(MASTER, "night 1\n"), "2026-11-23T01:10:00")
    target = (
        caldb.root
        / "data/colibri/colibri_ddrago_b/bcf/candidate_bias_DDRAGOmB_1x1_20261124_v2.fits"
    )
    target.write_bytes(b"left by a killed registration")
    entry = promote(caldb, make_file(MASTER, "night 2\n"), "2026-11-24T01:05:00")
    assert (caldb.root / entry.relpath).read_text() == "night 2\n"
    (aside,) = (caldb.root / "orphans").iterdir()
    assert aside.read_bytes() == b"left by a killed registration"
    assert caldb.index_version == 2


def test_a_failed_registration_leaves_no_file(caldb, make_file, monkeypatch):
    promote(caldb, make_file(MASTER, "night 1\n"), "2026-11-23T01:10:00")
    bcf = caldb.root / "data/colibri/colibri_ddrago_b/bcf"
    before = sorted(p.name for p in bcf.iterdir())

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(caldb), "_write_snapshot", boom)
    with pytest.raises(OSError, match="disk full"):
        promote(caldb, make_file("night2.fits", "night 2\n"), "2026-11-24T01:05:00")
    assert sorted(p.name for p in bcf.iterdir()) == before  # no file, no .tmp left
    assert caldb.index_version == 1


def test_a_file_in_the_tree_cannot_be_registered_again_with_other_bytes(caldb, make_file):
    inside = caldb.root / "data/colibri/colibri_ddrago_b/bcf/master_bias.fits"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"first bytes")
    first = promote(caldb, inside, "2026-11-23T01:10:00")
    assert first.relpath.endswith("bcf/master_bias.fits")  # registered where it is
    inside.chmod(0o644)
    inside.write_bytes(b"edited in place")
    with pytest.raises(InputDataError, match="registered with other bytes"):
        promote(caldb, inside, "2026-11-24T01:05:00")
    assert caldb.index_version == 1
