"""Timing harness: agreement first, then interleaved rounds, then a table of medians and ratios.

A workload is a list of :class:`Case` objects, one per engine, the first of which is the floor
(hand-written NumPy) that every other engine is compared with.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


@dataclass
class Case:
    """One engine running one workload.

    ``run`` is one timed call. ``result`` returns ``(loss, [gradients])`` from the initial inputs
    for the agreement check (None where the engine's answer is checked otherwise), and ``per`` is
    how many units (ops, nodes) one call performs, for per-unit figures.
    """

    engine: str
    run: Callable[[], object]
    result: Callable[[], tuple[float, list[np.ndarray]]] | None = None
    per: int = 1
    times: list[float] = field(default_factory=list)


@dataclass
class Workload:
    name: str
    cases: list[Case]
    unit: str = "call"
    rtol: float = 1e-9  # agreement with the floor: 1e-9 in float64, looser in float32
    target: float | None = None  # autodiff_ref's allowed ratio to the floor
    notes: list[str] = field(default_factory=list)


def check_agreement(workload: Workload) -> None:
    """Raise if any engine's loss or gradients differ from the floor's beyond ``rtol``."""
    floor = workload.cases[0]
    if floor.result is None:
        return
    loss, grads = floor.result()
    for case in workload.cases[1:]:
        if case.result is None:
            continue
        other_loss, other_grads = case.result()
        pairs = [(np.asarray(loss), np.asarray(other_loss))] + [
            (np.asarray(a), np.asarray(b)) for a, b in zip(grads, other_grads)
        ]
        if len(grads) != len(other_grads):
            raise AssertionError(f"{workload.name}: {case.engine} returned {len(other_grads)} gradients, floor {len(grads)}")
        for index, (expected, got) in enumerate(pairs):
            scale = max(float(np.max(np.abs(expected))), 1e-30)
            error = float(np.max(np.abs(expected.astype(np.float64) - got.astype(np.float64)))) / scale
            if not error <= workload.rtol:
                what = "loss" if index == 0 else f"gradient {index - 1}"
                raise AssertionError(
                    f"{workload.name}: {case.engine} disagrees with the floor on the {what} "
                    f"(relative error {error:.2e} > {workload.rtol:.0e})"
                )


def _calls_per_sample(run: Callable[[], object], budget: float = 0.02) -> int:
    """How many calls fill about ``budget`` seconds, so that timer resolution does not matter."""
    start = time.perf_counter()
    run()
    once = max(time.perf_counter() - start, 1e-7)
    return max(1, int(budget / once))


def time_workloads(workloads: Sequence[Workload], rounds: int) -> None:
    """Fill each case's ``times`` (seconds per call): each round times every case once, in turn."""
    cases = [case for workload in workloads for case in workload.cases]
    counts = {id(case): _calls_per_sample(case.run) for case in cases}
    for _ in range(rounds):
        for case in cases:
            number = counts[id(case)]
            start = time.perf_counter()
            for _ in range(number):
                case.run()
            case.times.append((time.perf_counter() - start) / number)


def _format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def report(workloads: Sequence[Workload]) -> list[dict]:
    """Print one table per workload and return the rows for ``--json``."""
    rows = []
    for workload in workloads:
        floor_times = workload.cases[0].times
        print(f"\n{workload.name}")
        for note in workload.notes:
            print(f"  ({note})")
        print(f"  {'engine':<16}{'median':>12}{'min - max':>24}{'per ' + workload.unit:>16}{'x floor':>10}{'middle half':>14}")
        for case in workload.cases:
            median = statistics.median(case.times)
            low, high = min(case.times), max(case.times)
            # Paired: each round times the floor and this engine back to back, so a machine that
            # speeds up or slows down between rounds moves both; the median of those ratios is
            # steadier than a ratio of two medians taken from different rounds.
            # The middle half of the paired ratios shows how much of a gap is the machine's noise.
            ratios = [t / f for t, f in zip(case.times, floor_times)]
            ratio = statistics.median(ratios)
            first_quartile, third_quartile = (float(q) for q in np.percentile(ratios, [25, 75]))
            verdict = ""
            if case.engine == "autodiff_ref" and workload.target is not None:
                verdict = "  target <= {:.2g}x: {}".format(workload.target, "met" if ratio <= workload.target else "MISSED")
            print(
                f"  {case.engine:<16}{_format_seconds(median):>12}"
                f"{_format_seconds(low) + ' - ' + _format_seconds(high):>24}"
                f"{_format_seconds(median / case.per):>16}{ratio:>9.2f}x"
                f"{f'{first_quartile:.2f}-{third_quartile:.2f}':>14}{verdict}"
            )
            rows.append(
                {
                    "workload": workload.name,
                    "engine": case.engine,
                    "median_s": median,
                    "min_s": low,
                    "max_s": high,
                    "per_unit_s": median / case.per,
                    "unit": workload.unit,
                    "ratio_to_floor": ratio,
                    "ratio_quartiles": [first_quartile, third_quartile],
                    "target": workload.target if case.engine == "autodiff_ref" else None,
                }
            )
    return rows


def environment(threads: int) -> dict:
    """The facts a reader needs to compare two runs."""
    import autodiff_ref

    facts = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "numpy": np.__version__,
        "autodiff_ref": autodiff_ref.__version__,
        "blas_threads": threads,
    }
    for name in ("torch", "autograd"):
        try:
            facts[name] = __import__(name).__version__ if name == "torch" else _dist_version(name)
        except ImportError:
            facts[name] = None
    facts["micrograd"] = _dist_version("micrograd")
    return facts


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def run_all(rounds: int, only: Sequence[str] | None, json_path: str | None, threads: int) -> int:
    from .workloads import all_workloads

    facts = environment(threads)
    print("autodiff_ref benchmarks: " + ", ".join(f"{k} {v}" for k, v in facts.items()))
    # check is a group of its own, run only when named; the other groups match by substring, in
    # which "check" would pick gradcheck too.
    micro = [key for key in only if key.lower() != "check"] if only else only
    workloads, skipped = all_workloads(threads, micro) if micro or not only else ([], [])
    rows: list[dict] = []
    if workloads:
        print(f"BLAS threads pinned to {threads}; {rounds} interleaved rounds; medians with min - max; "
              "x floor is the median over rounds of the time over the floor's time in the same round.")
        for message in skipped:
            print(f"skipped: {message}")
        for workload in workloads:
            check_agreement(workload)
        print("agreement: every engine's loss and gradients match the floor's.")
        time_workloads(workloads, rounds)
        rows = report(workloads)
        missed = [r for r in rows if r["target"] is not None and r["ratio_to_floor"] > r["target"]]
        print(f"\n{len(rows)} timings; autodiff_ref missed {len(missed)} target(s).")
    if only and any(key.lower() in "grading" for key in only):  # opt-in: minutes, not seconds
        from .grading import run_grading

        rows += run_grading()
    if only and "check" in [key.lower() for key in only]:  # opt-in too: a kernel per run
        from .check import run_check

        rows += run_check(rounds)
    if json_path:
        with open(json_path, "w") as file:
            json.dump({"environment": facts, "rounds": rounds, "results": rows}, file, indent=2)
        print(f"saved {json_path}")
    return 0
