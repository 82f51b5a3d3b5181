"""What imagegate's model process gains from keeping freed memory for reuse
(``IMAGEGATE_MODEL_MEMORY_REUSE``, worker/allocator.py): the bare pipeline, called in a
loop in two fresh processes, one with glibc's default malloc and one with the model
process's settings, in turns. Prints each side's median call time, CPU (user and system)
and minor page faults per call.

    python benchmarks/malloc_reuse.py --model tiny-flux
    python benchmarks/malloc_reuse.py --model tiny-sd --side 512
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# Imports nothing heavy: the child applies its malloc settings before torch allocates.
from bare_pipeline import MODELS, load, save, timed_call


def measure(model: str, directory: Path, side: int, calls: int, reuse: bool) -> dict[str, Any]:
    from imagegate.worker import allocator

    if reuse and not allocator.keep_freed_memory():
        sys.exit("this C library is not glibc: nothing to compare")
    pipe = load(model, directory)

    def call(seed: int) -> float:
        return timed_call(pipe, side, seed)

    call(0)
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = [call(seed) for seed in range(calls)]
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "times": times,
        "user": (after.ru_utime - before.ru_utime) / calls,
        "system": (after.ru_stime - before.ru_stime) / calls,
        "faults": (after.ru_minflt - before.ru_minflt) / calls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, default="tiny-flux")
    parser.add_argument("--side", type=int, default=1024, help="render size in pixels")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4, help="per side per round")
    parser.add_argument("--child", choices=["default", "reuse"], help=argparse.SUPPRESS)
    parser.add_argument("--directory", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = measure(args.model, args.directory, args.side, args.calls, args.child == "reuse")
        print(json.dumps(result))
        return

    results: dict[str, list[dict[str, Any]]] = {"default": [], "reuse": []}
    with tempfile.TemporaryDirectory() as tmp:
        directory = save(args.model, Path(tmp) / "model")
        for _ in range(args.rounds):
            for side in results:
                command = [
                    sys.executable,
                    __file__,
                    f"--model={args.model}",
                    f"--side={args.side}",
                    f"--calls={args.calls}",
                    f"--child={side}",
                    f"--directory={directory}",
                ]
                out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
                results[side].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{args.model}, {args.side}², 4 steps, {args.rounds} rounds of {args.calls} calls a side")
    for side, label in (("default", "glibc's defaults"), ("reuse", "freed memory kept")):
        runs = results[side]
        times = [t for run in runs for t in run["times"]]
        mean = {k: statistics.mean(run[k] for run in runs) for k in ("user", "system", "faults")}
        print(
            f"  {label:17s} median {statistics.median(times) * 1000:6.0f} ms, "
            f"best {min(times) * 1000:6.0f} ms; per call: user {mean['user'] * 1000:5.0f} ms, "
            f"system {mean['system'] * 1000:4.0f} ms, {mean['faults']:8.0f} page faults"
        )


if __name__ == "__main__":
    main()
