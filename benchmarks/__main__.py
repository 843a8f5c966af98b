"""``python -m benchmarks``: time autodiff_ref against a hand-written NumPy floor and other engines.

BLAS is pinned to one thread before NumPy is imported (``--threads`` changes that), so that the
numbers measure the engines and not how many cores the BLAS library grabbed.

Groups: mlp scalar tiny gradcheck digits (the default: all five, about a minute), and two that
run only when named (``--only grading``, ``--only check``, or with others): grading is
``nbgrader autograde`` of one solved notebook per assignment, then of the whole course for a
class of four in two processes, with the grading sandbox and without, in temporary course
directories; check times ``autodiff-course check`` of each finished notebook beside nbclient
alone, and ``autodiff-course progress``, in up to three rounds. Both start a kernel per
notebook, so they take a few minutes.
"""

import argparse
import sys

from . import pin_blas_threads


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these groups: mlp scalar tiny gradcheck digits grading check (the last two run only when named)")
    parser.add_argument("--json", metavar="FILE", help="also save the results as JSON")
    args = parser.parse_args()
    pin_blas_threads(args.threads)

    from .harness import run_all  # imports NumPy: only now that the thread count is set

    return run_all(rounds=args.rounds, only=args.only, json_path=args.json, threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
