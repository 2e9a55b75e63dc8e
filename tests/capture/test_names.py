"""capture/names.py: camera and file names: loose matching (exact first, unique loose), safe file names."""
import pytest

from capture.names import loose_name, match_name, match_names, safe_file_name


@pytest.mark.parametrize("name, loose", [
    ("CAM_01", "cam01"), ("cam01_json", "cam01"), ("Cam-01_JSON", "cam01"), (" cam 01 ", "cam01"),
    ("json_cam01", "jsoncam01"),  # only a trailing _json is an OpenPose folder's
    (900000000001, "900000000001"), ("___", ""),
])
def test_loose_name(name, loose):
    assert loose_name(name) == loose


def test_exact_match_comes_before_a_loose_one():
    candidates = ["cam01", "CAM_01", "cam02"]
    assert match_name("CAM_01", candidates) == 1  # exact, although "cam01" matches it loosely too
    assert match_name("cam01", candidates) == 0
    assert match_name("cam02_json", candidates) == 2  # the one loose match
    assert match_name(900000000001, ["900000000000", "900000000001"]) == 1  # numbers compare as text


def test_an_ambiguous_or_empty_loose_match_gives_none():
    assert match_name("Cam-01", ["cam01", "CAM_01"]) is None  # two loose matches: no guess
    assert match_name("cam03", ["cam01", "cam02"]) is None
    assert match_name("__", ["", "a"]) is None  # nothing left to compare
    assert match_names(["cam_02", "side", "CAM01"], ["cam01", "cam02"]) == ([1, None, 0], ["side"])


def test_safe_file_name():
    assert safe_file_name("cam 01/left:x*?") == "cam_01_left_x__"
    assert safe_file_name("cam-01_b.2") == "cam-01_b.2"
    assert safe_file_name(900000000001) == "900000000001"
