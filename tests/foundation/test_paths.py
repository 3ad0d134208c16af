from pathlib import Path

import pytest
from svomflow.errors import PathEscapeError
from svomflow.paths import safe_component, safe_join


@pytest.mark.parametrize(
    "value",
    ["..", "../etc", "a/../../b", "/abs", "a\\b", "x\x00y", "", "  ", "sp ace", "a..b", "~root"],
)
def test_header_values_that_could_escape_are_rejected(tmp_path: Path, value: str) -> None:
    with pytest.raises(PathEscapeError):
        safe_join(tmp_path, "GRB", value)


def test_ordinary_values_build_nested_paths(tmp_path: Path) -> None:
    p = safe_join(tmp_path, "sb26112401", "DDRAGO-B", "r")
    assert p == tmp_path.resolve() / "sb26112401" / "DDRAGO-B" / "r"
    assert safe_component(" v1.2+x ") == "v1.2+x"


def test_symlink_out_of_root_is_caught(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(PathEscapeError, match="outside the output root"):
        safe_join(root, "link")
