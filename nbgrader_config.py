"""nbgrader configuration for a course directory that is a clone of this repository.

`solutions/` holds the instructor notebooks (nbgrader's source directory) and `course/` the
learner notebooks generated from them (its release directory). Collected work goes to
`submitted/`, grading writes `autograded/`, `feedback/` and `gradebook.db`; git ignores all four.
"""

import os

from nbgrader.converters import Autograde, GenerateFeedback
from nbgrader.preprocessors import Execute, GetGrades, OverwriteCells

from autodiff_ref.grading.feedback import HideHiddenTests
from autodiff_ref.grading.preprocessors import FlagTampering, GuardedExecute
from autodiff_ref.grading.sandbox import GiB, MiB, stop_unless_sandbox_works
from autodiff_ref.grading.submissions import refuse_links

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

# The folder of this file: nbgrader reads it from the folder it runs in. ("." would do as well,
# but every command would warn that the root is not absolute.)
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///gradebook.db?timeout=60"

# The learner version keeps a clear prompt where each solution was cut out.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# One endless loop costs its own cell, not the class: each cell gets this many seconds, then
# it is interrupted and scored 0, and the notebook goes on with the next cell.
c.ExecutePreprocessor.timeout = 120

# Grading skips drawing figures (plots cost 1-2 s per notebook and earn no points): the autograded
# notebooks and the feedback show "<Figure ...>" where a plot was. Delete this line to keep them.
c.Execute.extra_arguments = ["--InlineBackend.figure_formats=set()"]

# Before nbgrader restores the test cells: name edited and deleted ones in a grading note at the
# top of the autograded notebook, put deleted ones back, and refuse a notebook whose cells were
# reordered (that student gets an error; the class is still graded). Graded cells, grade ids and
# points count only as handed out. Answer cells are scanned before they run: one that uses what no
# honest answer needs (exec, inspect, threads, sys, ...) does not run, and its exercise scores 0;
# set refuse_flagged_code to False to run it and only name it in the grading note. A notebook
# allows more in its metadata ("autodiff_grading": {"allow": [...]}), every notebook with this:
c.FlagTampering.refuse_flagged_code = True
c.FlagTampering.allowed_constructs = []
sanitize = Autograde.class_traits()["sanitize_preprocessors"].default()
c.Autograde.sanitize_preprocessors = [
    *sanitize[: sanitize.index(OverwriteCells)], FlagTampering, *sanitize[sanitize.index(OverwriteCells):]
]
# Run notebooks so that a kernel death (os._exit) keeps the points of the cells before it, and
# whatever a notebook replaced in the checks (np.allclose, the checking helpers) is put back
# before each test cell. Last, once the scores are saved, the hidden tests' source is taken out of
# the autograded notebook (see HideHiddenTests below).
c.Autograde.autograde_preprocessors = [
    *[
        GuardedExecute if preprocessor is Execute else preprocessor
        for preprocessor in Autograde.class_traits()["autograde_preprocessors"].default()
    ],
    HideHiddenTests,
]

# The autograded notebooks and the feedback show each hidden test's result and message, not its
# source (so that returning either does not hand out the tests, which can be used again next
# year). Regrading restores the tests from gradebook.db, not from autograded/. True shows the
# hidden tests in full in both (it applies to notebooks autograded after it is set).
c.HideHiddenTests.show_hidden_tests = False
feedback = GenerateFeedback.class_traits()["preprocessors"].default()
c.GenerateFeedback.preprocessors = [
    *feedback[: feedback.index(GetGrades) + 1], HideHiddenTests, *feedback[feedback.index(GetGrades) + 1:]
]

# Every kernel that runs a student's code starts inside a bubblewrap sandbox
# (autodiff_ref/grading/sandbox.py): it sees the Python environment and autodiff_ref read-only and a
# throwaway copy of the student's folder, not the course folder (solutions/, gradebook.db,
# submitted/, ...), not your home, not the network. If bwrap is missing or cannot start here,
# `nbgrader autograde` stops before the first student and says what to do.
# "off" runs kernels as stock nbgrader does, with everything you can reach in reach of every
# submission: only for work you trust. Each notebook records which it was, and
# `autodiff-course audit` lists those graded with "off".
SANDBOX = "bubblewrap"
c.GuardedExecute.sandbox = SANDBOX


def before_each_student(**hook_arguments):
    """Run by `nbgrader autograde` before it copies a student's files (see the two functions)."""
    refuse_links(**hook_arguments)
    if SANDBOX != "off":
        stop_unless_sandbox_works(**hook_arguments)


c.Autograde.pre_convert_hook = before_each_student

# A submission is the student's own files only. nbgrader follows symbolic links when it copies one
# (with your rights): collect leaves links behind and names them in its log, and autograde stops
# before a student whose submitted/ folder holds one (put there by hand: a zip, an LMS), saying how
# to delete them. See autodiff_ref/grading/submissions.py.
c.ExchangeFactory.collect = "autodiff_ref.grading.submissions.CollectWithoutLinks"

# Limits for each kernel. A cell that goes past one fails (MemoryError, an OSError) or, at worst,
# its kernel dies: that student loses the cells from there on (see GuardedExecute), the class goes on.
# Memory (address space): a runaway array gets a MemoryError instead of the grading machine's RAM.
# The course's notebooks need about 1 GiB of it.
c.SandboxedKernelManager.memory_limit = 2 * GiB
# Processes and threads: a fork bomb stops here. A kernel runs about 10 threads.
c.SandboxedKernelManager.process_limit = 256
# Largest file a kernel may write (its notebook folder's copy, /tmp).
c.SandboxedKernelManager.file_size_limit = 64 * MiB
# All the kernel may write in total: its /tmp (working folder included) is in memory, this big.
c.SandboxedKernelManager.scratch_size = 256 * MiB
