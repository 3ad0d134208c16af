"""Local CALDB: registration into the tree, immutable index versions, supersede, integrity."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from svomflow.calibration.caldb import CalibrationIntegrityError, open_caldb, select
from svomflow.errors import CalibrationNotFoundError, InputDataError

OBS = "2024-09-01T00:00:00"


def reg(caldb, path, valid_from, **kw):
    kw.setdefault("telescope", "SVOM")
    kw.setdefault("instrument", "ECLAIRS")
    kw.setdefault("codename", "GAIN")
    return caldb.register(path, valid_from=valid_from, **kw)


def test_register_copies_checksums_and_versions(caldb, make_file):
    src = make_file("gain_v1.fits")
    e = reg(caldb, src, "2024-01-01", boundaries=["ENERG(4-150)keV"], description="first gain")
    assert e.id == 1 and e.index_version == 1 and e.registered_version == 1
    assert e.path == caldb.root / "data/svom/eclairs/bcf/gain_v1_20240101_v1.fits"
    assert e.path.read_bytes() == src.read_bytes()
    assert not os.access(e.path, os.W_OK) or os.geteuid() == 0  # read-only copy
    import hashlib

    assert e.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert e.valid_from.isoformat() == "2024-01-01T00:00:00+00:00"
    assert caldb.index_version == 1
    # A different file under the same name does not overwrite the first one.
    src.write_text("another content\n")
    e2 = reg(caldb, src, "2024-06-01")
    assert e2.path.name == "gain_v1_20240601_v2.fits" and e.verify() is e
    assert caldb.index_version == 2


def test_register_rejects_bad_input(caldb, make_file, tmp_path):
    src = make_file("g.fits")
    with pytest.raises(InputDataError):
        reg(caldb, tmp_path / "missing.fits", "2024-01-01")
    with pytest.raises(ValueError, match="quality"):
        reg(caldb, src, "2024-01-01", quality=-1)
    with pytest.raises(ValueError, match="ISO 8601"):
        reg(caldb, src, "yesterday")
    with pytest.raises(ValueError, match="not of the form"):
        reg(caldb, src, "2024-01-01", boundaries=["ENERG 4-150"])
    with pytest.raises(ValueError, match="instrument"):
        reg(caldb, src, "2024-01-01", instrument="")
    assert caldb.index_version == 0  # nothing half-registered


def test_supersede_and_reproduce_old_context(caldb, make_file):
    a = reg(caldb, make_file("a.fits"), "2024-01-01")
    b = reg(caldb, make_file("b.fits"), "2024-06-01")
    assert caldb.select("GAIN", instrument="ECLAIRS", time=OBS).id == b.id
    context = caldb.index_version  # what a product would have recorded
    sup = caldb.supersede(b)
    assert sup.quality == 5 and sup.index_version == context + 1
    assert caldb.select("GAIN", instrument="ECLAIRS", time=OBS).id == a.id
    # The old calibration context is reproduced exactly.
    old = caldb.select("GAIN", instrument="ECLAIRS", time=OBS, index_version=context)
    assert old.id == b.id and old.quality == 0 and old.index_version == context
    # A new file after the supersede wins from now on, but not in the old contexts.
    c = reg(caldb, make_file("c.fits"), "2024-06-01")
    assert caldb.select("GAIN", instrument="ECLAIRS", time=OBS).id == c.id
    assert (
        caldb.select("GAIN", instrument="ECLAIRS", time=OBS, index_version=context + 1).id == a.id
    )
    # Restoring quality 0 is another new version; the tie on valid_from goes to c (newer).
    caldb.set_quality(b, 0)
    assert caldb.select("GAIN", instrument="ECLAIRS", time=OBS).id == c.id
    assert [e.quality for e in caldb.list(all_qualities=True)] == [0, 0, 0]
    assert [e.id for e in caldb.list(index_version=context + 1)] == [a.id]
    with pytest.raises(CalibrationNotFoundError, match="does not exist"):
        caldb.select("GAIN", instrument="ECLAIRS", time=OBS, index_version=99)
    with pytest.raises(ValueError, match="non-zero"):
        caldb.supersede(a, quality=0)
    with pytest.raises(CalibrationNotFoundError):
        caldb.supersede(42)


def test_index_tables_are_append_only(caldb, make_file):
    reg(caldb, make_file("a.fits"), "2024-01-01")
    con = sqlite3.connect(caldb.db_path)
    try:
        for sql in (
            "UPDATE entries SET valid_from = '2020-01-01'",
            "DELETE FROM quality_events",
            "UPDATE versions SET action = 'x'",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(sql)
    finally:
        con.close()


def test_snapshots_are_written_per_version(caldb, make_file):
    reg(caldb, make_file("a.fits"), "2024-01-01")
    b = reg(caldb, make_file("b.fits"), "2024-02-01")
    caldb.supersede(b)
    v2 = json.loads((caldb.root / "index/v000002.json").read_text())
    latest = json.loads((caldb.root / "index/latest.json").read_text())
    assert v2["index_version"] == 2 and [e["quality"] for e in v2["entries"]] == [0, 0]
    assert latest == caldb.snapshot() and [e["quality"] for e in latest["entries"]] == [0, 5]


def test_changed_file_is_detected_at_select(caldb, make_file):
    e = reg(caldb, make_file("a.fits"), "2024-01-01")
    os.chmod(e.path, 0o644)
    e.path.write_text("tampered\n")
    with pytest.raises(CalibrationIntegrityError, match="changed after registration"):
        caldb.select("GAIN", instrument="ECLAIRS", time=OBS)
    e.path.unlink()
    with pytest.raises(CalibrationIntegrityError, match="missing"):
        caldb.select("GAIN", instrument="ECLAIRS", time=OBS)


def test_link_mode_and_in_tree_registration(caldb, make_file):
    src = make_file("lnk.fits")
    e = reg(caldb, src, "2024-01-01", copy=False)
    assert e.path.read_bytes() == src.read_bytes()
    # Editing the source edits the linked file: caught at select time.
    if os.stat(src).st_ino == os.stat(e.path).st_ino:
        src.write_text("edited\n")
        with pytest.raises(CalibrationIntegrityError):
            caldb.select("GAIN", instrument="ECLAIRS", time=OBS)
    # A file already inside the tree is registered where it is.
    inside = caldb.root / "data/svom/eclairs/cpf/master.fits"
    inside.parent.mkdir(parents=True)
    inside.write_text("in tree\n")
    e2 = reg(caldb, inside, "2024-01-01", codename="MASTER", cal_class="CPF")
    assert e2.path == inside and e2.relpath == "data/svom/eclairs/cpf/master.fits"


def test_open_caldb_default_location_and_module_select(svomflow_home, make_file, monkeypatch):
    monkeypatch.delenv("SVOMFLOW_CALDB", raising=False)
    db = open_caldb()
    assert db.root == (svomflow_home / "caldb").resolve()
    e = reg(db, make_file("a.fits"), "2024-01-01")
    assert select("gain", instrument="eclairs", time=OBS).id == e.id
    monkeypatch.setenv("SVOMFLOW_CALDB", str(svomflow_home / "other"))
    assert open_caldb().root == (svomflow_home / "other").resolve()
    with pytest.raises(CalibrationNotFoundError):
        select("gain", instrument="eclairs", time=OBS)


def test_fits_extension_is_detected(caldb, tmp_path):
    from astropy.io import fits

    p = tmp_path / "psf.fits"
    hdus = [fits.PrimaryHDU()]
    for name in ("OTHER", "PSF"):
        h = fits.BinTableHDU.from_columns([fits.Column(name="X", format="E", array=[1.0])])
        h.header["EXTNAME"] = name
        hdus.append(h)
    fits.HDUList(hdus).writeto(p)
    assert reg(caldb, p, "2024-01-01", codename="PSF").extension == 2
    assert reg(caldb, p, "2024-01-01", codename="ARF").extension == 1
