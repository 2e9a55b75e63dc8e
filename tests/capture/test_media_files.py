"""capture/media_files.py: recording, video and image files by extension; folders expanded; errors name the path."""
import re

import pytest

from capture.errors import RecordingError
from capture.media_files import is_image, is_recording, is_video, media_files


@pytest.mark.parametrize("name, recording, video, image", [
    ("cam.db3", True, False, False), ("CAM.BAG", True, False, False), ("a/b/cam01.mp4", False, True, False),
    ("x.MKV", False, True, False), ("f0001.png", False, False, True), ("f.JPEG", False, False, True),
    ("notes.txt", False, False, False), ("db3", False, False, False), ("cam.db3.part", False, False, False),
])
def test_kinds_by_extension(name, recording, video, image):
    assert (is_recording(name), is_video(name), is_image(name)) == (recording, video, image)


def test_files_as_given_and_folders_expanded_sorted(tmp_path):
    folder = tmp_path / "session"
    folder.mkdir()
    for name in ("b.db3", "a.mp4", "c.bag", "notes.txt", "rig.yaml", "f0001.png"):
        (folder / name).write_text("x")
    (folder / "sub").mkdir()
    (folder / "sub" / "d.db3").write_text("x")  # only files directly inside a folder
    (folder / "e.avi").mkdir()  # a folder named like a video is no video
    single = tmp_path / "z.avi"
    single.write_text("x")
    files = media_files([single, folder])
    assert files == [single, folder / "a.mp4", folder / "b.db3", folder / "c.bag"]
    assert media_files([str(folder / "b.db3")]) == [folder / "b.db3"]  # text paths too


def test_errors_name_the_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(RecordingError, match=rf"{re.escape(str(empty))}: no recordings \(.bag, .db3\) or videos \(.mp4"):
        media_files([empty])
    other = tmp_path / "rig.yaml"
    other.write_text("x")
    with pytest.raises(RecordingError, match=rf"{re.escape(str(other))}: not one of the recordings"):
        media_files([other])
    with pytest.raises(RecordingError, match=rf"{re.escape(str(tmp_path / 'gone.db3'))}: no such file or folder"):
        media_files([tmp_path / "gone.db3"])
