"""nbgrader configuration for a course directory that is a clone of this repository.

`solutions/` holds the instructor notebooks (nbgrader's source directory) and `course/` the
learner notebooks generated from them (its release directory). Collected work goes to
`submitted/`, grading writes `autograded/`, `feedback/` and `gradebook.db`; git ignores all four.
"""

from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute

from autodiff_ref.grading import KernelDeathTolerantExecute

c = get_config()  # noqa: F821 -- provided by nbgrader when it loads this file

c.CourseDirectory.root = "."
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# The learner version keeps a clear prompt where each solution was cut out.
c.ClearSolutions.code_stub = {
    "python": "# YOUR CODE HERE\nraise NotImplementedError()",
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# One endless loop costs its own cell, not the class: each cell gets this many seconds, then
# it is interrupted and scored 0, and the notebook goes on with the next cell.
c.ExecutePreprocessor.timeout = 120

# A submission that kills its kernel (os._exit) keeps the points of the cells that ran before,
# instead of losing the whole notebook; the stock preprocessors stay as they are otherwise.
c.Autograde.autograde_preprocessors = [
    KernelDeathTolerantExecute if preprocessor is Execute else preprocessor
    for preprocessor in Autograde.class_traits()["autograde_preprocessors"].default()
]
