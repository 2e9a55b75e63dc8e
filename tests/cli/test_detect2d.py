"""`mocap detect2d`: MoveNet on a short real video, by video and through the frame-set stream."""
import numpy as np
import pytest

from reconstruction.cli import main


@pytest.mark.slow
def test_detect2d_cli_on_a_short_video(shared_dir, tmp_path, capsys):
    import cv2

    wdir = shared_dir / "weights"
    src = shared_dir / "data" / "pose2sim_demo" / "videos_BalancingTrial" / "cam02.mp4"
    if not (wdir / "movenet").is_dir() or not src.is_file():
        pytest.skip("weights or demo video not in ../shared")
    out = tmp_path / "kp.npz"
    rc = main(["detect2d", "--model", "movenet-lightning", "--video", str(src), str(src), "--cameras", "a", "b",
               "--output", str(out), "--weights-dir", str(wdir), "--max-frames", "3"])
    assert rc == 0, capsys.readouterr().err
    from reconstruction.formats.keypoints2d import read_keypoints2d

    kp = read_keypoints2d(out)
    assert kp.keypoints.shape == (3, 2, 17, 3) and kp.cameras == ("a", "b") and kp.fps == pytest.approx(60, abs=1)
    # same video twice: same joints; the person stands in the middle of the 1080x1920 frame
    np.testing.assert_allclose(kp.keypoints[:, 0], kp.keypoints[:, 1])
    good = kp.keypoints[..., 2] > 0.3
    assert good.mean() > 0.7
    assert np.all((kp.keypoints[..., 0][good] > 0) & (kp.keypoints[..., 0][good] < 1088))
    cap = cv2.VideoCapture(str(src))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= 3
    # the same through the frame-set stream (videos are recordings too), views named by the files
    other = src.with_name("cam03.mp4")
    rc = main(["detect2d", "--model", "movenet-lightning", "--recording", str(src), str(other), "--output",
               str(out), "--weights-dir", str(wdir), "--max-frames", "2"])
    assert rc == 0, capsys.readouterr().err
    kp2 = read_keypoints2d(out)
    assert kp2.keypoints.shape == (2, 2, 17, 3) and kp2.cameras == ("cam02", "cam03")
    np.testing.assert_allclose(kp2.keypoints[:, 0], kp.keypoints[:2, 0], atol=1e-6)
    assert main(["detect2d", "--recording", str(tmp_path / "none.bag"), "--output", str(out)]) == 2
