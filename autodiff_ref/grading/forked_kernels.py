"""The kernel manager of ``check`` and ``progress``: jupyter_client's, but taking its kernel from
the fork server (:mod:`autodiff_ref.grading.fork_server`) when it can, and with a client that
does not wait a fifth of a second longer than the kernel needs to be ready."""

from __future__ import annotations

import os
import sys
import time
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type

from autodiff_ref.grading.fork_server import LAUNCHER, ForkServer


class ReadyKernelClient(AsyncKernelClient):
    """jupyter_client's client, ready as soon as the kernel has answered a ``kernel_info``
    request on its shell channel and its IOPub channel delivers.

    jupyter_client's own ``wait_for_ready`` then reads IOPub until it has been silent for 0.2 s,
    to drop what is left of the start; nbclient, which runs the notebook, takes from IOPub only
    the messages that answer its own requests, so that wait only delays every check."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
                if reply["msg_type"] == "kernel_info_reply":
                    # The kernel announces on IOPub that it works on the request: IOPub delivers.
                    await self.iopub_channel.get_msg(timeout=0.2)
                    self._handle_kernel_info_reply(reply)
                    return
            except Empty:  # not up yet, or IOPub not connected yet: ask again
                pass
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


class ForkedKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel is forked from ``fork_server`` when its command is
    this Python's ``ipykernel_launcher`` (and started as usual otherwise), with a
    :class:`ReadyKernelClient`."""

    client_factory = Type(ReadyKernelClient)

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
