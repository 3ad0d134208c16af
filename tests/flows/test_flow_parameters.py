"""Typed configuration parameters (a form in the Prefect UI) and readable run names.

``mxt_analysis``, ``gp1_reduction`` and ``nightly_master_calibration`` take their configuration
as the pydantic model; callers that pass plain mappings (CLI, watcher, reprocessing,
deployment runs) keep working, and a model's defaults never clobber a configuration file.
"""

from __future__ import annotations

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.utilities.callables import parameter_schema
from svomflow.flows._params import config_overrides, explicit_values
from svomflow.flows.eic_calibration import run_name as eic_calib_run_name
from svomflow.flows.gp1 import gp1_reduction, resolve_config
from svomflow.flows.mxt import mxt_analysis
from svomflow.flows.mxt import run_name as mxt_run_name
from svomflow.flows.nightly_calibration import nightly_master_calibration
from svomflow.flows.nightly_calibration import run_name as nightly_run_name
from svomflow.tasks.gp1.config import GP1Config
from svomflow.tasks.masters.config import NightlyCalibrationConfig
from svomflow.tasks.xray.pipeline import MXTAnalysisConfig

FLOWS = [
    ("mxt", mxt_analysis, MXTAnalysisConfig, {"l1_files": ["a.fits"], "attitude_file": "att",
                                              "saa_file": "saa"}),
    ("gp1", gp1_reduction, GP1Config, {"images": ["a.fits"]}),
    ("nightly", nightly_master_calibration, NightlyCalibrationConfig,
     {"night": "2026-11-23", "raw_dir": "raw"}),
]  # fmt: skip
# a partial nested mapping per flow: one leaf changed from its default, deep in a section
PARTIAL = {
    "mxt": {"detect": {"ml_threshold": 12.5}},
    "gp1": {"steps": {"summary": {"enabled": False}}, "alert_keyword": "OBJID"},
    "nightly": {"combine": {"sigma_low": 4.0}, "min_frames": 7},
}
IDS = [f[0] for f in FLOWS]


def _config_form(schema: dict, model: type) -> dict:
    """Return the properties of the form the ``config`` parameter renders as."""
    prop = schema["properties"]["config"]
    refs = [a["$ref"] for a in prop.get("anyOf", []) if "$ref" in a]
    assert refs == [f"#/definitions/{model.__name__}"], prop
    definition = schema["definitions"][model.__name__]
    assert definition["type"] == "object"
    return definition["properties"]


@pytest.mark.parametrize(("alias", "flow", "model", "required"), FLOWS, ids=IDS)
def test_config_parameter_is_the_model_in_the_deployment_schema(
    prefect_harness, alias, flow, model, required
):
    from svomflow.operations.deployments import DeploymentSettings, build_deployments

    (dep,), missing = build_deployments(DeploymentSettings(flows=[alias]))
    assert missing == {}
    props = _config_form(dep._parameter_openapi_schema.model_dump(), model)
    assert set(props) == set(model.model_fields)
    # the same schema straight from the flow function
    direct = _config_form(parameter_schema(flow.fn).model_dump(), model)
    assert direct == props
    # nested sections are forms of their own, with typed leaves
    sections = [n for n, f in model.model_fields.items() if "$ref" in str(props[n])]
    assert sections, props


@pytest.mark.parametrize(("alias", "flow", "model", "required"), FLOWS, ids=IDS)
def test_plain_mapping_is_validated_into_the_model(alias, flow, model, required):
    partial = PARTIAL[alias]
    params = flow.validate_parameters({**required, "config": partial})
    cfg = params["config"]
    assert isinstance(cfg, model)
    assert cfg.model_dump(mode="json") != model().model_dump(mode="json")
    # only what the caller gave counts as set: the rest is left to the files / the camera
    assert config_overrides(cfg) == partial
    # an already built model passes through with what was set on it
    assert (
        config_overrides(flow.validate_parameters({**required, "config": cfg})["config"]) == partial
    )
    assert flow.validate_parameters(dict(required)).get("config") is None
    with pytest.raises(ParameterTypeError):
        flow.validate_parameters({**required, "config": {"no_such_key": 1}})


def test_explicit_values_finds_assignments_under_unset_sections():
    cfg = GP1Config(output_dir="x")
    cfg.steps.astrometry.reference_catalog = "refcat"
    # exclude_unset drops it: "steps" itself was never set on the top-level model
    assert "steps" not in cfg.model_dump(exclude_unset=True)
    assert explicit_values(cfg) == {
        "output_dir": "x",
        "steps": {"astrometry": {"reference_catalog": "refcat"}},
    }
    assert explicit_values(GP1Config()) == {}
    assert config_overrides(None) == {} and config_overrides({"a": 1}) == {"a": 1}


def test_gp1_model_defaults_do_not_clobber_the_file(tmp_path):
    f = tmp_path / "gp1.yaml"
    f.write_text("alert_keyword: OBJID\nsteps:\n  summary:\n    enabled: false\n")
    assert GP1Config().alert_keyword == "TRIGID" and GP1Config().steps.summary.enabled
    cfg = GP1Config(trigger_time="2026-11-24T01:02:03", output_dir="from-config")
    cfg.steps.astrometry.reference_catalog = "refcat"
    got = resolve_config(cfg, str(f), None)
    assert got.alert_keyword == "OBJID" and not got.steps.summary.enabled  # the file's
    assert got.trigger_time == "2026-11-24T01:02:03"  # the caller's
    assert got.steps.astrometry.reference_catalog == "refcat"
    assert got.output_dir == "from-config"
    # the output_dir parameter overrides the configuration's
    assert resolve_config(cfg, str(f), str(tmp_path / "o")).output_dir == str(tmp_path / "o")
    # a value set explicitly wins over the file even when it equals the model default
    again = resolve_config(GP1Config(alert_keyword="TRIGID"), str(f), None)
    assert again.alert_keyword == "TRIGID" and not again.steps.summary.enabled


def test_mxt_run_names(tmp_path):
    from astropy.io import fits

    assert mxt_run_name({"obs_id": "sb26112401", "l1_files": ["x.fits"]}) == "mxt-sb26112401"
    with_header = tmp_path / "pass_01.fits"
    fits.PrimaryHDU(header=fits.Header([("OBS_ID", "01234567")])).writeto(with_header)
    assert mxt_run_name({"obs_id": None, "l1_files": [str(with_header)]}) == "mxt-01234567"
    plain = tmp_path / "mxt_pass_02.fits.gz"
    fits.PrimaryHDU().writeto(plain)
    assert mxt_run_name({"l1_files": [str(plain)]}) == "mxt-mxt_pass_02"
    # a missing or broken file must not fail the run's name
    broken = tmp_path / "broken_03.fits"
    broken.write_bytes(b"not fits")
    assert mxt_run_name({"l1_files": [str(broken)]}) == "mxt-broken_03"
    assert mxt_run_name({"l1_files": [str(tmp_path / "gone.fits")]}) == "mxt-gone"
    assert mxt_run_name({}) == "mxt-none"


def test_nightly_run_names():
    import datetime as dt

    from svomflow.flows.nightly_calibration import resolve_night

    assert nightly_run_name({"night": "2026-11-23"}) == "calib-2026-11-23"
    # "last" follows the configured start of the night (model or its JSON mapping)
    for cfg in ({"night_start_utc_hour": 18.0}, NightlyCalibrationConfig(night_start_utc_hour=18)):
        before = resolve_night("last", 18.0, dt.datetime.now(dt.UTC))
        got = nightly_run_name({"night": "last", "config": cfg})
        after = resolve_night("last", 18.0, dt.datetime.now(dt.UTC))
        assert got in {f"calib-{before}", f"calib-{after}"}
    # six hours later start than the default: some hours of the day name another night
    now = dt.datetime(2026, 11, 24, 3, 0, tzinfo=dt.UTC)
    assert resolve_night("last", 18.0, now) != resolve_night("last", 12.0, now)


def _run_name(state) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id).name


@pytest.mark.integration
def test_flows_called_with_plain_mappings(prefect_harness, tmp_path):
    from prefect.states import State
    from svomflow.errors import InputDataError

    raw = tmp_path / "raw"
    raw.mkdir()
    state = nightly_master_calibration(
        "2026-11-23",
        str(raw),
        out_dir=str(tmp_path / "calib"),
        caldb_root=str(tmp_path / "caldb"),
        config={"min_frames": 7, "combine": {"sigma_low": 4.0}},
        return_state=True,
    )
    assert state.result()["status"] == "empty"
    assert _run_name(state) == "calib-2026-11-23"

    image = tmp_path / "img_0042.fits"  # absent: the image fails, the run goes on
    state = gp1_reduction(
        images=[str(image)],
        config={"steps": {"summary": {"enabled": False}}},
        output_dir=str(tmp_path / "gp1"),
        return_state=True,
    )
    res = state.result()
    assert list(res["failed"]) == [str(image)] and res["sequences"] == {}
    assert _run_name(state) == "gp1-img_0042"

    state = mxt_analysis(
        l1_files=[str(tmp_path / "mxt_pass_07.fits")],
        attitude_file=str(tmp_path / "att.fits"),
        saa_file=str(tmp_path / "saa.fits"),
        out_dir=str(tmp_path / "mxt"),
        config={"detect": {"ml_threshold": 12.0}},
        return_state=True,
    )
    # the mapping passed validation: the run fails on the missing pass, not on its parameters
    assert isinstance(state, State) and state.is_failed()
    with pytest.raises((InputDataError, OSError)):
        state.result()
    assert _run_name(state) == "mxt-mxt_pass_07"


def test_eic_calibration_run_names() -> None:
    assert eic_calib_run_name({"spectra": "/data/eic/spectra/day014/"}) == "eic-calib-day014"
    assert eic_calib_run_name({"spectra": "latest"}) == "eic-calib-latest"
    assert eic_calib_run_name({}) == "eic-calib-latest"
