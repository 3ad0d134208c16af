"""Other missions' notices -> GP1 follow-up requests: pointing, tiling of circles, ellipses, sky maps."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from svomflow.errors import InputDataError
from svomflow.instruments.ccd_camera import load_camera
from svomflow.products.alert_messages import AlertFormatError, parse_notice
from svomflow.tasks.alerts.followup import FollowupConfig, FollowupRequest, followup_request

DATA = Path(__file__).parent / "data"


def _plane(ra, dec, ra0, dec0):
    """Gnomonic coordinates (deg) of (ra, dec) about (ra0, dec0) (an independent formula)."""
    a, d, a0, d0 = (np.radians(v) for v in (ra, dec, ra0, dec0))
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    x = np.cos(d) * np.sin(a - a0) / cosc
    y = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(x), np.degrees(y)


def _covered_fraction(req: FollowupRequest, ra: np.ndarray, dec: np.ndarray) -> float:
    """Fraction of sky positions inside any of the request's camera fields."""
    fx, fy = (f / 60.0 for f in req.field_arcmin)
    inside = np.zeros(ra.size, bool)
    for t in req.tiles:
        x, y = _plane(ra, dec, t.ra_deg, t.dec_deg)
        inside |= (np.abs(x) <= fx / 2) & (np.abs(y) <= fy / 2)
    return float(inside.mean())


def _gaussian_draws(ra0, dec0, sa, sb, pa_deg, n, seed):
    """Positions drawn from the 2-D Gaussian of a region (tangent plane, small regions)."""
    rng = np.random.default_rng(seed)
    u, v = rng.normal(0, sa, n), rng.normal(0, sb, n)  # along the major, minor axis
    pa = math.radians(pa_deg)
    x = u * math.sin(pa) + v * math.cos(pa)
    y = u * math.cos(pa) - v * math.sin(pa)
    return ra0 + x / math.cos(math.radians(dec0)), dec0 + y


def test_gcn_notices_of_four_missions_are_parsed() -> None:
    swift = parse_notice((DATA / "swift_bat_guano.json").read_bytes())
    assert (swift.mission, swift.instrument, swift.event_id) == ("Swift", "BAT-GUANO", "1321468")
    assert swift.region is not None and swift.region.kind == "circle"
    assert swift.region.radius_deg == pytest.approx(0.0583)
    gbm = parse_notice((DATA / "fermi_gbm_final_position.json").read_bytes())
    assert gbm.event_id == "GRB261204B" and gbm.region is not None
    assert gbm.region.containment == 0.68
    ice = parse_notice((DATA / "icecube_gold_track.json").read_bytes())
    assert ice.messenger == "Neutrino" and ice.event_id == "IceCube-261204A"
    assert ice.region is not None and ice.region.kind == "ellipse"
    assert (ice.region.radius_deg, ice.region.semi_minor_deg) == (1.1, 0.6)
    assert ice.trigger_time.isoformat() == "2026-12-04T19:33:09.412000+00:00"
    lvk = parse_notice((DATA / "lvk_retraction.json").read_bytes())
    assert lvk.mission == "LVK" and lvk.alert_type == "retraction" and lvk.region is None
    voe = parse_notice((DATA / "swift_bat_voevent.xml").read_bytes())
    assert voe.format == "voevent" and voe.event_id == "1321468"
    assert voe.region is not None and voe.region.containment == 0.9
    with pytest.raises(AlertFormatError, match="no id"):
        parse_notice('{"trigger_time": "2026-12-04T00:00:00Z"}')
    with pytest.raises(AlertFormatError, match="ra"):
        parse_notice('{"id": "1", "trigger_time": "2026-12-04T00:00:00Z", "ra": "x", "dec": 1}')


def test_a_small_circle_is_one_pointing_holding_its_probability() -> None:
    req = followup_request(parse_notice((DATA / "swift_bat_guano.json").read_bytes()))
    assert req.mode == "pointing" and len(req.tiles) == 1
    cam = load_camera("colibri_ddrago_b")
    assert req.field_arcmin[0] == pytest.approx(cam.npix_x * cam.pixel_scale_arcsec / 60.0)
    # the probability of a 2-D Gaussian inside a square of side a: erf(a / (2 sqrt2 sigma))^2
    sigma = 0.0583 * 60 / math.sqrt(-2 * math.log(0.1))
    half = req.field_arcmin[0] / 2
    expect = math.erf(half / (math.sqrt(2) * sigma)) ** 2
    assert req.tiles[0].probability == pytest.approx(expect, abs=2e-3)
    assert req.radius_arcmin == pytest.approx(0.0583 * 60)


@pytest.mark.parametrize(
    ("kind", "r90_deg", "minor_deg", "pa"),
    [("circle", 0.3, None, 0.0), ("ellipse", 0.5, 0.15, 30.0)],
)
def test_a_large_region_is_tiled_to_the_asked_coverage(kind, r90_deg, minor_deg, pa) -> None:
    doc = {
        "mission": "Test",
        "instrument": "X",
        "id": ["42"],
        "trigger_time": "2026-12-04T20:00:00Z",
        "ra": 120.0,
        "dec": -30.0,
        "position_a_error": r90_deg,
        "containment_probability": 0.9,
    }
    if minor_deg:
        doc |= {"position_b_error": minor_deg, "position_error_pa": pa}
    cfg = FollowupConfig(coverage=0.9, max_tiles=200)
    req = followup_request(parse_notice(json.dumps(doc)), cfg)
    assert req.mode == "tiling" and req.region_kind == kind
    assert req.covered_probability >= 0.9
    # Monte Carlo: sources drawn from the region fall in the tiles at least as often as the
    # request says (the tiles overlap a little), within the binomial error
    k = math.sqrt(-2 * math.log(0.1))
    ra, dec = _gaussian_draws(120.0, -30.0, r90_deg / k, (minor_deg or r90_deg) / k, pa, 40_000, 3)
    frac = _covered_fraction(req, ra, dec)
    assert frac >= req.covered_probability - 4 * math.sqrt(0.1 * 0.9 / 40_000)
    # no more tiles than the region's area over the field's, plus the ragged edge
    area = math.pi * r90_deg * (minor_deg or r90_deg)
    field = (req.field_arcmin[0] / 60) * (req.field_arcmin[1] / 60)
    assert len(req.tiles) < 2.0 * area / field + 10
    probs = [t.probability for t in req.tiles]
    assert probs == sorted(probs, reverse=True)


def test_a_budget_too_small_is_reported() -> None:
    req = followup_request(
        parse_notice((DATA / "fermi_gbm_final_position.json").read_bytes()),
        FollowupConfig(max_tiles=10),
    )
    assert req.mode == "tiling" and len(req.tiles) == 10
    assert req.covered_probability < 0.1
    assert any("budget" in n for n in req.notes)


def _moc_skymap(ra0: float, dec0: float, sigma_deg: float, order: int = 8) -> bytes:
    """A multi-order (UNIQ, PROBDENSITY) map of a Gaussian blob, as LVK sends them."""
    from astropy_healpix import HEALPix, level_ipix_to_uniq

    hp = HEALPix(nside=2**order, order="nested")
    lon, lat = hp.healpix_to_lonlat(np.arange(hp.npix))
    x, y = _plane(lon.deg, lat.deg, ra0, dec0)
    r2 = x**2 + y**2
    a, d, a0, d0 = lon.rad, lat.rad, math.radians(ra0), math.radians(dec0)
    front = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0) > 0
    near = front & (r2 < (6 * sigma_deg) ** 2)  # the gnomonic plane mirrors the far side
    dens_deg2 = np.exp(-0.5 * r2[near] / sigma_deg**2) / (2 * math.pi * sigma_deg**2)
    dens_sr = dens_deg2 * (180 / math.pi) ** 2
    uniq = level_ipix_to_uniq(order, np.flatnonzero(near))
    cols = [
        fits.Column("UNIQ", "K", array=uniq),
        fits.Column("PROBDENSITY", "D", array=dens_sr, unit="sr-1"),
    ]
    hdu = fits.BinTableHDU.from_columns(cols)
    hdu.header["ORDERING"] = "NUNIQ"
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()


def test_an_lvk_sky_map_is_tiled_over_its_credible_region() -> None:
    ra0, dec0, sigma = 201.4, -43.0, 0.25
    skymap = base64.b64encode(_moc_skymap(ra0, dec0, sigma)).decode()
    notice = {
        "alert_type": "PRELIMINARY",
        "time_created": "2026-12-04T21:15:44Z",
        "superevent_id": "S261204ab",
        "urls": {"gracedb": "https://gracedb.ligo.org/superevents/S261204ab/view/"},
        "event": {
            "time": "2026-12-04T21:14:58.6Z",
            "far": 1e-10,
            "significant": True,
            "instruments": ["H1", "L1", "V1"],
            "group": "CBC",
            "pipeline": "gstlal",
            "search": "AllSky",
            "properties": {"HasNS": 1.0, "HasRemnant": 0.9, "HasMassGap": 0.0},
            "classification": {"BNS": 0.95, "NSBH": 0.04, "BBH": 0.0, "Terrestrial": 0.01},
            "duration": None,
            "central_frequency": None,
            "skymap": skymap,
        },
        "external_coinc": None,
    }
    n = parse_notice(json.dumps(notice))
    assert n.messenger == "GW" and n.event_id == "S261204ab" and n.region is not None
    assert n.region.kind == "skymap"
    req = followup_request(n, FollowupConfig(coverage=0.9, max_tiles=200))
    assert req.mode == "tiling" and req.covered_probability >= 0.9
    # the first tile is on the peak, within a field
    x, y = _plane(req.tiles[0].ra_deg, req.tiles[0].dec_deg, ra0, dec0)
    assert math.hypot(x, y) < req.field_arcmin[0] / 60
    # sources drawn from the injected blob fall in the tiles as often as the request says,
    # within the pixelisation of the map (its 0.23 deg pixels split to 0.06 deg)
    ra, dec = _gaussian_draws(ra0, dec0, sigma, sigma, 0.0, 40_000, 5)
    frac = _covered_fraction(req, ra, dec)
    assert frac == pytest.approx(req.covered_probability, abs=0.05)
    with pytest.raises(InputDataError, match="HEALPix"):
        notice["event"]["skymap"] = base64.b64encode(b"not fits").decode()  # type: ignore[index]
        followup_request(parse_notice(json.dumps(notice)))


def test_a_retraction_or_a_map_by_url_asks_for_nothing() -> None:
    req = followup_request(parse_notice((DATA / "lvk_retraction.json").read_bytes()))
    assert req.mode == "none" and "retraction" in req.notes[0]
    doc = {
        "mission": "IceCube",
        "id": "7",
        "trigger_time": "2026-12-04T20:00:00Z",
        "healpix_url": "https://example.org/map.fits.gz",
    }
    req = followup_request(parse_notice(json.dumps(doc)))
    assert req.mode == "none" and "not fetched" in req.notes[0]
