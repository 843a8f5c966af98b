"""Grading kernels that run inside a bubblewrap sandbox.

``nbgrader_config.py`` makes :class:`~autodiff_ref.grading.preprocessors.GuardedExecute` start
every grading kernel with :class:`SandboxedKernelManager`, and stops ``nbgrader autograde`` before
the first student (:func:`stop_unless_sandbox_works`) when the sandbox cannot start.

Inside the sandbox (`bubblewrap <https://github.com/containers/bubblewrap>`_, ``bwrap``) the
kernel sees the system's programs and libraries, the Python environment and the ``autodiff_ref``
package, all read-only, and ``/tmp``: a small in-memory filesystem holding its working directory,
a copy of the student's notebook folder (without the notebooks: the one being graded has the
hidden tests back in it). It sees nothing else of the machine -- not the course folder
(``solutions/``, ``gradebook.db``, ``submitted/``, ``autograded/``), no home folder, no other
student's files -- and nothing it writes outlives it: nbgrader, outside, writes the autograded
notebook. It has no network (its own empty network namespace) and talks to the grader over ZMQ
``ipc`` sockets that it makes in its own ``/tmp``: the grader reaches them from outside through
``/proc/<pid>/root`` (the sandbox's root, seen from outside; this works whether bwrap runs as
root or not). So all it may write is in its size-limited ``/tmp``: what it sees of the grader's
disk (a private folder with its connection file, the copy of the student's folder) is read-only.
It cannot see or signal the grader's processes (its own process namespace), and it gets limits
on memory, processes and file size.

bubblewrap does the mounts and namespaces. When the grader runs as root, bwrap runs privileged
and the kernel drops to a user id of its own with ``setpriv`` (util-linux): Linux does not
enforce the process limit on root, and a user id per kernel keeps one student's fork bomb from
using up the processes of the next. Otherwise bwrap runs unprivileged, in a user namespace, and
the limits (``prlimit``, util-linux) count only the processes inside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Integer

from autodiff_ref.grading import ONE_THREAD

GiB = 1024**3
MiB = 1024**2

# Where the student's folder is mounted, read-only, for the kernel to copy into /tmp.
SUBMISSION_MOUNT = "/run/submission"
# The kernel's ZMQ sockets (kernel-1, kernel-2, ...), inside the sandbox: in its /tmp, which is
# size-limited and thrown away, not in a folder of the grader's disk it could fill with files.
SOCKETS_INSIDE = "/tmp/kernel"
# How long bwrap may take to report the sandbox's process id, in seconds.
SANDBOX_START_TIMEOUT = 30
# What the kernel keeps of the grader's environment; everything else (tokens, the grader's paths)
# is left out. PYTHONPATH stays so that the kernel imports the same autodiff_ref as the grader.
KEPT_ENVIRONMENT = ("PATH", "PYTHONPATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "NBGRADER_EXECUTION")
# Folders of the system that a Python kernel needs, read-only; /bin, /lib... may be symlinks
# into /usr (merged /usr) or folders of their own.
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64")
# From /etc, only what programs read to start (the dynamic linker's cache, time zone, fonts,
# Debian's alternatives for shared libraries, user names), not the rest of the machine's settings.
SYSTEM_FILES = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime", "/etc/alternatives",
    "/etc/fonts", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
)
HOW_TO_INSTALL = (
    "Install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap; Fedora: sudo dnf install "
    "bubblewrap), or, for submissions you trust, switch the sandbox off in nbgrader_config.py "
    '(SANDBOX = "off"; see "The grading sandbox" in docs/instructor.md).'
)


class SandboxUnavailable(SystemExit):
    """The sandbox cannot start here; the message says why and what to do.

    A ``SystemExit``: nbgrader moves on to the next student after any ``Exception``, and a
    sandbox that does not start for one student starts for none.
    """


def _python_folders() -> list[str]:
    """The Python environment and the autodiff_ref package: what the kernel must import from.

    Only the package's own folder, not its parent, which for an editable install is the course
    folder itself."""
    import autodiff_ref

    folders = {os.path.realpath(prefix) for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    folders.add(sys.prefix)  # a venv reached through a symlink: bound under both names
    folders.add(os.path.dirname(os.path.realpath(autodiff_ref.__file__)))
    return sorted(folder for folder in folders if folder != "/usr" and not folder.startswith("/usr/"))


def _with_open_parents(mounts: list[list[str]]) -> list[str]:
    """The bwrap options of ``mounts`` (each ending with its destination), each preceded by the
    folders above its destination, made readable to all: privileged bwrap would make them mode
    700, which the kernel's unprivileged user could not pass through."""
    arguments, made = [], {"/"}
    for mount in mounts:
        destination = mount[-1]
        for parent in reversed(Path(destination).parents):
            if str(parent) not in made:
                arguments += ["--perms", "0755", "--dir", str(parent)]
                made.add(str(parent))
        arguments += mount
        made.add(destination)
    return arguments


def _system_mounts() -> list[list[str]]:
    mounts = []
    for path in SYSTEM_FOLDERS + SYSTEM_FILES:
        if os.path.islink(path) and path in SYSTEM_FOLDERS:
            mounts.append(["--symlink", os.readlink(path), path])
        elif os.path.exists(path):
            mounts.append(["--ro-bind", path, path])
    return mounts


def sandbox_user() -> int | None:
    """As root, the unprivileged user id the kernel runs as: one that no account uses, one per
    grading process, so that two graders running at once do not share a process count."""
    return 2**20 + os.getpid() if os.geteuid() == 0 else None


class SandboxedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel runs inside bubblewrap; see the module's docstring.

    Each kernel gets a private folder on the grader's side (``runtime/``: the connection file,
    mounted read-only at the same path inside; ``submission/``: the copy of the student's folder),
    removed when the kernel's resources are cleaned up.
    """

    memory_limit = Integer(2 * GiB, config=True, help="Address space of the kernel, in bytes (RLIMIT_AS).")
    process_limit = Integer(256, config=True, help="Processes and threads the kernel may run (RLIMIT_NPROC).")
    file_size_limit = Integer(64 * MiB, config=True, help="Largest file the kernel may write, in bytes (RLIMIT_FSIZE).")
    scratch_size = Integer(256 * MiB, config=True, help="Size of the kernel's /tmp, its working folder, in bytes.")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.transport = "ipc"  # no network inside: the kernel talks to the grader through files
        self._folder: Path | None = None  # this kernel's folder on the grader's side
        self._info_file = Path(os.devnull)  # where bwrap writes the kernel's process id
        self._sandbox_init: int | None = None  # bwrap's first process in the sandbox, once known
        self._info_fd = -1

    async def _async_pre_start_kernel(self, **kw):
        self._folder = Path(tempfile.mkdtemp(prefix="autodiff-sandbox-"))
        runtime = self._folder / "runtime"
        runtime.mkdir()
        self.connection_file = str(runtime / "kernel.json")
        # The kernel binds its sockets at this path in its own /tmp; once it runs, the grader's
        # side connects to them through /proc (see _async_launch_kernel).
        self.ip = SOCKETS_INSIDE
        student_folder = Path(kw.pop("cwd", None) or os.getcwd())
        submission = self._folder / "submission"
        # A symlink stays a symlink: it must not hand the kernel a file the grader can read.
        shutil.copytree(student_folder, submission, ignore=shutil.ignore_patterns("*.ipynb"), symlinks=True)
        kernel_cmd, kw = await super()._async_pre_start_kernel(**kw)
        user = sandbox_user()
        if user is not None:
            for path in [self._folder, *self._folder.rglob("*")]:
                os.chown(path, user, user, follow_symlinks=False)
        self._info_file = self._folder / "bwrap-info.json"
        info = os.open(self._info_file, os.O_WRONLY | os.O_CREAT, 0o600)
        command = sandboxed_command(
            kernel_cmd, runtime=str(runtime), submission=str(submission),
            workdir=f"/tmp/{student_folder.name}", info_fd=info, user=user, limits=self._limits(),
        )
        kw["cwd"] = str(self._folder)
        kw["env"] = kernel_environment(kw.get("env") or os.environ)
        kw["pass_fds"] = (info,)
        self._info_fd = info
        return command, kw

    def _limits(self) -> dict[str, int]:
        return {"as": self.memory_limit, "nproc": self.process_limit, "fsize": self.file_size_limit,
                "scratch": self.scratch_size}

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        try:
            await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            os.close(self._info_fd)  # bwrap holds its own copy
        # The connection file keeps the path inside; the grader's clients get the same sockets as
        # seen from outside. (Written after the kernel reads the file, this is only for clients.)
        self._sandbox_init = await self._sandbox_pid()
        self.ip = f"/proc/{self._sandbox_init}/root{SOCKETS_INSIDE}"

    async def _sandbox_pid(self) -> int:
        """The process id of bwrap's first process in the sandbox, once bwrap has reported it."""
        deadline = time.monotonic() + SANDBOX_START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                return json.loads(self._info_file.read_text())["child-pid"]
            except (OSError, ValueError, KeyError):  # not written yet, or half written
                if self.provisioner is None or self.provisioner.process.poll() is not None:
                    raise RuntimeError("the grading sandbox (bwrap) ended before the kernel started") from None
            await asyncio.sleep(0.01)
        raise RuntimeError(f"the grading sandbox (bwrap) did not start within {SANDBOX_START_TIMEOUT} s")

    def cleanup_ipc_files(self) -> None:
        """Nothing to remove: the sockets are in the sandbox's /tmp, gone with it. (Removing them
        through /proc/<pid>/root after the sandbox ended could reach another process's files if the
        pid were reused.)"""

    def kernel_pid(self) -> int:
        """The kernel's process id, as the grader sees it: the first process that bwrap's first
        process in the sandbox started (what the student's code starts comes later)."""
        init = self._sandbox_init
        if init is None:
            raise ValueError("the sandbox has not started")
        children = Path(f"/proc/{init}/task/{init}/children").read_text().split()

        def started(pid: str) -> int:  # field 22 of /proc/<pid>/stat, counted after the ")" of field 2
            return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])

        return int(min(children, key=started))

    async def interrupt_kernel(self) -> None:
        """SIGINT to the kernel itself. (The usual signal, to the process group that was launched,
        reaches bwrap, which dies of it and takes the kernel along.)"""
        try:
            os.kill(self.kernel_pid(), signal.SIGINT)
        except (OSError, ValueError) as error:
            # No sandbox info (bwrap failed to start) or no such process: the kernel is gone, and
            # the client finds out as it waits for it.
            self.log.warning("Could not interrupt the sandboxed kernel: %s", error)

    async def cleanup_resources(self, restart: bool = False) -> None:
        await super().cleanup_resources(restart)
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None


def kernel_environment(grader: Mapping[str, str]) -> dict[str, str]:
    """What the kernel sees of the grader's environment (see KEPT_ENVIRONMENT)."""
    kept = {name: grader[name] for name in KEPT_ENVIRONMENT if name in grader}
    # One BLAS thread unless the grader says otherwise: OpenBLAS reserves a buffer per thread,
    # which on a many-core machine alone would use up the memory limit (a limit on address space).
    threads = {name: grader.get(name, value) for name, value in ONE_THREAD.items()}
    return {**kept, **threads, "HOME": "/tmp", "TMPDIR": "/tmp"}


def sandboxed_command(
    kernel_cmd: list[str], *, runtime: str, submission: str, workdir: str, info_fd: int | None,
    user: int | None, limits: dict[str, int],
) -> list[str]:
    """``kernel_cmd`` inside bwrap: see the module's docstring for what it sees and may do."""
    namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if user is None:
        namespaces.append("--unshare-user")  # unprivileged: the user namespace makes the mounts possible
    mounts = [
        # /tmp first: a folder bound below it (a Python environment in /tmp) must not be hidden by it.
        ["--perms", "1777", "--size", str(limits["scratch"]), "--tmpfs", "/tmp"],
        *_system_mounts(),
        *[["--ro-bind", folder, folder] for folder in _python_folders()],
        ["--proc", "/proc"], ["--dev", "/dev"],
        ["--ro-bind", runtime, runtime],
        ["--ro-bind", submission, SUBMISSION_MOUNT],
    ]
    command = [
        "bwrap", *namespaces,
        # bwrap's own first process in the sandbox dies with bwrap, and everything in the sandbox
        # with it: the kernel too, though changing user (setpriv) cleared its own --die-with-parent.
        "--die-with-parent", "--new-session",
        # ipykernel ends itself when the process that launched it (JPY_PARENT_PID) looks gone, and
        # inside, the kernel has no parent; 1 means "do not watch" (--die-with-parent does that).
        "--setenv", "JPY_PARENT_PID", "1",
        *(["--info-fd", str(info_fd)] if info_fd is not None else []),
        *_with_open_parents(mounts),
    ]
    command += ["--"]
    if user is not None:
        command += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]
    # After the user namespace exists: its process count is the sandbox's alone.
    command += ["prlimit", f"--as={limits['as']}", f"--nproc={limits['nproc']}", f"--fsize={limits['fsize']}", "--"]
    command += ["sh", "-c", 'cp -R "$0" "$1" && cd "$1" && shift && exec "$@"', SUBMISSION_MOUNT, workdir]
    return command + list(kernel_cmd)


def sandbox_problem() -> str | None:
    """Why the sandbox cannot start on this machine, and what to do; None when it can.

    Tries what grading does: a sandboxed Python that imports autodiff_ref's grading guard."""
    if shutil.which("bwrap") is None:
        return f"bwrap is not on PATH. {HOW_TO_INSTALL}"
    with tempfile.TemporaryDirectory(prefix="autodiff-sandbox-check-") as folder:
        runtime, submission = Path(folder, "runtime"), Path(folder, "submission")
        runtime.mkdir()
        submission.mkdir()
        user = sandbox_user()
        if user is not None:
            for path in (Path(folder), runtime, submission):
                os.chown(path, user, user)
        command = sandboxed_command(
            [sys.executable, "-c", "import autodiff_ref.grading.integrity"], runtime=str(runtime),
            submission=str(submission), workdir="/tmp/check", info_fd=None, user=user, limits=SandboxedKernelManager()._limits(),
        )
        result = subprocess.run(command, env=kernel_environment(os.environ), capture_output=True, text=True,
                                cwd=folder, timeout=60)
    if result.returncode == 0:
        return None
    return (
        "the grading sandbox (bubblewrap) does not start on this machine:\n"
        f"    {result.stderr.strip() or f'exit status {result.returncode}'}\n"
        "Most often user namespaces are switched off (sysctl kernel.unprivileged_userns_clone=1 on "
        "Debian; kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04; in a container, "
        "see docs/instructor.md). For submissions you trust, switch the sandbox off in "
        'nbgrader_config.py (SANDBOX = "off").'
    )


def stop_unless_sandbox_works(**_hook_arguments) -> None:
    """nbgrader's ``pre_convert_hook``: unless the sandbox starts, raise
    :class:`SandboxUnavailable`, which stops ``nbgrader autograde`` before it touches a student.
    Checked once per grading process."""
    global _sandbox_checked
    if not _sandbox_checked:
        problem = sandbox_problem()
        if problem:
            raise SandboxUnavailable(f"Grading stopped before the first student: {problem}")
        _sandbox_checked = True


_sandbox_checked = False
