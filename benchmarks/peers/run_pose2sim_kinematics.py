"""Run Pose2Sim's own kinematics step (OpenSim scaling + IK) on a TRC, inside the peers' venv.

Usage (called by benchmarks/kinematics.py, not imported by the project):

    .venv-peers/bin/python benchmarks/peers/run_pose2sim_kinematics.py TRC OUT_DIR POSE_MODEL [HEIGHT_M] [MASS_KG]

Calls ``Pose2Sim.kinematics.perform_scaling`` and ``perform_IK`` as ``kinematics_all`` does for one
person, with the defaults of its Config.toml except ``use_simple_model = true`` (the
``Model_Pose2Sim_simple.osim`` we compare against): right_left_symmetry true, large_hip_knee_angles 90,
trimmed_extrema_percent 50, its own OpenSim_Setup folder. Writes ``<stem>.osim``, ``<stem>.mot`` and
OpenSim's ``_ik_marker_errors.sto`` into OUT_DIR and prints the seconds each step took as JSON.
"""
import json
import shutil
import sys
import time
from pathlib import Path


def main(argv):
    trc, out_dir, pose_model = Path(argv[0]).resolve(), Path(argv[1]).resolve(), argv[2]
    height = float(argv[3]) if len(argv) > 3 else 1.75
    mass = float(argv[4]) if len(argv) > 4 else 70.0
    import opensim

    from Pose2Sim.kinematics import get_opensim_setup_dir, perform_IK, perform_scaling

    out_dir.mkdir(parents=True, exist_ok=True)
    local = out_dir / trc.name  # Pose2Sim names its outputs after the TRC and may rewrite it
    shutil.copyfile(trc, local)
    opensim.Logger.setLevelString("Warn")
    opensim.Logger.addFileSink(str(out_dir / "opensim_logs.txt"))
    setup = get_opensim_setup_dir()
    start = time.perf_counter()
    perform_scaling(local, pose_model, out_dir, setup, use_simple_model=True, right_left_symmetry=True,
                    subject_height=height, subject_mass=mass, remove_scaling_setup=False,
                    large_hip_knee_angles=90, trimmed_extrema_percent=50)
    scaling = time.perf_counter() - start
    start = time.perf_counter()
    perform_IK(local, out_dir, setup, pose_model, remove_IK_setup=False)
    ik = time.perf_counter() - start
    print(json.dumps({"scaling_s": scaling, "ik_s": ik, "mot": str(out_dir / (trc.stem + ".mot")),
                      "osim": str(out_dir / (trc.stem + ".osim"))}))


if __name__ == "__main__":
    main(sys.argv[1:])
