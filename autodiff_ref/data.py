"""Data for training: the handwritten digits, and mini-batches.

The digits are the UCI ML hand-written digits data set (Alpaydin and Kaynak, 1998; UCI Machine
Learning Repository, CC BY 4.0): 1,797 images of the digits 0-9, each 8x8 pixels. Each pixel counts
the set pixels (0-16) in a 4x4 block of an original 32x32 bitmap. The file ships inside this
package (``autodiff_ref/datasets/digits.csv.gz``; its README gives the source and licence), so
nothing is downloaded and nothing but NumPy is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

__all__ = ["Digits", "load_digits", "batches"]


class Digits(NamedTuple):
    """A train/test split. ``X_*``: float64 ``(N, 64)`` in [0, 1]; ``y_*``: int64 ``(N,)`` in 0..9."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


DIGITS_FILE = Path(__file__).parent / "datasets" / "digits.csv.gz"


def _bundled_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``X`` float64 ``(1797, 64)`` in [0, 1] and ``y`` int64 ``(1797,)``."""
    try:
        table = np.loadtxt(DIGITS_FILE, delimiter=",")  # 64 pixel counts 0..16, then the label
    except OSError as error:
        raise FileNotFoundError(
            f"the digits file that ships with autodiff_ref is missing or unreadable: {DIGITS_FILE} "
            f"({error}). Reinstall the package (pip install -e . in the course folder)."
        ) from None
    pixels, labels = table[:, :-1], table[:, -1]
    return np.ascontiguousarray(pixels) / 16.0, labels.astype(np.int64)


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """The 1,797 8x8 digits, split into train and test sets (1,437 / 360 by default).

    The split is stratified, so each digit makes up the same share of both sets, and fixed: the
    same ``test_fraction`` and ``seed`` give the same split on every call and every machine.
    Pixel values 0..16 are divided by 16, giving features in [0, 1]. Row ``i`` of ``X`` reshaped
    to ``(8, 8)`` is the image, top row first.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
    X, y = _bundled_digits()

    # Give each class its share of the test set; the rounding leftovers go to the classes with
    # the largest fractional parts, so the total is exactly ceil(test_fraction * N).
    classes, counts = np.unique(y, return_counts=True)
    n_test = int(np.ceil(test_fraction * len(y)))
    quota = counts * n_test / len(y)
    take = np.floor(quota).astype(int)
    leftover = np.argsort(-(quota - take), kind="stable")[: n_test - take.sum()]
    take[leftover] += 1

    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(y), dtype=bool)
    for label, n in zip(classes, take):
        members = np.flatnonzero(y == label)
        is_test[rng.permutation(members)[:n]] = True
    return Digits(X[~is_test], y[~is_test], X[is_test], y[is_test])


def batches(
    X: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: int | np.random.Generator | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(X_batch, y_batch)`` pairs that cover every row exactly once (one epoch).

    ``X`` has shape ``(N, ...)`` and ``y`` shape ``(N, ...)``; every batch has ``batch_size``
    rows except possibly the last, which holds the remainder. With ``shuffle`` the rows come in
    a random order drawn from ``seed``: pass one ``numpy.random.Generator`` for the whole run so
    that each epoch gets a new order while the run stays reproducible (an integer seed gives the
    same order every time it is used).
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ValueError(
            f"batches needs X and y with the same number of rows, got shapes {X.shape} and {y.shape}"
        )
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    # Checked and ordered now, not at the first next(): a bad argument fails where it is passed.
    order = np.random.default_rng(seed).permutation(len(X)) if shuffle else np.arange(len(X))
    row_groups = (order[start:start + batch_size] for start in range(0, len(X), batch_size))
    return ((X[rows], y[rows]) for rows in row_groups)
