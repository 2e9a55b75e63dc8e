"""`mocap simulate`: a small simulated session; bad input gives one message."""



def test_cli_simulate(tmp_path, capsys):
    from reconstruction.cli import main

    out = tmp_path / "cli"
    code = main(["simulate", "--cameras", "2", "--seconds", "0.1", "--resolution", "160x120", "--out", str(out),
                 "--drop-rate", "0.0", "--seed", "1"])
    assert code == 0
    assert "wrote 2 recordings of 3 frames" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.db3")) == ["900000000000.db3", "900000000001.db3"]
    assert (out / "simulation.yaml").is_file() and (out / "ground_truth.npz").is_file()


def test_cli_bad_input_gives_one_message(tmp_path, capsys):
    from reconstruction.cli import main

    code = main(["simulate", "--out", str(tmp_path / "x"), "--bvh", str(tmp_path / "missing.bvh"), "--seconds", "0.1"])
    assert code == 2
    assert "missing.bvh: BVH file not found" in capsys.readouterr().err
    code = main(["simulate", "--out", str(tmp_path / "y"), "--resolution", "big"])
    assert code == 2
    assert "--resolution" in capsys.readouterr().err
    code = main(["simulate", "--out", str(tmp_path / "z"), "--drop-rate", "1.5"])
    assert code == 2
    assert "drop_rate" in capsys.readouterr().err
