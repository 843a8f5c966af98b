"""``python -m benchmarks``: time autodiff_ref against a hand-written NumPy floor and other engines.

BLAS is pinned to one thread before NumPy is imported (``--threads`` changes that), so that the
numbers measure the engines and not how many cores the BLAS library grabbed.

Groups: mlp scalar tiny gradcheck digits (the default: all five, about a minute), and grading,
which runs only when named (``--only grading``, or with others): ``nbgrader autograde`` of one
solved notebook per assignment, 01 to 07, once each, in a temporary course directory. It starts
a kernel per notebook, so it takes a few minutes.
"""

import argparse
import sys

from . import pin_blas_threads


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (default 7)")
    parser.add_argument("--only", nargs="*", default=None, help="run only these groups: mlp scalar tiny gradcheck digits grading (grading runs only when named)")
    parser.add_argument("--json", metavar="FILE", help="also save the results as JSON")
    args = parser.parse_args()
    pin_blas_threads(args.threads)

    from .harness import run_all  # imports NumPy: only now that the thread count is set

    return run_all(rounds=args.rounds, only=args.only, json_path=args.json, threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
