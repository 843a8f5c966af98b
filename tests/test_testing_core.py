"""The shared comparison behind every check: which hints ``guess_mistake`` gives, and when not."""

import numpy as np
import pytest

from autodiff_ref.testing.core import CheckFailure, assert_close, guess_mistake


@pytest.mark.parametrize(
    "got, expected, words",
    [
        ([2.0, -4.0, 6.0], [1.0, -2.0, 3.0], "every value is 2 times the expected one"),
        ([-1.0, 2.0], [1.0, -2.0], "wrong sign"),
        (-0.5, 0.5, "wrong sign"),
        ([0.0, 0.0], [1.0, 2.0], "all zeros"),
        ([[1.0, 3.0], [2.0, 4.0]], [[1.0, 2.0], [3.0, 4.0]], "transpose"),
        ([1.0, np.nan], [1.0, 2.0], "nan or inf"),
    ],
)
def test_usual_mistakes_are_named(got, expected, words):
    assert words in guess_mistake(np.array(got), np.array(expected))


@pytest.mark.parametrize(
    "got, expected",
    [
        (3.4, 1.0),  # any one number is some multiple of another: no evidence of a constant factor
        ([0.0, 3.4], [0.0, 1.0]),
        ([1.0, 7.0], [1.0, 2.0]),
        ([0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]),  # a mask the wrong way round is not "0 times"
        ([2.0, 4.0, 5.0], [1.0, 2.0, 0.0]),  # the factor must hold where zeros are expected too
    ],
)
def test_no_constant_factor_unless_every_element_shows_it(got, expected):
    assert guess_mistake(np.array(got), np.array(expected)) is None


def test_the_message_names_the_element_and_both_values():
    with pytest.raises(CheckFailure) as failure:
        assert_close(np.array([1.0, 2.0, 3.5]), np.array([1.0, 2.0, 3.0]), "the gradient of x")
    message = str(failure.value)
    assert "the gradient of x is wrong" in message
    assert "1 of 3 elements differ; the worst is element [2]" in message
    assert "expected 3, got 3.5" in message
