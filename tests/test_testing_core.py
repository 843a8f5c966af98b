"""The shared machinery of every check: the hints ``guess_mistake`` gives (and when not), how an
interrupted check and a failed one are shown, and the ✓ line of a test with hidden siblings."""

import linecache
import signal
import sys

import numpy as np
import pytest

from autodiff_ref.testing.core import (
    HIDDEN_TESTS_NOTE,
    CheckFailure,
    CheckInterrupted,
    assert_close,
    guess_mistake,
    own_work,
    passed,
    watched,
)


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


# --- an interrupted check is blamed on the loop, not on the learner --------------------------------

def reference_sum(values):
    return sum(values)


def test_an_interrupt_that_unsets_the_profiler_is_not_called_tampering():
    # An interrupt arriving inside the profile function makes Python unset the profiler, exactly
    # as sys.setprofile(None) does here; the learner did nothing to it.
    def learner_sum(values):
        sys.setprofile(None)
        raise KeyboardInterrupt

    with pytest.raises(CheckInterrupted) as stopped:
        with own_work("sum", learner_sum, reference_sum):
            watched(learner_sum, [1.0])
    message = str(stopped.value)
    assert "interrupted" in message and "endless loop" in message
    assert "learner_sum (line" in message
    assert "setprofile" not in message


def test_an_endless_loop_stopped_by_a_timer_says_so():
    def step(node):
        return node

    def learner_order(root):
        stack = [root]
        while stack:  # never pops: the endless loop of a topological_order gone wrong
            step(stack[-1])

    previous = signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(CheckInterrupted, match="look for an endless loop"):
            with own_work("topological_order", learner_order, reference_sum):
                watched(learner_order, "root")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_learner_who_unsets_the_profiler_is_still_named():
    def learner_sum(values):
        sys.setprofile(None)
        return sum(values)

    with pytest.raises(CheckFailure, match="changed the Python profiler"):
        with own_work("sum", learner_sum, reference_sum):
            watched(learner_sum, [1.0])


# --- what IPython shows for a failed check ----------------------------------------------------------


def test_a_check_failure_renders_as_its_message_without_a_traceback():
    failure = CheckFailure("backward() left wrong gradients:\n  Hint: use += , not =")
    lines = failure._render_traceback_()
    assert lines == ["\x1b[0;31mCheckFailure\x1b[0m: backward() left wrong gradients:", "  Hint: use += , not ="]


def test_ipython_shows_the_message_and_no_frame_of_the_checks(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_cell(
            "from autodiff_ref.testing.core import assert_close\n"
            "assert_close([1.0, 2.5], [1.0, 2.0], 'the gradient of x')"
        )
    finally:
        InteractiveShell.clear_instance()
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "the gradient of x is wrong" in text and "expected 2, got 2.5" in text
    assert "autodiff_ref/testing" not in text and "Traceback" not in text


# --- a ✓ with hidden siblings --------------------------------------------------------------------


def run_as_cell(source: str, filename: str) -> None:
    """Run ``source`` as IPython runs a cell: compiled from a file name linecache knows."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    try:
        exec(compile(source, filename, "exec"), {"passed": passed})
    finally:
        del linecache.cache[filename]


def test_a_pass_in_the_learners_copy_says_hidden_checks_run_at_grading(capsys, tmp_path):
    run_as_cell('passed("add is right", hidden=True)\n', str(tmp_path / "released_cell.py"))
    assert capsys.readouterr().out.splitlines() == ["✓ add is right", HIDDEN_TESTS_NOTE]


def test_a_pass_where_the_hidden_tests_ran_says_nothing_more(capsys, tmp_path):
    source = '### BEGIN HIDDEN TESTS\nx = 1\n### END HIDDEN TESTS\npassed("add is right", hidden=True)\n'
    run_as_cell(source, str(tmp_path / "graded_cell.py"))
    assert capsys.readouterr().out.splitlines() == ["✓ add is right"]


def test_the_note_comes_once_per_run_of_a_cell_however_many_checks_pass(capsys, tmp_path):
    source = 'def check(name):\n    passed(name, hidden=True)\ncheck("add is right")\ncheck("mul is right")\n'
    cell = str(tmp_path / "released_cell.py")
    run_as_cell(source, cell)
    run_as_cell(source, cell)  # run again: its output is new, so it says it again
    once = ["✓ add is right", HIDDEN_TESTS_NOTE, "✓ mul is right"]
    assert capsys.readouterr().out.splitlines() == once + once

