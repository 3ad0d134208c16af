"""VOEvent and JSON alert parsing: required elements, bad values, unsafe XML."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from svomflow.products.alert_messages import AlertFormatError, parse_alert, parse_voevent


def test_voevent_fields_are_extracted(make_voevent) -> None:
    a = parse_alert(make_voevent("sb26112301"))
    assert a.format == "voevent"
    assert a.alert_id == "ivo://org.svom/fsc#sb26112301_eclairs"
    assert a.trigger_id == "sb26112301"
    assert a.trigger_time == datetime(2026, 11, 23, 3, 14, 15, 250000, tzinfo=UTC)
    assert a.issued == datetime(2026, 11, 23, 3, 14, 20, tzinfo=UTC)
    assert (a.ra_deg, a.dec_deg, a.error_deg) == (187.25, -12.5, 0.15)
    assert a.instrument == "ECLAIRs"
    # nested Group params are kept too
    assert a.params["SNR"] == "9.3" and a.params["Packet_Type"] == "202"


def test_trigger_id_aliases_and_ra_wrap(make_voevent) -> None:
    a = parse_voevent(make_voevent("123456", trig_name="Trigger_ID", ra=360.0))
    assert a.trigger_id == "123456"
    assert a.ra_deg == 0.0


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"ivorn": "http://not-ivo"}, "ivorn"),
        ({"role": "drill"}, "role"),
        ({"trig_name": "Something"}, "trigger id"),
        ({"time": "yesterday"}, "ISO 8601"),
        ({"position": False}, "Position2D"),
        ({"dec": 95.0}, "dec_deg"),
        ({"ra": "nan"}, "finite"),
        ({"err": "wide"}, "Error2Radius"),
    ],
)
def test_invalid_voevents_are_rejected_with_reason(make_voevent, kwargs, why) -> None:
    with pytest.raises(AlertFormatError, match=why):
        parse_voevent(make_voevent(**kwargs))


def test_not_xml_and_wrong_root() -> None:
    with pytest.raises(AlertFormatError, match="well-formed"):
        parse_alert("<VOEvent ivorn='ivo://x' role='test'><Who>")
    with pytest.raises(AlertFormatError, match="not VOEvent"):
        parse_alert("<html><body/></html>")
    with pytest.raises(AlertFormatError, match="neither"):
        parse_alert(b"\x00\x01garbage")


def test_entity_expansion_and_dtd_are_refused(make_voevent) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        "<VOEvent>&lol2;</VOEvent>"
    )
    with pytest.raises(AlertFormatError, match="unsafe XML"):
        parse_alert(bomb)
    external = (
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<VOEvent>&xxe;</VOEvent>"
    )
    with pytest.raises(AlertFormatError, match="unsafe XML"):
        parse_alert(external)


def test_json_alert(make_json_alert) -> None:
    a = parse_alert(make_json_alert("sb1"))
    assert a.format == "json" and a.alert_id == "svom-json-sb1" and a.trigger_id == "sb1"
    assert a.trigger_time == datetime(2026, 11, 23, 4, 0, tzinfo=UTC)
    with pytest.raises(AlertFormatError, match="unknown keys: colour"):
        parse_alert(make_json_alert("sb1", colour="red"))
    with pytest.raises(AlertFormatError, match="no trigger_time"):
        parse_alert('{"id": "x", "trigger_id": "y"}')
    with pytest.raises(AlertFormatError, match="not valid JSON"):
        parse_alert("{nope")
    with pytest.raises(AlertFormatError, match="ra_deg"):
        parse_alert(make_json_alert("sb1", ra_deg=400))
