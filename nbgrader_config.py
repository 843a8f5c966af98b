"""nbgrader configuration for a course directory that is a clone of this repository.

`solutions/` holds the instructor notebooks (nbgrader's source directory) and `course/` the
learner notebooks generated from them (its release directory). Collected work goes to
`submitted/`, grading writes `autograded/`, `feedback/` and `gradebook.db`; git ignores all four.
"""

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

# One endless loop costs its own cell, not the class: each cell gets this many seconds.
c.ExecutePreprocessor.timeout = 120
