"""Kernels for ``check`` and ``progress`` that start with the course's imports already done.

A new kernel (``python -m ipykernel_launcher``) spends about a second of CPU before it runs the
first cell: the interpreter, ipykernel and IPython, then numpy, matplotlib and
``autodiff_ref.testing``, which every notebook and its tests import. ``check`` and ``progress``
start a *fork server* first, a process that does this work once and then waits. Each kernel is a
fork of it: a copy of an interpreter that has imported those modules and run nothing else, which
goes on exactly as ``ipykernel_launcher`` would (its own session, working folder, environment,
``sys.argv`` and ``sys.path``), so the notebook cannot tell the difference. ``progress`` forks all
its kernels from one server, so it pays for the imports once instead of once per notebook; a
single ``check`` starts the server before anything else, so the imports run on a second core
while it reads the notebooks.

Forking is used on Linux only: macOS's system libraries (Accelerate, which NumPy uses there) are
not safe to fork once loaded, and Windows has no fork. Elsewhere, and for any kernel command
other than this Python's ``ipykernel_launcher``, kernels start as usual.

The server's process is single-threaded and opens no socket before it forks, which is what makes
forking it safe; it ends when its ``stdin`` closes, so it never outlives the ``check`` that
started it, and each kernel ends itself (ipykernel's parent poller) when the server is gone.

This module imports nothing beyond the standard library, so that ``check`` starts the server
before its own imports; :mod:`autodiff_ref.grading.forked_kernels` has the kernel manager that
takes kernels from it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Mapping

# Imported by the server before any fork: what every course notebook imports in its first cell
# and what its tests import. The same list is preimported by kernels started the usual way.
PREIMPORTS = ("numpy", "matplotlib.pyplot", "numpy.testing", "autodiff_ref.testing")
# What a kernel imports as it starts, after ipykernel.kernelapp: its debugger (debugpy), a tenth
# of a second.
KERNEL_IMPORTS = ("ipykernel.debugger",)
# What ipykernel sets before matplotlib is first imported, set here for the same reason: the
# server imports matplotlib before any kernel exists, and its figures must go to the notebook.
INLINE_BACKEND = {"MPLBACKEND": "module://matplotlib_inline.backend_inline"}
LAUNCHER = "ipykernel_launcher"


def forking_works() -> bool:
    """Linux, with pidfds (Linux 5.3; a container's seccomp rules may still refuse them)."""
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


# --- the server's side ---------------------------------------------------------------------------


def serve() -> None:
    """The fork server's loop: import, then fork a kernel for each request read from stdin (one
    JSON object a line: the launcher's arguments, working folder and environment) and answer
    with its process id on stdout. Ends when stdin closes."""
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # what a kernel prints to its own stdout must not land among the replies
    os.environ.update({name: os.environ.get(name, value) for name, value in INLINE_BACKEND.items()})
    from ipykernel import kernelapp

    # debugpy warns on import that Python's frozen modules may hide breakpoints; a kernel
    # imports it while its output goes nowhere, but the server's goes to the learner's terminal.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    for name in KERNEL_IMPORTS + PREIMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # as when a kernel's exec_lines fail: the notebook's own import shows it
            traceback.print_exc()
    kernels: set[int] = set()

    def reap(_signum, _frame) -> None:
        # Collect the kernels that ended: none stays a zombie while others run, and the CPU
        # time they used counts as the server's, and so as the check's (benchmarks read it).
        try:
            while pid := os.waitpid(-1, os.WNOHANG)[0]:
                kernels.discard(pid)
        except ChildProcessError:
            pass

    signal.signal(signal.SIGCHLD, reap)
    try:
        print("ready", file=replies, flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            # Not reaped before it is recorded: a kernel that ends at once leaves no stale pid.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
            pid = os.fork()
            if pid == 0:
                replies.close()
                _become_kernel(kernelapp, request)
            kernels.add(pid)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            print(pid, file=replies, flush=True)
    except BrokenPipeError:  # the check ended
        pass
    # The check is over. It stopped its kernels, unless it was killed: stop what is left (each
    # leads its own process group), collect them, and end without tidying up (nothing to).
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for pid in kernels:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while True:
        try:
            os.wait()
        except ChildProcessError:
            os._exit(0)


def _become_kernel(kernelapp, request: dict) -> None:
    """In the forked child: become what ``python -m ipykernel_launcher ARGS`` would be. Never returns."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the kernel waits for its own subprocesses
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setsid()  # as jupyter_client starts a kernel: Ctrl-C in the terminal does not reach it
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update({**INLINE_BACKEND, **request["env"]})
        import numpy

        numpy.random.seed()  # the global generator's state must not be the same in every kernel
        launcher = importlib.util.find_spec(LAUNCHER).origin
        sys.argv = [launcher, *request["arguments"]]
        # As ipykernel_launcher does: the launch folder leaves sys.path while the kernel loads,
        # and IPython puts the working folder back.
        if sys.path and sys.path[0] in ("", os.getcwd()):
            del sys.path[0]
        # ipykernel's parent poller ends the kernel when its parent goes: here that is the
        # server, which ends with the check. (The default comes from the environment, read
        # when the server imported ipykernel.)
        watch_parent = f"--IPKernelApp.parent_handle={os.getppid()}"
        kernelapp.launch_new_instance(argv=[*request["arguments"], watch_parent])
        status = 0
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(status)  # never back into the server's loop, nor through its exit handlers


# --- the check's side ----------------------------------------------------------------------------


class ForkServer:
    """The fork server process, as seen from ``check``; start it with :meth:`start`, end it with
    :meth:`close`. Safe to use from several threads (``progress`` checks notebooks side by side)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._unanswered: deque[ForkedKernel] = deque()  # in the order the server answers them
        self._kernels: list[ForkedKernel] = []
        self._ready = False

    def start(self) -> ForkServer:
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from autodiff_ref.grading.fork_server import serve; serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self._env, text=True, bufsize=1,
            # Not the check's working folder, which "-c" puts on sys.path: no file there may shadow
            # what the server imports (a kernel launched as usual does not import from there either).
            cwd="/",
        )
        return self

    def fork(self, arguments: list[str], cwd: str, env: Mapping[str, str]) -> ForkedKernel:
        """A kernel started with ``ipykernel_launcher ARGUMENTS`` in ``cwd`` with ``env``.

        Returns at once: the server forks it as soon as it has done its imports, and the
        kernel's process id is read when first needed."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError("the kernel fork server is not running")
            request = {"arguments": arguments, "cwd": cwd, "env": dict(env)}
            self._process.stdin.write(json.dumps(request) + "\n")
            kernel = ForkedKernel(self)
            self._unanswered.append(kernel)
            self._kernels.append(kernel)
            return kernel

    def _read_answers(self, until: ForkedKernel) -> None:
        """Read the server's answers up to the one for ``until``. A server that ended (its error
        is in the terminal) started none of the kernels still waiting: they count as ended, and
        the check reports a kernel that died before its first cell."""
        with self._lock:
            while until in self._unanswered:
                answer = self._process.stdout.readline().strip()
                if answer == "ready" and not self._ready:
                    self._ready = True
                    continue
                self._unanswered.popleft()._started(int(answer) if answer.isdigit() else None)

    def close(self) -> None:
        """Stop every kernel the server started (the check has stopped them already, unless it
        failed on the way), then the server."""
        if self._process is None:
            return
        for kernel in self._kernels:
            kernel.kill()
        if self._kernels:
            self._process.stdin.close()  # the server collects its kernels and ends
        else:
            self._process.kill()  # nothing started: no need to wait for its imports to end
        self._process.wait()
        self._process.stdout.close()
        self._process = None


class ForkedKernel:
    """What jupyter_client's provisioner uses of a ``Popen``, for a kernel that is the fork
    server's child, not ours: its state is read through a pidfd, and its exit status is not ours
    to know (reported as -1). Signals go to its process group, which it leads, as
    jupyter_client's do: a subprocess the notebook started is stopped with it."""

    stdin = stdout = stderr = None

    def __init__(self, server: ForkServer) -> None:
        self._server = server
        self._answered = False
        self._pid: int | None = None
        self._pidfd: int | None = None
        self.returncode: int | None = None

    @property
    def pid(self) -> int | None:
        """The kernel's process id; None if the server ended without starting it."""
        if not self._answered:
            self._server._read_answers(until=self)
        return self._pid

    def _started(self, pid: int | None) -> None:
        self._answered, self._pid = True, pid
        try:
            self._pidfd = os.pidfd_open(pid) if pid is not None else None
        except ProcessLookupError:  # already gone
            pass
        if self._pidfd is None:
            self.returncode = -1

    def poll(self) -> int | None:
        if self.pid is not None and self.returncode is None and select.select([self._pidfd], [], [], 0)[0]:
            self._ended()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            select.select([self._pidfd], [], [], left)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is not None:
            return
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:  # its own group is not made yet: the kernel alone
            signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def _ended(self) -> None:
        self.returncode = -1
        os.close(self._pidfd)
        self._pidfd = None
