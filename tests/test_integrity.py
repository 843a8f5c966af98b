"""The grader's defences, one by one and in process: putting back replaced checks, spotting
edited, deleted and reordered cells, and the names a read-only cell binds.

`tests/test_grading.py` runs the same defences through nbgrader on whole notebooks.
"""

from __future__ import annotations

import sys

import nbformat
import numpy as np
import pytest

import autodiff_ref.testing
from autodiff_ref.grading import integrity
from autodiff_ref.grading.cells import bound_names, keep_only_handed_out_grading, put_back_deleted, tampering
from autodiff_ref.grading.preprocessors import audit


@pytest.fixture
def guard():
    guard = integrity.snapshot()
    yield guard
    guard.restore()  # whatever a failing test left replaced


def test_nothing_to_put_back_when_nothing_was_replaced(guard):
    assert guard.restore() == []


def test_replaced_numpy_comparisons_and_checks_are_put_back(guard):
    allclose, check_function = np.allclose, autodiff_ref.testing.check_function
    np.allclose = lambda *args, **kwargs: True
    np.testing.assert_allclose = lambda *args, **kwargs: None
    autodiff_ref.testing.check_function = lambda *args, **kwargs: None
    put_back = guard.restore()
    assert {"numpy.allclose", "numpy.testing.assert_allclose", "autodiff_ref.testing.check_function"} <= set(put_back)
    assert np.allclose is allclose and autodiff_ref.testing.check_function is check_function
    assert not np.allclose(1.0, 2.0)


def test_a_replaced_function_body_is_put_back(guard):
    from autodiff_ref.testing import core

    code = core.assert_close.__code__
    core.assert_close.__code__ = (lambda *args, **kwargs: None).__code__
    assert guard.restore() == ["autodiff_ref.testing.core.assert_close.__code__"]
    assert core.assert_close.__code__ is code


def test_a_replaced_method_of_an_autodiff_ref_class_is_put_back(guard):
    from autodiff_ref import Tensor

    backward = Tensor.backward
    Tensor.backward = lambda self, *args, **kwargs: None
    assert "autodiff_ref.tensor.Tensor.backward" in guard.restore()
    assert Tensor.backward is backward


def test_a_rebound_name_from_a_read_only_cell_is_put_back(guard):
    namespace = vars(sys.modules["__main__"])
    namespace["check_function"] = autodiff_ref.testing.check_function
    try:
        guard.record(["check_function", "not_defined_anywhere"])
        namespace["check_function"] = print
        assert guard.restore() == ["the notebook's name check_function"]
        assert namespace["check_function"] is autodiff_ref.testing.check_function
    finally:
        namespace.pop("check_function", None)


def test_data_is_left_alone(guard):
    before = np.pi
    np.pi = 3.0
    try:
        assert guard.restore() == []
    finally:
        np.pi = before


def test_replacing_this_module_s_functions_does_not_switch_the_guard_off(guard):
    """The attack of issue #16: make restore a no-op, then replace a check."""
    real_snapshot, check_function = integrity.snapshot, autodiff_ref.testing.check_function
    integrity.snapshot = integrity._restore_shell = lambda *args, **kwargs: []
    autodiff_ref.testing.check_function = print
    put_back = guard.restore()
    assert {"autodiff_ref.grading.integrity.snapshot", "autodiff_ref.testing.check_function"} <= set(put_back)
    assert integrity.snapshot is real_snapshot and autodiff_ref.testing.check_function is check_function


def test_replacing_the_guard_s_own_code_is_undone(guard):
    def closure_doing_nothing(bound_by_fixed_cells):
        def record(names):
            return bound_by_fixed_cells
        return record

    real_code = guard.record.__code__
    guard.record.__code__ = closure_doing_nothing({}).__code__  # Python checks only the closure's size
    assert "autodiff_ref.grading.integrity.snapshot.<locals>.record.__code__" in guard.restore()
    assert guard.record.__code__ is real_code


def test_install_puts_the_guard_under_the_name_it_is_given():
    import builtins

    integrity.install("_guard_for_this_test")
    try:
        assert builtins._guard_for_this_test.restore() == []
    finally:
        del builtins._guard_for_this_test


def notebook(*grade_ids: str, sources: dict[str, str] | None = None) -> nbformat.NotebookNode:
    cells = []
    for grade_id in grade_ids:
        cell = nbformat.v4.new_code_cell((sources or {}).get(grade_id, f"# {grade_id}"))
        answer = grade_id.startswith("answer")
        cell.metadata["nbgrader"] = {"grade_id": grade_id, "locked": not answer, "solution": answer,
                                     "grade": grade_id.startswith("test")}
        if grade_id.startswith("test"):
            cell.metadata["nbgrader"]["points"] = 2
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


HANDED_OUT = ("intro", "answer_a", "test_a", "answer_b", "test_b")


def test_an_untouched_notebook_shows_no_tampering():
    learner = notebook(*HANDED_OUT, sources={"answer_a": "x = 1"})
    assert tampering(learner, notebook(*HANDED_OUT)) == ([], [], [])


def test_edited_deleted_and_moved_cells_are_named():
    edited = notebook(*HANDED_OUT, sources={"test_a": "pass"})
    assert tampering(edited, notebook(*HANDED_OUT)) == (["test_a"], [], [])
    deleted = notebook("intro", "answer_a", "answer_b", "test_b")
    assert tampering(deleted, notebook(*HANDED_OUT)) == ([], ["test_a"], [])
    moved = notebook("intro", "test_a", "answer_a", "answer_b", "test_b")
    assert tampering(moved, notebook(*HANDED_OUT))[2][0] == "test_a"


def test_a_deleted_cell_goes_back_where_it_was():
    learner = notebook("intro", "answer_a", "answer_b", "test_b")
    put_back_deleted(learner, notebook(*HANDED_OUT), "test_a")
    assert [cell.metadata["nbgrader"]["grade_id"] for cell in learner.cells] == list(HANDED_OUT)


def test_bound_names_reads_imports_and_assignments_past_magics():
    source = "%matplotlib inline\nimport numpy as np\nfrom autodiff_ref.testing import (\n    check_function,\n)\nx = 1\nf(x)"
    assert bound_names(source) == ["np", "check_function", "x"]
    assert bound_names("def broken(:\n") == []


def test_graded_cells_and_points_the_course_did_not_hand_out_count_for_nothing():
    learner = notebook(*HANDED_OUT, "test_bonus")
    learner.cells[-1].metadata["nbgrader"]["points"] = 50
    learner.cells[2].metadata["nbgrader"]["points"] = 20  # test_a
    learner.cells[1].metadata["nbgrader"].update(grade=True, points=10)  # answer_a made a graded cell
    changes = keep_only_handed_out_grading(learner, notebook(*HANDED_OUT))
    assert changes == [
        "cell answer_a's grade was changed from False to True; the course's value counts",
        "cell answer_a's points was changed from None to 10; the course's value counts",
        "cell test_a's points was changed from 2 to 20; the course's value counts",
        "cell test_bonus worth 50 points is not in the course's notebook; it was graded as an ordinary cell",
    ]
    assert learner.cells[1].metadata["nbgrader"] == notebook(*HANDED_OUT).cells[1].metadata["nbgrader"]
    assert learner.cells[2].metadata["nbgrader"]["points"] == 2
    assert "nbgrader" not in learner.cells[-1].metadata
    assert keep_only_handed_out_grading(notebook(*HANDED_OUT), notebook(*HANDED_OUT)) == []


def _graded_course(folder, sandbox: str | None):
    """A course folder with one graded notebook, whose metadata records ``sandbox`` if given."""
    learner = notebook(*HANDED_OUT)
    if sandbox is not None:
        learner.metadata["autodiff_grading"] = {"sandbox": sandbox}
    for kind in ("submitted", "autograded"):
        (folder / kind / "ann" / "a").mkdir(parents=True)
        nbformat.write(learner, folder / kind / "ann" / "a" / "a.ipynb")
    return folder


@pytest.mark.parametrize(("sandbox", "found"), [("off", ["graded without the sandbox (the instructor switched it off)"]),
                                                ("bubblewrap", []), (None, [])])
def test_audit_names_notebooks_graded_without_the_sandbox(tmp_path, sandbox, found):
    count, findings = audit(_graded_course(tmp_path, sandbox))
    assert count == 1 and [finding.what for finding in findings] == found


@pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # the gradebook built by hand below
def test_audit_names_scores_above_the_maximum_and_extra_credit(tmp_path):
    from nbgrader.api import Gradebook

    course = _graded_course(tmp_path, None)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        gradebook.add_assignment("a")
        gradebook.add_student("ann")
        gradebook.add_notebook("a", "a")
        for grade_id in ("test_a", "test_b"):
            gradebook.add_grade_cell(grade_id, "a", "a", max_score=2, cell_type="code")
        gradebook.add_submission("a", "ann")
        gradebook.find_grade("test_a", "a", "a", "ann").auto_score = 5
        gradebook.find_grade("test_b", "a", "a", "ann").auto_score = 2
        gradebook.find_grade("test_b", "a", "a", "ann").extra_credit = 1
        gradebook.db.commit()
    assert [finding.what for finding in audit(course)[1]] == [
        "test_a scored 5, above its maximum of 2", "test_b has 1 points of extra credit"]


def test_the_reference_called_from_another_thread_during_a_check_earns_nothing():
    """Issue #16, attack 6, without the source scan: the check's watch follows new threads."""
    import threading

    from autodiff_ref import ops
    from autodiff_ref.testing import check_unbroadcast
    from autodiff_ref.testing.core import CheckFailure

    def unbroadcast(grad, shape):
        result = []
        worker = threading.Thread(target=lambda: result.append(ops.unbroadcast(grad, shape)))
        worker.start()
        worker.join()
        return result[0]

    with pytest.raises(CheckFailure, match="calls autodiff_ref.ops.unbroadcast, the reference implementation, from another thread"):
        check_unbroadcast(unbroadcast)
    assert threading.getprofile() is None


def test_feedback_shows_a_hidden_test_s_result_and_message_but_not_its_source():
    from autodiff_ref.grading.feedback import HIDDEN_TESTS_NOTE, HideHiddenTests

    def graded_test_cell():
        cell = nbformat.v4.new_code_cell(
            "check(f)\n    ### BEGIN HIDDEN TESTS\n    check(f, seed=11)\n    ### END HIDDEN TESTS\npassed('f')")
        cell.outputs = [nbformat.v4.new_output(
            "error", ename="CheckFailure", evalue="f(2) is wrong: expected 4, got 5",
            traceback=["----> 3 check(f, seed=11)", "CheckFailure: f(2) is wrong: expected 4, got 5"])]
        return nbformat.v4.new_notebook(cells=[cell])

    hidden, _ = HideHiddenTests().preprocess(graded_test_cell(), {})
    cell = hidden.cells[0]
    assert cell.source == f"check(f)\n    {HIDDEN_TESTS_NOTE}\npassed('f')"
    assert cell.outputs[0].traceback == ["CheckFailure: f(2) is wrong: expected 4, got 5"]
    shown, _ = HideHiddenTests(show_hidden_tests=True).preprocess(graded_test_cell(), {})
    original = graded_test_cell().cells[0]
    assert (shown.cells[0].source, shown.cells[0].outputs) == (original.source, original.outputs)
