"""VOEvent and JSON alert texts for the alert tests (GCN-style layout)."""

from __future__ import annotations

import json

_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    ivorn="{ivorn}" role="{role}" version="2.0">
  <Who>
    <AuthorIVORN>ivo://org.svom/fsc</AuthorIVORN>
    <Date>2026-11-23T03:14:20</Date>
  </Who>
  <What>
    <Param name="Packet_Type" value="202"/>
    <Param name="{trig_name}" value="{trig}"/>
    <Param name="Instrument" value="ECLAIRs"/>
    <Group name="Detection">
      <Param name="SNR" value="9.3"/>
    </Group>
  </What>
  <WhereWhen>
    <ObsDataLocation>
      <ObservatoryLocation id="GEOLUN"/>
      <ObservationLocation>
        <AstroCoordSystem id="UTC-FK5-GEO"/>
        <AstroCoords coord_system_id="UTC-FK5-GEO">
          <Time unit="s"><TimeInstant><ISOTime>{time}</ISOTime></TimeInstant></Time>
          {position}
        </AstroCoords>
      </ObservationLocation>
    </ObsDataLocation>
  </WhereWhen>
</voe:VOEvent>
"""

_POSITION = """<Position2D unit="deg">
            <Name1>RA</Name1><Name2>Dec</Name2>
            <Value2><C1>{ra}</C1><C2>{dec}</C2></Value2>
            <Error2Radius>{err}</Error2Radius>
          </Position2D>"""


def voevent(
    trig: str = "sb26112301",
    *,
    ivorn: str | None = None,
    role: str = "observation",
    time: str = "2026-11-23T03:14:15.250",
    ra: object = 187.25,
    dec: object = -12.5,
    err: object = 0.15,
    trig_name: str = "TrigID",
    position: bool = True,
) -> str:
    """Return a VOEvent 2.0 alert text."""
    pos = _POSITION.format(ra=ra, dec=dec, err=err) if position else ""
    return _TEMPLATE.format(
        ivorn=ivorn or f"ivo://org.svom/fsc#{trig}_eclairs",
        role=role,
        trig=trig,
        trig_name=trig_name,
        time=time,
        position=pos,
    )


def json_alert(trig: str = "sb26112302", **extra: object) -> str:
    """Return a JSON alert text."""
    doc = {
        "id": f"svom-json-{trig}",
        "trigger_id": trig,
        "trigger_time": "2026-11-23T04:00:00Z",
        "ra_deg": 10.5,
        "dec_deg": 41.25,
        "error_deg": 0.2,
    }
    doc.update(extra)
    return json.dumps(doc)


import pytest  # noqa: E402


@pytest.fixture
def make_voevent():
    """The :func:`voevent` builder."""
    return voevent


@pytest.fixture
def make_json_alert():
    """The :func:`json_alert` builder."""
    return json_alert
