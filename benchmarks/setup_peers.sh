#!/usr/bin/env bash
# Creates ./.venv-peers with the peer tools the triangulation benchmark compares against
# (aniposelib and Pose2Sim). They run in their own venv, as a subprocess, exchanging .npz files,
# so their pinned dependencies (opencv-python, onnxruntime, ...) never touch the project's venv.
# Usage: bash benchmarks/setup_peers.sh   (then: python benchmarks/triangulation.py)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv-peers/bin/python ]; then
    "$PYTHON" -m venv .venv-peers
fi
.venv-peers/bin/python -m pip install --upgrade pip
.venv-peers/bin/python -m pip install aniposelib pose2sim opensim==4.6
.venv-peers/bin/python -c "import aniposelib, Pose2Sim; print('peers ready:', 'aniposelib', aniposelib.__version__ if hasattr(aniposelib, '__version__') else '', 'Pose2Sim', getattr(Pose2Sim, '__version__', ''))"
