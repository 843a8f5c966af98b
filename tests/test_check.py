"""`autodiff-course check` and `progress`: a learner's notebook graded with the full tests,
nothing modified, from any folder, on any copy, with or without the instructor's solutions/.

Most tests work in a temporary course folder (nbgrader_config.py, solutions/ and a learner
notebook under course/), the layout `check` finds by walking up from the notebook.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import nbformat
import pytest

from autodiff_ref.grading.check import ExerciseResult, format_table, main
from notebook_tools import REPO_ROOT, is_test_cell, nbgrader_metadata
from test_grading import BROKEN as ASSIGNMENT
from test_grading import COURSE_DIR, cell_with_id, notebook_file, points_of, read_notebook, solved_notebook


def learner_notebook() -> nbformat.NotebookNode:
    return read_notebook(notebook_file(COURSE_DIR, ASSIGNMENT))


@pytest.fixture
def course(tmp_path) -> Path:
    shutil.copy(REPO_ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(REPO_ROOT / "solutions" / ASSIGNMENT, tmp_path / "solutions" / ASSIGNMENT)
    (tmp_path / "course" / ASSIGNMENT).mkdir(parents=True)
    return tmp_path


def place(course: Path, notebook) -> Path:
    path = course / "course" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    nbformat.write(notebook, path)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def table_rows(output: str) -> dict[str, list[str]]:
    """grade_id -> the words of its row in the printed table, with the lines wrapped under it."""
    rows, row = {}, None
    for line in output.splitlines():
        words = line.split()
        if words and words[0].startswith("test_"):
            row = rows[words[0]] = words
        elif row is not None and line.startswith(" " * 6):
            row += words
        else:
            row = None
    return rows


def test_a_finished_notebook_passes_with_exit_status_0(course, capsys):
    path = place(course, solved_notebook(ASSIGNMENT))
    before = digest(path)
    assert main(["check", str(path)]) == 0
    output = capsys.readouterr().out
    total = sum(points_of(ASSIGNMENT).values())
    assert f"{total:g} / {total:g}" in output
    assert all(row[4] == "pass" for row in table_rows(output).values())
    assert digest(path) == before


def test_an_untouched_notebook_fails_each_exercise_with_its_reason(course, capsys):
    path = place(course, learner_notebook())
    before = digest(path)
    assert main(["check", str(path)]) == 1
    rows = table_rows(capsys.readouterr().out)
    assert set(rows) == set(points_of(ASSIGNMENT))
    for grade_id, points in points_of(ASSIGNMENT).items():
        assert rows[grade_id][1:5] == ["0", "/", f"{points:g}", "FAIL"]
        assert "NotImplementedError" in " ".join(rows[grade_id][5:]) or "not written" in " ".join(rows[grade_id][5:])
    assert digest(path) == before


def test_an_edited_test_cell_is_replaced_by_the_instructors(course, capsys):
    notebook = learner_notebook()
    for cell in notebook.cells:
        if is_test_cell(cell):
            cell.source = "pass"
    path = place(course, notebook)
    assert main(["check", str(path)]) == 1
    output = capsys.readouterr().out
    assert all(row[4] == "FAIL" for row in table_rows(output).values())
    assert "note: you changed cell test_evaluate; the course's version ran instead" in output


def test_a_deleted_test_cell_is_put_back_and_named(course, capsys):
    notebook = solved_notebook(ASSIGNMENT)
    notebook.cells.remove(cell_with_id(notebook, "test_evaluate"))
    assert main(["check", str(place(course, notebook))]) == 0
    output = capsys.readouterr().out
    assert table_rows(output)["test_evaluate"][4] == "pass"
    assert "note: cell test_evaluate was missing; the course's version was put back and ran" in output


def test_a_test_cell_pasted_twice_counts_once_and_is_named(course, capsys):
    # As nbgrader grades it: the last copy is the test, the earlier one runs as the learner's code.
    notebook = solved_notebook(ASSIGNMENT)
    test = cell_with_id(notebook, "test_evaluate")
    pasted = nbformat.from_dict(test)
    pasted.id = "pasted-copy"  # Jupyter gives a pasted cell an id of its own
    notebook.cells.insert(notebook.cells.index(test) + 1, pasted)
    assert main(["check", str(place(course, notebook))]) == 0
    output = capsys.readouterr().out
    assert table_rows(output)["test_evaluate"][4] == "pass"
    assert sum(line.split()[:1] == ["test_evaluate"] for line in output.splitlines()) == 1
    total = sum(points_of(ASSIGNMENT).values())
    assert f"{total:g} / {total:g}" in output
    assert "note: cell test_evaluate appears more than once; as in grading, only its last copy counts" in output


def test_monkeypatched_checks_do_not_earn_points(course, capsys):
    from test_grading import monkeypatching_notebook

    assert main(["check", str(place(course, monkeypatching_notebook()))]) == 1
    output = capsys.readouterr().out
    rows = table_rows(output)
    # The source scan refuses the cell that fakes the checks, as grading does: its own exercise
    # scores 0, and the wrong evaluate is caught by the checks it tried to fake.
    assert {grade_id for grade_id, row in rows.items() if row[4] == "FAIL"} == {"test_build_z", "test_evaluate"}
    assert "note: build_z, line 2: imports autodiff_ref.testing, which no answer here needs (not run" in output


def test_reordered_cells_are_named(course, capsys):
    notebook = learner_notebook()
    first, second = (
        index for index, cell in enumerate(notebook.cells)
        if nbgrader_metadata(cell).get("grade_id") in ("test_build_z", "test_evaluate")
    )
    notebook.cells[first], notebook.cells[second] = notebook.cells[second], notebook.cells[first]
    assert main(["check", str(place(course, notebook))]) == 1
    assert "out of order" in capsys.readouterr().out


def test_a_file_that_is_not_json_gets_a_clear_error(course, capsys):
    path = course / "course" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    path.write_text('{"cells": [ not JSON')
    assert main(["check", str(path)]) == 1
    assert "is not a readable notebook" in capsys.readouterr().out
    assert path.read_text() == '{"cells": [ not JSON'


def test_a_notebook_outside_any_course_runs_its_own_intact_tests_and_says_so(tmp_path, monkeypatch, capsys):
    # A learner with nothing but the notebook: its test cells whose nbgrader checksum still
    # matches are the tests; an edited one counts for nothing.
    notebook = solved_notebook(ASSIGNMENT)
    edited = cell_with_id(notebook, "test_evaluate")
    edited.source = 'passed("evaluate: trust me")'
    path = tmp_path / "Downloads" / "homework.ipynb"
    path.parent.mkdir()
    nbformat.write(notebook, path)
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(path)]) == 1
    output = capsys.readouterr().out
    rows = table_rows(output)
    assert "test_evaluate" not in rows
    assert all(row[4] == "pass" for row in rows.values()) and len(rows) == len(points_of(ASSIGNMENT)) - 1
    assert "cell test_evaluate does not match the nbgrader checksum the course gave it: it counts for nothing" in output
    assert f"no course folder found at or above {path.parent.resolve()} and {tmp_path.resolve()}" in output
    assert "hidden tests are not in this copy" in output


def test_a_course_folder_named_with_course_that_is_not_one_gets_a_clear_error(tmp_path, capsys):
    path = tmp_path / f"{ASSIGNMENT}.ipynb"
    nbformat.write(learner_notebook(), path)
    assert main(["check", str(path), "--course", str(tmp_path / "nowhere")]) == 1
    assert "nowhere is not a course folder: expected solutions/ or course/" in capsys.readouterr().out


def test_a_notebook_of_another_course_is_named(course, capsys):
    stranger = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    path = course / "elsewhere.ipynb"
    nbformat.write(stranger, path)
    assert main(["check", str(path)]) == 1
    assert "elsewhere.ipynb shares no cell (no grade_id) with any notebook of the course" in capsys.readouterr().out


def test_the_reference_implementation_handed_in_fails_with_the_reason(tmp_path, capsys):
    # The source scan refuses the whole cell, as grading does, so Sub (in the same cell) fails too.
    from test_grading import REFERENCE_MUL_REFUSED, TENSOR_OPS, reference_mul_notebook

    shutil.copy(REPO_ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(REPO_ROOT / "solutions" / TENSOR_OPS, tmp_path / "solutions" / TENSOR_OPS)
    path = tmp_path / "course" / TENSOR_OPS / f"{TENSOR_OPS}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(reference_mul_notebook(), path)
    assert main(["check", str(path)]) == 1
    output = capsys.readouterr().out
    failed = {grade_id for grade_id, row in table_rows(output).items() if row[4] == "FAIL"}
    assert failed == REFERENCE_MUL_REFUSED
    assert "imports autodiff_ref.ops" in " ".join(output.split())
    assert "not run, as in grading: its exercise scores 0" in " ".join(output.split())


# --- where the notebook is, and which course it belongs to ---------------------------------------


def test_check_from_inside_the_notebooks_folder_with_a_relative_path(course, monkeypatch, capsys):
    path = place(course, solved_notebook(ASSIGNMENT))
    monkeypatch.chdir(path.parent)
    assert main(["check", f"./{path.name}"]) == 0
    assert f"{sum(points_of(ASSIGNMENT).values()):g} / {sum(points_of(ASSIGNMENT).values()):g}" in capsys.readouterr().out


def test_a_renamed_copy_elsewhere_is_recognised_by_its_cells(course, tmp_path_factory, monkeypatch, capsys):
    downloads = tmp_path_factory.mktemp("Downloads")
    path = downloads / f"{ASSIGNMENT} (1).ipynb"
    nbformat.write(solved_notebook(ASSIGNMENT), path)
    monkeypatch.chdir(course)  # the course is found from the working directory
    assert main(["check", str(path)]) == 0
    monkeypatch.chdir(downloads)  # or named with --course, after the notebook
    assert main(["check", path.name, "--course", str(course)]) == 0
    output = capsys.readouterr().out
    assert "note:" not in output


def test_a_course_without_solutions_runs_the_visible_tests_and_says_so(course, capsys):
    # A class hands out course/ only: the released notebook is the reference, and the learner
    # is told in one sentence that the hidden tests did not run.
    released = course / "course" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    shutil.copy(notebook_file(COURSE_DIR, ASSIGNMENT), released)
    shutil.rmtree(course / "solutions")
    copy = course / "course" / ASSIGNMENT / "my_work.ipynb"
    nbformat.write(solved_notebook(ASSIGNMENT), copy)
    assert main(["check", str(copy)]) == 0
    output = capsys.readouterr().out
    assert all(row[4] == "pass" for row in table_rows(output).values())
    assert output.count("note:") == 1
    assert ("note: the hidden tests are not in this copy of the course (it has no solutions/ folder), so only "
            "the visible tests ran and your graded score can be lower") in output


# --- what counts: only the course's graded cells, with the course's points -------------------------


def bonus_cell() -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell('print("bonus")')
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "bonus", "locked": True, "points": 50,
                                 "schema_version": 3, "solution": False, "task": False}
    return cell


@pytest.mark.parametrize("with_solutions", [True, False])
def test_a_graded_cell_the_learner_added_counts_for_nothing(course, with_solutions, capsys):
    if not with_solutions:
        shutil.rmtree(course / "solutions")
        shutil.copy(notebook_file(COURSE_DIR, ASSIGNMENT), course / "course" / ASSIGNMENT / "released.ipynb")
        (course / "course" / ASSIGNMENT / "released.ipynb").rename(
            course / "course" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    notebook = solved_notebook(ASSIGNMENT)
    notebook.cells.append(bonus_cell())
    cell_with_id(notebook, "test_evaluate").metadata["nbgrader"]["points"] = 30
    path = course / "course" / ASSIGNMENT / "mine.ipynb"
    nbformat.write(notebook, path)
    assert main(["check", str(path)]) == 0
    output = capsys.readouterr().out
    total = sum(points_of(ASSIGNMENT).values())
    assert f"total {total:g} / {total:g}" in " ".join(output.split())
    assert "bonus" not in table_rows(output)
    assert table_rows(output)["test_evaluate"][1:4] == [f"{points_of(ASSIGNMENT)['test_evaluate']:g}", "/",
                                                        f"{points_of(ASSIGNMENT)['test_evaluate']:g}"]
    # In the grader's words (keep_only_handed_out_grading), as the grading note says it.
    notes = " ".join(output.split())
    assert ("note: cell bonus worth 50 points is not in the course's notebook; it was graded as an "
            "ordinary cell") in notes
    assert "note: cell test_evaluate's points was changed from" in notes and "the course's value counts" in notes


def test_without_solutions_a_notebook_answered_in_place_cannot_add_points(course, capsys):
    # The released notebook is the learner's own file here: only cells that still match the
    # checksums nbgrader gave them at release count.
    shutil.rmtree(course / "solutions")
    notebook = solved_notebook(ASSIGNMENT)
    notebook.cells.append(bonus_cell())
    cell_with_id(notebook, "test_evaluate").metadata["nbgrader"]["points"] = 30
    assert main(["check", str(place(course, notebook))]) == 1
    output = capsys.readouterr().out
    rows = table_rows(output)
    assert "bonus" not in rows and "test_evaluate" not in rows
    total = sum(points_of(ASSIGNMENT).values()) - points_of(ASSIGNMENT)["test_evaluate"]
    assert f"total {total:g} / {total:g}" in " ".join(output.split())
    for grade_id in ("test_evaluate", "bonus"):
        assert f"cell {grade_id} does not match the nbgrader checksum the course gave it: it counts for nothing" in output


# --- options, messages, the end of a run -----------------------------------------------------------


def test_options_go_before_or_after_the_command(course, capsys):
    path = place(course, solved_notebook(ASSIGNMENT))
    assert main(["check", str(path), "--timeout", "60"]) == 0
    assert main(["--timeout", "60", "check", str(path)]) == 0
    with pytest.raises(SystemExit):
        main(["check", str(path), "--timeout", "0"])
    assert "a cell needs at least 1 s" in capsys.readouterr().err


def test_a_failure_shows_the_whole_message_wrapped_to_the_terminal():
    result = ExerciseResult(
        "test_backward", 4, 0,
        "backward() on out = x + x (x used twice) with x = 1.383 left wrong gradients in the leaves:",
        ["  x.grad: expected 2, got 1", "  Hint: a node used twice gets a share from each use: add "
         "to the ledger with +=, do not overwrite it with ="],
    )
    table = format_table("03_scalar_autodiff.ipynb", [result], width=60)
    assert all(len(line) <= 60 for line in table.splitlines())
    words = " ".join(table.split())
    assert "left wrong gradients in the leaves: x.grad: expected 2, got 1" in words
    assert "add to the ledger with +=, do not overwrite it with =" in words


def test_the_hint_of_a_real_failure_reaches_the_table(tmp_path, capsys):
    name = "03_scalar_autodiff"
    shutil.copy(REPO_ROOT / "nbgrader_config.py", tmp_path)
    shutil.copytree(REPO_ROOT / "solutions" / name, tmp_path / "solutions" / name)
    notebook = solved_notebook(name)
    answer = cell_with_id(notebook, "backward")
    answer.source = answer.source.replace("ledger.get(node_input, 0.0) + upstream * local", "upstream * local")
    path = tmp_path / "course" / name / f"{name}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    assert main(["check", str(path)]) == 1
    output = capsys.readouterr().out
    failing = output[output.index("test_backward "):].split("\n  test_")[0]
    assert len(failing.splitlines()) > 1  # the lines after the first: the values, the hint
    assert "Hint" in failing or "expected" in failing


def test_an_endless_loop_is_stopped_after_the_timeout_and_named_as_such(course, capsys):
    notebook = solved_notebook(ASSIGNMENT)
    answer = cell_with_id(notebook, "topological_order")
    answer.source = answer.source.replace("stack.pop()", "stack[-1]")  # never empties the stack
    assert main(["check", str(place(course, notebook)), "--timeout", "5"]) == 1
    output = capsys.readouterr().out
    rows = table_rows(output)
    assert " ".join(rows["test_topological_order"][5:]) == "stopped after 5 s: look for an endless loop"
    assert "setprofile" not in output and "profiler" not in output


def test_a_loop_that_swallows_the_interrupt_stops_the_kernel_instead_of_every_later_cell(course, capsys):
    notebook = solved_notebook(ASSIGNMENT)
    answer = cell_with_id(notebook, "topological_order")
    answer.source += (
        "\nwhile True:  # an interrupt does not end it\n"
        "    try:\n        while True:\n            pass\n    except KeyboardInterrupt:\n        pass\n"
    )
    assert main(["check", str(place(course, notebook)), "--timeout", "3"]) == 1
    rows = table_rows(capsys.readouterr().out)
    stopped = [grade_id for grade_id, row in rows.items() if "would not stop" in " ".join(row)]
    # Every test after the answer is marked at once, instead of each waiting out the time limit.
    assert stopped and stopped == list(rows)[list(rows).index(stopped[0]):]


def test_the_kernel_is_shut_down_without_an_interrupt(course, monkeypatch, capsys):
    # An interrupt at shutdown made the kernel log "KeyboardInterrupt caught in kernel" into
    # the learner's terminal when it landed inside a message handler.
    from jupyter_client.manager import AsyncKernelManager

    interrupts = []
    original = AsyncKernelManager._async_interrupt_kernel

    async def counted(self):
        interrupts.append(self)
        await original(self)

    monkeypatch.setattr(AsyncKernelManager, "_async_interrupt_kernel", counted)
    monkeypatch.setattr(AsyncKernelManager, "interrupt_kernel", counted)
    assert main(["check", str(place(course, solved_notebook(ASSIGNMENT)))]) == 0
    assert interrupts == []


def test_progress_checks_every_notebook_and_ends_with_the_course_total(course, capsys):
    other = "02_derivatives_and_chain_rule"
    shutil.copytree(REPO_ROOT / "solutions" / other, course / "solutions" / other)
    (course / "course" / other).mkdir()
    shutil.copy(notebook_file(COURSE_DIR, other), course / "course" / other)
    place(course, solved_notebook(ASSIGNMENT))
    assert main(["progress", str(course / "course"), "--timeout", "60"]) == 1
    output = capsys.readouterr().out
    assert output.index(ASSIGNMENT) < output.index(other)
    done = sum(points_of(ASSIGNMENT).values())
    possible = done + sum(points_of(other).values())
    assert output.rstrip().splitlines()[-1] == f"course total: {done:g} / {possible:g} points; 1 of 2 notebooks complete"
