"""benchmarks/measure_bands.py: the table a band is read from (each run, then min / max), and runs
already finished are reused rather than rerun."""

from __future__ import annotations

import json

from benchmarks import measure_bands


def _finished(out, seed, threads, final, baseline=0.0, status="finished"):
    folder = measure_bands.run_dir(out, "sft_tiny_arithmetic_short", seed, threads)
    folder.mkdir(parents=True)
    summary = {"status": status, "baseline": {"accuracy": baseline}, "final": {"accuracy": final}, "wall_time_s": 61.2, "band": "inside"}
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_table_lists_each_run_then_the_spread(tmp_path):
    _finished(tmp_path, 0, 1, 0.31)
    _finished(tmp_path, 0, 2, 0.355)
    _finished(tmp_path, 1, 1, 0.9, status="running")  # not finished: listed, not counted
    lines = measure_bands.table(tmp_path, "sft_tiny_arithmetic_short", [0, 1], [1, 2])
    assert "seed 0  threads 1  accuracy 0.000 -> 0.310" in lines[1]
    assert "wall 61 s  band: inside" in lines[1]
    assert lines[3].endswith("not finished") and lines[4].endswith("not finished")
    assert lines[-1] == "  final accuracy: min 0.310  max 0.355  spread 0.045  (2 runs)"


def test_a_finished_run_is_kept_not_rerun(tmp_path, monkeypatch):
    folder = _finished(tmp_path, 2, 1, 0.5)
    monkeypatch.setattr(measure_bands.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("reran")))
    assert measure_bands.run_one("sft_tiny_arithmetic_short", 2, 1, folder, None, []) == 0.0


def test_the_warm_start_follows_seed_and_threads(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(measure_bands.subprocess, "run", lambda args, **kw: calls.append((args, kw["env"])) or type("R", (), {"returncode": 0})())
    folder = measure_bands.run_dir(tmp_path, "grpo_tiny_arithmetic", 1, 2)
    measure_bands.run_one("grpo_tiny_arithmetic", 1, 2, folder, "warm/seed{seed}_threads{threads}",
                          ["training.max_steps=3", "components.teacher.checkpoint=t/seed{seed}_threads{threads}"])
    args, env = calls[0]
    assert "seed=1" in args and "method.init_from=warm/seed1_threads2" in args
    assert args[-2:] == ["training.max_steps=3", "components.teacher.checkpoint=t/seed1_threads2"]
    assert env["OMP_NUM_THREADS"] == "2"
