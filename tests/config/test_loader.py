from pathlib import Path

import pytest
from pydantic import Field
from svomflow.config import StepConfig, load_config, parse_set_overrides
from svomflow.errors import ConfigError


class T90Config(StepConfig):
    bin_s: float = Field(0.064, description="bin width", gt=0)
    band_kev: tuple[float, float] = (50.0, 300.0)


class StepsConfig(StepConfig):
    t90: T90Config = T90Config()


class FlowConfig(StepConfig):
    steps: StepsConfig = StepsConfig()
    label: str = "default"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_layers_apply_in_order(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "steps:\n  t90:\n    bin_s: 0.5\nlabel: from-a\n")
    b = write(tmp_path / "b.yaml", "steps:\n  t90:\n    bin_s: 0.25\n")
    cfg = load_config(FlowConfig, files=[a, b], overrides=["label=cli"])
    assert cfg.steps.t90.bin_s == 0.25  # b wins over a
    assert cfg.label == "cli"  # --set wins over files
    assert cfg.steps.t90.band_kev == (50.0, 300.0)  # code default kept
    cfg = load_config(FlowConfig, files=[a], overrides=["steps.t90.band_kev=[15, 150]"])
    assert cfg.steps.t90.band_kev == (15.0, 150.0)
    assert cfg.steps.t90.bin_s == 0.5


def test_unknown_key_is_reported_with_full_dotted_path(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.yaml", "steps:\n  t90:\n    bin_sec: 0.5\n")
    with pytest.raises(ConfigError, match=r"steps\.t90\.bin_sec: unknown key"):
        load_config(FlowConfig, files=[f])


def test_wrong_type_is_reported_with_full_dotted_path() -> None:
    with pytest.raises(ConfigError, match=r"steps\.t90\.bin_s: .*(got 'fast')"):
        load_config(FlowConfig, overrides=["steps.t90.bin_s=fast"])
    with pytest.raises(ConfigError, match=r"steps\.t90\.bin_s: .*greater than 0"):
        load_config(FlowConfig, overrides=["steps.t90.bin_s=-1"])


def test_set_parsing() -> None:
    assert parse_set_overrides(["a.b=1", "a.c=[1, 2]", "d='on'", "e=on"]) == {
        "a": {"b": 1, "c": [1, 2]},
        "d": "on",
        "e": True,
    }
    for bad in ["novalue", "=3", "a..b=1"]:
        with pytest.raises(ConfigError):
            parse_set_overrides([bad])


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(FlowConfig, files=[tmp_path / "nope.yaml"])
    f = write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(FlowConfig, files=[f])
    g = write(tmp_path / "broken.yaml", "a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(FlowConfig, files=[g])
