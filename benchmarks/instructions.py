"""``python -m benchmarks.instructions``: CPU instructions per call, counted by valgrind.

A clock on a shared machine moves by 20% from one minute to the next; an instruction count does
not. For each workload and engine this runs the call under ``valgrind --tool=callgrind`` twice,
``--calls N`` times and zero times (after one warm-up call in both), and prints the difference
divided by N and by the workload's units: the work of the call itself, without Python's start-up
or the imports. Instructions are not time (cache misses and allocation cost more than they
count), but two versions of the code compared this way differ only where the code differs.

BLAS is pinned to one thread, as in ``python -m benchmarks``. Needs valgrind (``apt install
valgrind``); slow, since valgrind runs Python some 50 times slower:
``--only tiny`` (the default) takes about a minute.

    python -m benchmarks.instructions                          # the tiny-op chain
    python -m benchmarks.instructions --only mlp --calls 5     # any group of python -m benchmarks
    python -m benchmarks.instructions --with torch             # other engines too, when installed
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys

from . import pin_blas_threads

_COLLECTED = re.compile(r"Collected : (\d+)")
_OTHER_ENGINES = ("torch", "autograd", "micrograd")


def _cases(only: list[str], others: list[str]):
    """Every (workload, case) of the chosen groups, the same list in the parent and in each child."""
    for name in _OTHER_ENGINES:
        if name not in others:
            sys.modules[name] = None  # import fails: the workloads skip it (and valgrind is spared torch)
    from .workloads import all_workloads

    workloads, _ = all_workloads(threads=1, only=only)
    return [(workload, case) for workload in workloads for case in workload.cases]


def _run_in_child(only: list[str], others: list[str], engine_index: int, calls: int) -> None:
    """What valgrind runs: one warm-up call, then ``calls`` more."""
    _, case = _cases(only, others)[engine_index]
    for _ in range(1 + calls):
        case.run()


def _instructions(only: list[str], others: list[str], engine_index: int, calls: int) -> int:
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "benchmarks.instructions", "--only", *only, "--with", *others,
        "--child", str(engine_index), "--calls", str(calls),
    ]
    # A fixed hash seed keeps dict and set layouts, and so the counts, the same from run to run.
    environment = {**os.environ, "PYTHONHASHSEED": "0"}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment)
    found = _COLLECTED.search(finished.stderr)
    if finished.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed:\n{finished.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=["tiny"], help="workload groups, as in python -m benchmarks (default: tiny)")
    parser.add_argument("--with", dest="others", nargs="*", default=[], choices=_OTHER_ENGINES,
                        help="count these engines too (default: only the floor and autodiff_ref)")
    parser.add_argument("--calls", type=int, default=20, help="calls counted per engine (default 20)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    pin_blas_threads(1)
    if args.child is not None:
        _run_in_child(args.only, args.others, args.child, args.calls)
        return 0
    if shutil.which("valgrind") is None:
        print("python -m benchmarks.instructions needs valgrind on the PATH (apt install valgrind)", file=sys.stderr)
        return 2
    floor_per_unit = 1.0
    for index, (workload, case) in enumerate(_cases(args.only, args.others)):
        counted = [_instructions(args.only, args.others, index, calls) for calls in (args.calls, 0)]
        per_unit = (counted[0] - counted[1]) / args.calls / case.per
        if workload.cases[0] is case:  # the floor comes first
            print(f"\n{workload.name}")
            floor_per_unit = per_unit
        print(f"  {case.engine:18s} {per_unit:12,.0f} instructions per {workload.unit}   {per_unit / floor_per_unit:5.2f}x floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
