"""Starting and stopping the servers the benchmarks measure: a free port on 127.0.0.1, a
process group stopped (SIGINT, then SIGKILL) however the measurement ended, and a real
``imagegate serve`` with a key, ready once its log says so."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOST = "127.0.0.1"
IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))  # the venv's, activated or not


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


@contextmanager
def imagegate_serve(
    env: dict[str, str], log: Path, ready: str, timeout_s: float, log_level: str = "info"
) -> Iterator[tuple[str, str, int]]:
    """Create a key, start ``imagegate serve`` in its own process group, wait until its log
    contains ``ready``, yield (base URL, key, pid), and stop it however the block ends."""
    create = [IMAGEGATE, "keys", "create", "--name", "bench"]
    keys = subprocess.run(create, env=env, capture_output=True, text=True, check=True)
    key = keys.stdout.strip().splitlines()[-1]
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [IMAGEGATE, "serve", "--host", HOST, "--port", str(port), "--log-level", log_level],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        started = time.monotonic()
        while ready not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() - started > timeout_s:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"imagegate serve never logged {ready!r}:\n{tail}")
            time.sleep(0.2)
        yield f"http://{HOST}:{port}", key, proc.pid
    finally:
        stop_group(proc)
