"""Starting and stopping the servers the benchmarks measure: a free port on 127.0.0.1, and
a process group stopped (SIGINT, then SIGKILL) however the measurement ended."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server started with ``start_new_session=True`` and everything it started
    (imagegate's model process included): gently first, then for sure."""
    for sig, wait_s in ((signal.SIGINT, 15), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue
