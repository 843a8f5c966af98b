"""Group check: how long a learner waits for ``autodiff-course check`` and ``progress``.

A temporary course folder gets this repository's ``nbgrader_config.py`` and ``solutions/``, and
under ``course/`` each assignment's learner notebook with every solution cell written as in the
instructor's version (a finished notebook). Each round times, per notebook, the command a learner
types, ``autodiff-course check NOTEBOOK`` (a new process: imports, kernel start, the run with
hidden tests, the table), and beside it, to compare with, the same notebook executed by nbclient
alone in a new process (a kernel started the usual way, figures drawn). Then ``autodiff-course
progress`` of the whole course is timed. Medians over the rounds (3 unless ``--rounds`` is
smaller), checked against issue #17's targets: the median over the notebooks at most 3 s, none
above 6 s, ``progress`` at most 12 s.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .grading import REPO_ROOT, _solved, assignments

MEDIAN_TARGET_S = 3.0
SLOWEST_TARGET_S = 6.0
PROGRESS_TARGET_S = 12.0
MAX_ROUNDS = 3  # each run starts a kernel: three rounds of the whole course take minutes already

# To compare with: running the notebook as any tool would, with nothing of check around it.
NBCLIENT_ALONE = (
    "import sys, nbformat, nbclient\n"
    "notebook = nbformat.read(sys.argv[1], as_version=4)\n"
    "nbclient.NotebookClient(notebook, kernel_name='python3', allow_errors=True,\n"
    "                        resources={'metadata': {'path': sys.argv[2]}}).execute()\n"
)


def make_course(folder: Path, names: list[str]) -> None:
    """``folder`` as a clone of the course whose learner notebooks are all finished."""
    shutil.copy(REPO_ROOT / "nbgrader_config.py", folder)
    for name in names:
        shutil.copytree(REPO_ROOT / "solutions" / name, folder / "solutions" / name)
        released = json.loads((REPO_ROOT / "course" / name / f"{name}.ipynb").read_text())
        instructor = json.loads((REPO_ROOT / "solutions" / name / f"{name}.ipynb").read_text())
        (folder / "course" / name).mkdir(parents=True)
        (folder / "course" / name / f"{name}.ipynb").write_text(json.dumps(_solved(released, instructor), indent=1))


def _cpu_of_children() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall-clock seconds of ``command``, and the CPU seconds it and its kernels used: on a busy
    machine the first grows with the load, the second much less, so both are reported."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cpu, start = _cpu_of_children(), time.perf_counter()
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    seconds, cpu = time.perf_counter() - start, _cpu_of_children() - cpu
    if completed.returncode != 0:
        tail = (completed.stdout + completed.stderr).strip().splitlines()[-15:]
        raise RuntimeError(f"{' '.join(command[1:4])} exited {completed.returncode}:\n  " + "\n  ".join(tail))
    return seconds, cpu


def _verdict(seconds: float, target: float) -> str:
    return f"target <= {target:g} s: {'met' if seconds <= target else 'MISSED'}"


def run_check(rounds: int, names: list[str] | None = None) -> list[dict]:
    """Time check of each finished notebook, nbclient alone on it, and progress; print a table and
    return the rows for ``--json``."""
    names = names or assignments()
    rounds = max(1, min(rounds, MAX_ROUNDS))
    check = [sys.executable, "-m", "autodiff_ref.grading.check"]
    # name -> [(wall, cpu) per round]
    checks: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    plain_runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    progress: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-check-") as scratch:
        course = Path(scratch)
        make_course(course, names)
        for _ in range(rounds):
            for name in names:
                notebook = course / "course" / name / f"{name}.ipynb"
                checks[name].append(_timed([*check, "check", str(notebook)], notebook.parent))
                plain_runs[name].append(_timed([sys.executable, "-c", NBCLIENT_ALONE, str(notebook), str(notebook.parent)],
                                           notebook.parent))
            progress.append(_timed([*check, "progress"], course))

    print(f"\nautodiff-course check of a finished notebook, a new process each time; median of {rounds} round(s); "
          "cpu: seconds of CPU it and its kernel used")
    print(f"  {'notebook':<32}{'check':>10}{'nbclient alone':>16}{'check cpu':>11}{'nbclient cpu':>14}")
    rows = []
    for name in names:
        ours, plain = (statistics.median(wall for wall, _ in runs) for runs in (checks[name], plain_runs[name]))
        ours_cpu, plain_cpu = (statistics.median(cpu for _, cpu in runs) for runs in (checks[name], plain_runs[name]))
        print(f"  {name:<32}{ours:>9.2f}s{plain:>15.2f}s{ours_cpu:>10.2f}s{plain_cpu:>13.2f}s")
        rows.append({"workload": f"autodiff-course check {name}", "engine": "autodiff-course", "median_s": ours,
                     "min_s": min(wall for wall, _ in checks[name]), "max_s": max(wall for wall, _ in checks[name]),
                     "cpu_s": ours_cpu, "nbclient_median_s": plain, "nbclient_cpu_s": plain_cpu})
    medians = [row["median_s"] for row in rows]
    over_notebooks, slowest = statistics.median(medians), max(medians)
    progress_median = statistics.median(wall for wall, _ in progress)
    print(f"  {'median over the notebooks':<32}{over_notebooks:>9.2f}s  {_verdict(over_notebooks, MEDIAN_TARGET_S)}")
    print(f"  {'slowest notebook':<32}{slowest:>9.2f}s  {_verdict(slowest, SLOWEST_TARGET_S)}")
    print(f"  {'autodiff-course progress':<32}{progress_median:>9.2f}s  {_verdict(progress_median, PROGRESS_TARGET_S)}"
          f"  (all {len(names)} notebooks, {os.cpu_count()} cores)")
    rows.append({"workload": "autodiff-course check, median over the notebooks", "engine": "autodiff-course",
                 "median_s": over_notebooks, "target": MEDIAN_TARGET_S})
    rows.append({"workload": "autodiff-course check, slowest notebook", "engine": "autodiff-course",
                 "median_s": slowest, "target": SLOWEST_TARGET_S})
    rows.append({"workload": "autodiff-course progress", "engine": "autodiff-course", "median_s": progress_median,
                 "min_s": min(wall for wall, _ in progress), "max_s": max(wall for wall, _ in progress),
                 "cpu_s": statistics.median(cpu for _, cpu in progress), "target": PROGRESS_TARGET_S})
    return rows
