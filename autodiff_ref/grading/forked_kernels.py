"""The kernel manager of ``check`` and ``progress``: jupyter_client's, but taking its kernel from
the fork server (:mod:`autodiff_ref.grading.fork_server`) when it can."""

from __future__ import annotations

import os
import sys

from jupyter_client.manager import AsyncKernelManager

from autodiff_ref.grading.fork_server import LAUNCHER, ForkServer


class ForkedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel is forked from ``fork_server`` when its command is
    this Python's ``ipykernel_launcher`` (and started as usual otherwise)."""

    def __init__(self, fork_server: ForkServer | None = None, **kwargs):
        super().__init__(**kwargs)
        self.fork_server = fork_server

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw) -> None:
        if self.fork_server is None or kernel_cmd[:3] != [sys.executable, "-m", LAUNCHER]:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        cwd = str(kw.get("cwd") or os.getcwd())
        # jupyter_client's launcher adds the launching process's id to a kernel's environment.
        env = {**(kw.get("env") or os.environ), "JPY_PARENT_PID": str(os.getpid())}
        kernel = self.fork_server.fork(kernel_cmd[3:], cwd, env)
        # As LocalProvisioner.launch_kernel records a kernel it started, but without a process
        # id, which is not known yet: the kernel signals its own process group.
        self.provisioner.process, self.provisioner.cwd = kernel, cwd
        self._reconcile_connection_info(self.provisioner.connection_info)
