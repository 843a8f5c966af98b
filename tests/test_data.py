"""autodiff_ref.data: the digits split and mini-batches."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from autodiff_ref import data


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def test_load_digits_shapes_dtypes_and_ranges(digits):
    X_train, y_train, X_test, y_test = digits
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64)
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert X_train.dtype == X_test.dtype == np.float64
    assert y_train.dtype == y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() == 0.0 and X.max() == 1.0
        assert np.all(np.round(X * 16) == X * 16), "pixel counts 0..16 divided by 16"
    assert set(np.unique(y_train)) == set(np.unique(y_test)) == set(range(10))


def test_the_shipped_file_is_the_published_data_set():
    # The SHA-256 that autodiff_ref/datasets/README.md records for the UCI digits as shipped.
    digest = hashlib.sha256(data.DIGITS_FILE.read_bytes()).hexdigest()
    assert digest == "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"


def test_the_split_uses_every_image_exactly_once(digits):
    table = np.loadtxt(data.DIGITS_FILE, delimiter=",")
    ours = np.concatenate([digits.X_train, digits.X_test]) * 16
    pairs = lambda X, y: sorted(map(tuple, np.column_stack([X, y]).tolist()))  # noqa: E731
    assert pairs(ours, np.concatenate([digits.y_train, digits.y_test])) == pairs(table[:, :-1], table[:, -1])
    # The class sizes of the 1,797 UCI test-set digits.
    assert np.bincount(table[:, -1].astype(int)).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_the_digits_need_nothing_but_numpy():
    # A fresh interpreter in which scikit-learn cannot be imported still loads them.
    code = (
        "import sys; sys.modules['sklearn'] = None\n"
        "from autodiff_ref.data import load_digits\n"
        "print(load_digits().X_train.shape)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "(1437, 64)"


def test_the_split_is_stable_across_calls(digits):
    again = data.load_digits()
    for ours, theirs in zip(digits, again):
        np.testing.assert_array_equal(ours, theirs)
    other = data.load_digits(seed=1)
    assert not np.array_equal(other.y_test, digits.y_test)


def test_the_split_is_stratified(digits):
    counts_all = np.bincount(np.concatenate([digits.y_train, digits.y_test]))
    counts_test = np.bincount(digits.y_test)
    # Each digit's test share is its overall share of the 360 test images, up to rounding.
    assert np.all(np.abs(counts_test - counts_all * 360 / 1797) < 1)


def test_a_missing_data_file_gets_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "DIGITS_FILE", tmp_path / "digits.csv.gz")
    with pytest.raises(FileNotFoundError, match=r"digits file that ships with autodiff_ref is missing.*Reinstall"):
        data.load_digits()


def test_bad_test_fraction():
    with pytest.raises(ValueError, match="test_fraction must be between 0 and 1"):
        data.load_digits(test_fraction=1.5)


def test_batches_cover_every_sample_once_per_epoch():
    X = np.arange(23 * 2).reshape(23, 2)
    y = np.arange(23)
    rng = np.random.default_rng(0)
    orders = []
    for _ in range(2):
        pieces = list(data.batches(X, y, 5, seed=rng))
        assert [len(yb) for _, yb in pieces] == [5, 5, 5, 5, 3], "last partial batch included"
        for Xb, yb in pieces:  # rows of X and y stay paired
            np.testing.assert_array_equal(Xb, X[yb])
        seen = np.concatenate([yb for _, yb in pieces])
        assert sorted(seen) == list(range(23))
        orders.append(seen)
    assert not np.array_equal(orders[0], orders[1]), "one generator: each epoch a new order"


def test_batches_order_follows_the_seed_and_shuffle_flag():
    X, y = np.zeros((10, 1)), np.arange(10)
    first = np.concatenate([yb for _, yb in data.batches(X, y, 4, seed=3)])
    again = np.concatenate([yb for _, yb in data.batches(X, y, 4, seed=3)])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, y)
    in_order = [yb.tolist() for _, yb in data.batches(X, y, 4, shuffle=False)]
    assert in_order == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(data.batches(np.zeros((0, 3)), np.zeros(0), 4)) == []


def test_batches_reject_bad_arguments_when_called():
    X, y = np.zeros((10, 2)), np.zeros(10)
    with pytest.raises(ValueError, match=r"same number of rows, got shapes \(10, 2\) and \(9,\)"):
        data.batches(X, y[:9], 4)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size must be a positive integer"):
            data.batches(X, y, bad)
