"""How fast the shipped shapes model is on this machine, two ways:

- **backend**: the shipped registry entry loaded in this process, one image per call at the
  model's native 64x64, and a 1024x1024 image (rendered at 64x64, upscaled);
- **served**: ``imagegate serve`` on its shipped registry (a temporary data directory,
  SQLite, the model process), one client sending sync-mode jobs one after another, for
  the default 16:9 1k and for 1:1 1k; the time is the client's, submit to the completed
  answer, and the image is fetched afterwards (not timed).

    python benchmarks/shapes_speed.py [--repeats 10]

The issue's goals: under 1 s for one 64x64 image, under 2 s for a 1k job.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
from processes import imagegate_serve

ROUTE = "kwaivgi/kling-image-o1"
PROMPT = "a red circle on the left on a yellow background"


def _median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f})"


def backend_rows(repeats: int) -> list[tuple[str, str]]:
    import torch

    from imagegate.backends.base import GenerationInput
    from imagegate.domain.registry import load_registry
    from imagegate.worker.model_cache import load_backend

    backend = load_backend(load_registry().routes[ROUTE])
    rows = []
    try:
        for side in (64, 1024):
            times = []
            for seed in range(repeats + 2):
                ask = GenerationInput("text-to-image", PROMPT, 1, side, side, seed)
                started = time.perf_counter()
                backend.generate([ask], lambda step, total: None)
                times.append(time.perf_counter() - started)
            rows.append((f"backend, one {side}x{side} image", _median_ms(times[2:])))
    finally:
        backend.close()
    rows.append(("torch threads", str(torch.get_num_threads())))
    return rows


def served_rows(repeats: int) -> list[tuple[str, str]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="imagegate-shapes-speed-") as scratch:
        tmp = Path(scratch)
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
        env["IMAGEGATE_DATA_DIR"] = str(tmp / "data")
        started = time.perf_counter()
        with (
            imagegate_serve(env, tmp / "server.log", f"loaded model {ROUTE}", 300) as (url, key, _),
            httpx.Client(base_url=url, headers={"Authorization": key}, timeout=60) as client,
        ):
            rows.append(("serve: start to model loaded", f"{time.perf_counter() - started:.1f} s"))
            for aspect in ("16:9", "1:1"):
                times, work = [], []
                for seed in range(repeats + 2):
                    body = {
                        "prompt": PROMPT,
                        "aspect_ratio": aspect,
                        "seed": seed,
                        "enable_sync_mode": True,
                    }
                    began = time.perf_counter()
                    answer = client.post(f"/api/v3/{ROUTE}/text-to-image", json=body)
                    times.append(time.perf_counter() - began)
                    data = answer.json()["data"]
                    assert data["status"] == "completed", data
                    work.append(data["executionTime"] / 1000)
                    assert httpx.get(data["outputs"][0], timeout=30).status_code == 200
                rows.append((f"served, one {aspect} 1k job, client time", _median_ms(times[2:])))
                rows.append((f"served, one {aspect} 1k job, executionTime", _median_ms(work[2:])))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per row")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    rows = backend_rows(args.repeats) + served_rows(args.repeats)
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
