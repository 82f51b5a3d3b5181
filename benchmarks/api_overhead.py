"""imagegate's API overhead: submit and read req/s as a ratio of a bare FastAPI app.

Each server runs alone on 127.0.0.1 (imagegate with ``--no-worker``, so submitted jobs only
queue; then ``bare_app.py``), and one client process drives it: N keep-alive connections,
each sending its next request as soon as the previous answer is in, for a warm-up and then
a measured window. Only requests started inside the window count.

    python benchmarks/api_overhead.py --db both --concurrency 32 1 --seconds 5

Goals (at 32 clients): submit >= 0.5x bare, read >= 0.7x bare, submit p99 < 25 ms.
Every server process and scratch database it starts is removed on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from processes import HOST, free_port, stop_group

SUBMIT_PATH = "/api/v3/kwaivgi/kling-image-o1/text-to-image"
SUBMIT_BODY = json.dumps({"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9", "n": 1})
BARE_APP = Path(__file__).with_name("bare_app.py")
IMAGEGATE = str(Path(sys.executable).with_name("imagegate"))  # the venv's, activated or not
GOALS = {"submit": 0.5, "read": 0.7}
P99_GOAL_MS, P99_GOAL_CONCURRENCY = 25.0, 32
SEEDED_JOBS = 16  # completed jobs the read benchmark cycles over
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float  # server process CPU per request (not PostgreSQL's own processes)
    client_cpu: float  # share of one core the client used


# --- the client (runs in its own process: `api_overhead.py _client`, config on stdin) ---


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported by this client")
    await reader.readexactly(length)
    return int(lines[0].split()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _drive(cfg: dict[str, Any]) -> dict[str, Any]:
    requests = [r.encode("latin-1") for r in cfg["requests"]]
    concurrency, window = cfg["concurrency"], cfg["seconds"]
    t0 = time.perf_counter() + cfg["warmup"]
    t1 = t0 + window
    latencies: list[float] = []
    errors = 0
    marks: dict[str, float] = {}

    async def connection(k: int) -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, cfg["port"])
        i = k
        try:
            while (sent := time.perf_counter()) < t1:
                writer.write(requests[i % len(requests)])
                i += concurrency
                status = await _read_response(reader)
                if sent >= t0:
                    latencies.append(time.perf_counter() - sent)
                    errors += status != 200
        finally:
            writer.close()

    async def sample(at: float, name: str) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        marks[name] = time.perf_counter()
        marks[f"{name}_server"] = _cpu_seconds(cfg["server_pid"])
        marks[f"{name}_client"] = time.process_time()

    await asyncio.gather(
        sample(t0, "start"), sample(t1, "end"), *(connection(k) for k in range(concurrency))
    )
    if not latencies:
        raise RuntimeError("no request completed inside the measured window")
    latencies.sort()
    count = len(latencies)
    elapsed = marks["end"] - marks["start"]
    return {
        "rps": count / elapsed,
        "p50_ms": latencies[count // 2] * 1000,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] * 1000,
        "errors": errors,
        "server_cpu_ms": (marks["end_server"] - marks["start_server"]) * 1000 / count,
        "client_cpu": (marks["end_client"] - marks["start_client"]) / elapsed,
    }


# --- servers and scratch databases ---


@contextmanager
def server(argv: list[str], env: dict[str, str], log: Path) -> Iterator[tuple[int, int]]:
    """Start a server in its own process group, wait for it to answer, yield (port, pid),
    and stop it (SIGINT, then SIGKILL) however the block ends."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*argv, "--host", HOST, "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{argv[0]} did not start:\n{tail}")
            try:
                httpx.get(f"http://{HOST}:{port}/docs", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield port, proc.pid
    finally:
        stop_group(proc)


async def _pg(admin_url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextmanager
def scratch_env(db: str, admin_url: str) -> Iterator[tuple[dict[str, str], Path]]:
    """Environment for an imagegate on a fresh database (and data dir), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="imagegate-bench-") as tmp:
        env = {**os.environ, "IMAGEGATE_DATA_DIR": tmp}
        env.pop("IMAGEGATE_DATABASE_URL", None)
        if db == "sqlite":
            yield env, Path(tmp)
            return
        name = f"imagegate_bench_{secrets.token_hex(4)}"
        asyncio.run(_pg(admin_url, f'CREATE DATABASE "{name}"'))
        try:
            base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            env["IMAGEGATE_DATABASE_URL"] = f"{base}/{name}"
            yield env, Path(tmp)
        finally:
            asyncio.run(_pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# --- the benchmark ---


@dataclass(frozen=True)
class Row:
    db: str
    route: str
    concurrency: int
    imagegate: Result
    bare: Result


def _request(method: str, path: str, port: int, key: str | None, body: str = "") -> str:
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    if key:
        head.append(f"Authorization: {key}")
    if body:
        head += ["Content-Type: application/json", f"Content-Length: {len(body.encode())}"]
    return "\r\n".join(head) + "\r\n\r\n" + body


def measure(port: int, pid: int, requests: list[str], concurrency: int, args: Any) -> Result:
    cfg = {"port": port, "server_pid": pid, "requests": requests, "concurrency": concurrency}
    cfg |= {"warmup": args.warmup, "seconds": args.seconds}
    client, limit = [sys.executable, __file__, "_client"], args.warmup + args.seconds + 60
    done = subprocess.run(
        client, input=json.dumps(cfg), capture_output=True, text=True, timeout=limit
    )
    if done.returncode:
        raise RuntimeError(f"the client failed:\n{done.stderr[-2000:]}")
    return Result(**json.loads(done.stdout))


def seed_jobs(env: dict[str, str], log: Path, key: str) -> list[str]:
    """Submit SEEDED_JOBS jobs to an imagegate with its worker and wait until they complete."""
    with server([IMAGEGATE, "serve"], env, log) as (port, _):
        base = f"http://{HOST}:{port}"
        headers = {"Authorization": key, "Content-Type": "application/json"}
        ids = []
        for _ in range(SEEDED_JOBS):
            answer = httpx.post(base + SUBMIT_PATH, content=SUBMIT_BODY, headers=headers).json()
            if answer.get("code") != 200:
                raise RuntimeError(f"submit failed: {answer}")
            ids.append(answer["data"]["id"])
        for job_id in ids:
            url = f"{base}/api/v3/predictions/{job_id}/result?wait=30"
            data = httpx.get(url, headers=headers, timeout=60).json()["data"]
            if data["status"] != "completed":
                raise RuntimeError(f"seed job did not complete: {data}")
    return ids


def run_db(db: str, args: Any) -> list[Row]:
    """Both servers, one after the other, on one scratch database; a Row per route and N."""
    with scratch_env(db, args.postgres_admin_url) as (env, tmp):
        log = tmp / "server.log"
        create = [IMAGEGATE, "keys", "create", "--name", "bench"]
        keys = subprocess.run(create, env=env, capture_output=True, text=True, check=True)
        key = keys.stdout.strip().splitlines()[-1]
        ids = seed_jobs(env, log, key)
        results: dict[tuple[str, str, int], Result] = {}
        servers = (
            ("imagegate", [IMAGEGATE, "serve", "--no-worker"], key),
            ("bare", [sys.executable, str(BARE_APP)], None),
        )
        for name, argv, auth in servers:
            with server(argv, env, log) as (port, pid):
                submit = [_request("POST", SUBMIT_PATH, port, auth, SUBMIT_BODY)]
                read = [_request("GET", f"/api/v3/predictions/{i}/result", port, auth) for i in ids]
                for n in args.concurrency:
                    for route, requests in (("submit", submit), ("read", read)):
                        r = results[name, route, n] = measure(port, pid, requests, n, args)
                        print(
                            f"  {db:8} {name:9} {route:6} N={n:<3} {r.rps:6.0f} req/s  "
                            f"p99 {r.p99_ms:6.1f} ms  client CPU {r.client_cpu:.0%}",
                            file=sys.stderr,
                        )
    return [
        Row(db, route, n, results["imagegate", route, n], results["bare", route, n])
        for n in args.concurrency
        for route in ("submit", "read")
    ]


def verdict(row: Row) -> str:
    ig, bare = row.imagegate, row.bare
    goal = GOALS[row.route]
    parts = [f"{'met' if ig.rps / bare.rps >= goal else 'MISSED'} >= {goal}x"]
    if row.route == "submit" and row.concurrency == P99_GOAL_CONCURRENCY:
        parts.append(f"{'met' if ig.p99_ms < P99_GOAL_MS else 'MISSED'} p99 < {P99_GOAL_MS:g} ms")
    if ig.errors or bare.errors:
        parts.append(f"NON-200 ANSWERS {ig.errors} / {bare.errors}")
    return ", ".join(parts)


def print_table(rows: list[Row]) -> None:
    print(
        "| db | route | clients | imagegate req/s | bare req/s | ratio "
        "| imagegate p50 / p99 ms | bare p50 / p99 ms | server CPU ms/req (ig / bare) | goal |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for row in rows:
        ig, bare = row.imagegate, row.bare
        print(
            f"| {row.db} | {row.route} | {row.concurrency} | {ig.rps:.0f} | {bare.rps:.0f} "
            f"| {ig.rps / bare.rps:.2f} | {ig.p50_ms:.1f} / {ig.p99_ms:.1f} "
            f"| {bare.p50_ms:.1f} / {bare.p99_ms:.1f} "
            f"| {ig.server_cpu_ms:.2f} / {bare.server_cpu_ms:.2f} | {verdict(row)} |"
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> None:
    if sys.argv[1:2] == ["_client"]:
        print(json.dumps(asyncio.run(_drive(json.load(sys.stdin)))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32], metavar="N")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured lead-in")
    parser.add_argument(
        "--postgres-admin-url", default=PG_ADMIN_URL, help="CREATE/DROP DATABASE here"
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the context managers stop servers and drop databases.
    signal.signal(signal.SIGTERM, _interrupt)
    load = os.getloadavg()[0]
    busy = " - other work is running, numbers will be noisy" if load > 0.5 else ""
    print(f"{os.cpu_count()} CPUs, load average {load:.2f}{busy}", file=sys.stderr)
    rows = []
    try:
        for db in ("sqlite", "postgres") if args.db == "both" else (args.db,):
            rows += run_db(db, args)
    except KeyboardInterrupt:
        print("interrupted: servers stopped, scratch databases dropped", file=sys.stderr)
        sys.exit(130)
    print_table(rows)


if __name__ == "__main__":
    main()
