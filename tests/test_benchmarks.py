"""The benchmark suite runs, checks agreement before timing, and reports paired ratios.

Speed itself is not asserted here (timings belong to `python -m benchmarks`, not to unit tests):
these tests check that the command works on a fresh install and that its numbers mean what the
README says they mean.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness import Case, Workload, check_agreement, report

ROOT = Path(__file__).resolve().parent.parent


def _workload(floor_result, other_result, rtol=1e-9) -> Workload:
    return Workload(
        "toy",
        [Case("numpy floor", lambda: None, result=lambda: floor_result),
         Case("autodiff_ref", lambda: None, result=lambda: other_result)],
        rtol=rtol,
    )


def test_agreement_passes_within_the_tolerance():
    grads = [np.array([1.0, 2.0])]
    check_agreement(_workload((1.0, grads), (1.0 + 1e-12, [grads[0] * (1 + 1e-12)])))


def test_agreement_names_the_engine_and_the_gradient_that_differ():
    with pytest.raises(AssertionError, match=r"autodiff_ref disagrees with the floor on the gradient 1 \(relative error 1.00e-03"):
        check_agreement(_workload((1.0, [np.ones(2), np.ones(3)]), (1.0, [np.ones(2), np.ones(3) * 1.001])))


def test_agreement_counts_the_gradients():
    with pytest.raises(AssertionError, match="returned 1 gradients, floor 2"):
        check_agreement(_workload((1.0, [np.ones(2), np.ones(2)]), (1.0, [np.ones(2)])))


def test_ratio_to_the_floor_pairs_each_round(capsys):
    # The machine is twice as fast from round 3 on, and slowed down again in round 3 between the
    # floor's turn and the engine's. Paired, the engine is 2x the floor in four rounds of five;
    # the ratio of the two medians (2.0 over 0.5) would say 4x.
    workload = _workload(None, None)
    workload.cases[0].times = [1.0, 1.0, 0.5, 0.5, 0.5]
    workload.cases[1].times = [2.0, 2.0, 2.0, 1.0, 1.0]
    workload.target = 3.0
    (floor_row, ours_row) = report([workload])
    assert floor_row["ratio_to_floor"] == 1.0
    assert ours_row["ratio_to_floor"] == 2.0
    assert (ours_row["median_s"], ours_row["min_s"], ours_row["max_s"]) == (2.0, 1.0, 2.0)
    assert ours_row["ratio_quartiles"] == [2.0, 2.0]  # paired ratios 2, 2, 4, 2, 2
    assert "2.00x     2.00-2.00  target <= 3x: met" in capsys.readouterr().out


def test_the_readme_command_runs_and_saves_json(tmp_path):
    """`python -m benchmarks` as the README gives it, on the two quickest groups, one round."""
    saved = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "tiny", "gradcheck", "--rounds", "1", "--json", str(saved)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    assert "BLAS threads pinned to 1" in completed.stdout
    assert "agreement: every engine's loss and gradients match the floor's." in completed.stdout
    results = json.loads(saved.read_text())
    assert results["environment"]["blas_threads"] == 1 and results["rounds"] == 1
    rows = results["results"]
    workloads = {row["workload"] for row in rows}
    assert len(workloads) == 3  # the tiny-op chain and gradcheck of matmul and of div
    for name in workloads:
        engines = {row["engine"]: row for row in rows if row["workload"] == name}
        assert engines["numpy floor"]["ratio_to_floor"] == 1.0
        ours = engines["autodiff_ref"]
        assert ours["ratio_to_floor"] > 0 and ours["target"] is not None
        assert ours["min_s"] <= ours["median_s"] <= ours["max_s"]


def _instructions_command(*args, path=None):
    env = {**os.environ, "PATH": path} if path is not None else None
    return subprocess.run([sys.executable, "-m", "benchmarks.instructions", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_instruction_counts_say_what_they_need_without_valgrind():
    completed = _instructions_command(path="")
    assert completed.returncode == 2
    assert "needs valgrind on the PATH" in completed.stderr


def test_instruction_counts_leave_other_engines_out_unless_asked():
    listed = subprocess.run(
        [sys.executable, "-c", "from benchmarks.instructions import _cases; "
         "print([case.engine for _, case in _cases(['tiny'], [])])"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert listed.stdout.strip() == "['numpy floor', 'autodiff_ref']", listed.stderr


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_counts_of_the_tiny_chain():
    completed = _instructions_command("--calls", "1")
    assert completed.returncode == 0, completed.stderr
    floor, ours = re.findall(r"^  (numpy floor|autodiff_ref) +([\d,]+) instructions per op +([\d.]+)x floor$",
                             completed.stdout, re.MULTILINE)
    assert floor[2] == "1.00"
    assert int(ours[1].replace(",", "")) > int(floor[1].replace(",", "")) > 1000


def test_only_check_runs_the_check_group_and_no_other(monkeypatch, capsys):
    # The other groups match --only by substring, where "check" would pick gradcheck as well.
    import benchmarks.check
    from benchmarks.harness import run_all

    asked = []
    monkeypatch.setattr(benchmarks.check, "run_check", lambda rounds: asked.append(rounds) or [])
    assert run_all(rounds=2, only=["check"], json_path=None, threads=1) == 0
    assert asked == [2]
    assert "agreement" not in capsys.readouterr().out  # no timing workload was built or run


def test_the_check_group_times_check_beside_nbclient_alone_and_progress(capsys):
    from benchmarks.check import run_check

    name = "02_derivatives_and_chain_rule"  # the notebook with the least to compute
    rows = {row["workload"]: row for row in run_check(1, [name])}
    check = rows[f"autodiff-course check {name}"]
    assert check["median_s"] > 0 and check["cpu_s"] > 0 and check["nbclient_median_s"] > 0
    assert rows["autodiff-course progress"]["target"] == 12.0
    printed = capsys.readouterr().out
    assert re.search(r"median over the notebooks +[\d.]+s  target <= 3 s: (met|MISSED)", printed)
    assert re.search(r"autodiff-course progress +[\d.]+s  target <= 12 s: (met|MISSED)", printed)
