"""Copy a submission with the grader's rights only as the student's own files, never through a link.

nbgrader copies submissions twice before a kernel sees them, both times following symbolic links
with the rights of whoever grades: ``nbgrader collect`` copies each folder from the exchange (any
student can put a folder there, links and all), and ``nbgrader autograde`` copies every file of
``submitted/<student>/<assignment>/`` to ``autograded/``, where the sandbox copies it in for the
kernel. A link ``data -> /home/you/course/solutions`` or ``notes.db -> ../../../gradebook.db``, or a
notebook that is a link to the instructor's, would so hand the student's code -- or the grader --
the instructor's files. No notebook of this course needs a link or a device, pipe or socket.

- :class:`CollectWithoutLinks` (``c.ExchangeFactory.collect`` in ``nbgrader_config.py``) is
  nbgrader's collect that leaves such entries behind and names each in its log.
- :func:`refuse_links` (run by ``nbgrader autograde`` before it copies each student's files) stops
  grading, before that student's first file is copied, when ``submitted/`` holds one: nbgrader
  0.9 has no way to skip one student's copy, and going on would copy what the link points to. It
  says which student, which links, and how to remove them; the students before are graded. Files
  put in ``submitted/`` by hand (a zip, an LMS) are where this can happen: the instructor guide's
  unzip recipe deletes links first. ``autodiff-course audit`` lists them too.

What is left: collect reads the exchange while students may still write to it, so a student who
replaces a folder of the submission by a link in the instant between ``shutil.copytree`` listing
it and going into it has what it points to copied.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

from nbgrader.exchange.default.collect import ExchangeCollect


def unsafe_entries(folder: Path) -> list[str]:
    """Every entry of ``folder`` (``folder`` itself included) that is a symbolic link, or neither a
    regular file nor a folder, described by its path relative to ``folder``'s parent."""
    found = []

    def check(path: Path) -> bool:
        """Describe ``path`` in ``found`` if unsafe; whether it is a real folder to look into."""
        mode = path.lstat().st_mode
        where = path.relative_to(folder.parent)
        if stat.S_ISLNK(mode):
            found.append(f"{where} -> {os.readlink(path)} (a symbolic link)")
        elif _unsafe(mode):
            found.append(f"{where} (not a regular file: a device, pipe or socket)")
        return stat.S_ISDIR(mode)

    if check(folder):
        for directory, folders, files in os.walk(folder):  # os.walk does not follow links
            folders[:] = [name for name in folders if check(Path(directory, name))]
            for name in files:
                check(Path(directory, name))
    return found


def unsafe_in_submission(assignment: Path) -> list[str]:
    """:func:`unsafe_entries` of a folder ``submitted/<student>/<assignment>``, and the student's
    folder above it if that is a link."""
    student = assignment.parent
    found = [f"{student.name} -> {os.readlink(student)} (a symbolic link)"] if student.is_symlink() else []
    return found + unsafe_entries(assignment)


class UnsafeSubmission(SystemExit):
    """A submitted folder holds links; grading stops before copying it. (A ``SystemExit``:
    nbgrader logs any ``Exception`` from its hook and copies the files anyway.)"""


def refuse_links(notebooks: list[str] = (), **_hook_arguments) -> None:
    """nbgrader's ``pre_convert_hook``, called before autograde copies a student's files: raise
    :class:`UnsafeSubmission` if the student's submitted folder (``notebooks``' folder, and the
    student's folder above it) holds a link or a special file."""
    if not notebooks:
        return
    assignment = Path(notebooks[0]).parent
    found = unsafe_in_submission(assignment)
    if found:
        raise UnsafeSubmission(
            f"Grading stopped before {assignment.parent.name}'s {assignment.name}: nbgrader would copy, with "
            f"your rights, what these point to into autograded/ and so to the student's code: {'; '.join(found)}. "
            "No notebook needs them: delete them (find submitted -type l -print -delete) and grade again. "
            "The students before this one are graded."
        )


class CollectWithoutLinks(ExchangeCollect):
    """nbgrader's exchange collect, which leaves links and special files in a student's submission
    behind (logging each) instead of copying what they point to."""

    def do_copy(self, src: str, dest: str, log=None) -> None:
        source = Path(src)
        found = unsafe_entries(source)
        if source.is_symlink():  # the whole submission is a link: nothing of it is the student's
            self.log.error("Not collected: %s. Ask the student to submit again.", found[0])
            return
        for entry in found:
            self.log.warning("Left out of the collected submission: %s", entry)
        size, most = self.get_size(src), 1000 * self.coursedir.max_dir_size
        if size > most:  # nbgrader's own check, made before the copy below as before its own
            self.log.error("Directory size is too big")
            raise RuntimeError(f"Directory size is too big. Size is {size}, maximum size is {most}")
        # Copied once without the links, then collected from there by nbgrader as usual: its
        # ignore and include globs, file size limit and group permissions apply unchanged.
        with tempfile.TemporaryDirectory(prefix="autodiff-collect-") as scratch:
            clean = Path(scratch, source.name)
            # Links are copied as links, never followed, and left out when seen; a file the
            # student turns into a link while it is copied is taken out of this copy, which only
            # the grader can write, before nbgrader's copy (which would follow it).
            shutil.copytree(source, clean, symlinks=True, ignore=_unsafe_names)
            for late in [path for path in clean.rglob("*") if path.is_symlink()]:
                self.log.warning("Left out of the collected submission: %s (a symbolic link)", late.relative_to(scratch))
                late.unlink()
            super().do_copy(str(clean), dest)


def _unsafe(mode: int) -> bool:
    """Whether an entry of this ``lstat`` mode is no student's own file: neither a regular file nor
    a folder (a symbolic link, a device, pipe or socket)."""
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _unsafe_names(directory: str, names: list[str]) -> set[str]:
    """For ``shutil.copytree``: the entries of ``directory`` to leave out (see unsafe_entries)."""
    return {name for name in names if _unsafe(os.lstat(os.path.join(directory, name)).st_mode)}
