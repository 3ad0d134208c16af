import math

import pytest
from svomflow.config import available_instruments, load_instrument
from svomflow.errors import ConfigError


def test_all_packaged_instruments_load_and_label_assumptions() -> None:
    names = available_instruments()
    assert {"eclairs", "grm", "mxt", "colibri_ddrago_b"} <= set(names)
    for name in names:
        inst = load_instrument(name)
        assert inst.assumptions, f"{name} labels no assumption"


def test_public_figures_match_science_reference() -> None:
    ecl = load_instrument("eclairs")
    assert ecl.get("detector_plane.npix_y") * ecl.get("detector_plane.npix_z") == 6400
    assert ecl.get("detector_plane.pixel_pitch_mm") == 4.0
    assert ecl.get("energy_range_kev") == [4.0, 150.0]
    assert ecl.get("mask.open_fraction") == 0.40
    assert not ecl.is_assumption("mask.open_fraction")
    grm = load_instrument("grm")
    assert len(grm.get("detectors")) == 3
    assert {d["tilt_deg"] for d in grm.get("detectors")} == {30.0}
    assert grm.get("crystal.resolution_fwhm_at_60kev") == 0.16
    mxt = load_instrument("mxt")
    scale = math.degrees(mxt.get("ccd.pixel_size_um") * 1e-6 / mxt.get("optics.focal_length_m"))
    assert scale * 3600 == pytest.approx(mxt.get("ccd.pixel_scale_arcsec"), rel=0.01)


def test_assumed_mask_geometry_gives_the_public_field_of_view() -> None:
    ecl = load_instrument("eclairs")
    half_det = ecl.get("detector_plane.npix_y") * ecl.get("detector_plane.pixel_pitch_mm") / 2
    half_mask = ecl.get("mask.n_elements") * ecl.get("mask.element_mm") / 2
    fov = 2 * math.degrees(math.atan((half_det + half_mask) / ecl.get("mask.height_mm")))
    assert fov == pytest.approx(ecl.get("mask.field_of_view_deg"), abs=1.0)
    assert ecl.is_assumption("mask.height_mm")


def test_unknown_instrument_and_key() -> None:
    with pytest.raises(ConfigError, match="unknown instrument"):
        load_instrument("batse")
    with pytest.raises(ConfigError, match="no key"):
        load_instrument("mxt").get("optics.nope")
