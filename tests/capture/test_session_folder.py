"""capture/session_folder.py: the output folder of a capture session."""
import pytest

from capture.errors import ConfigError
from capture.session_folder import prepare_output_dir


def test_output_folder_not_empty_refused_unless_overwrite(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "900000000000.db3").write_text("old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty.*--overwrite"):
        prepare_output_dir(out)
    prepare_output_dir(out, overwrite=True)
    assert not (out / "900000000000.db3").exists() and (out / "notes.txt").read_text() == "mine"
