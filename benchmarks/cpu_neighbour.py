"""How much a bare diffusers pipeline on the CPU slows down beside a process that wakes now
and then: the question behind imagegate's slower model calls on small CPUs, where the
server's own wake-ups (timers, polls) run beside the model.

The neighbour busy-waits ``--busy-ms`` every ``--period-ms`` and sleeps the rest. Rounds
alternate quiet calls with calls beside the neighbour, so drift in the machine's speed
falls on both sides alike. Run with ``--threads 1`` to compare a one-thread pipeline.

    python benchmarks/cpu_neighbour.py --model tiny-flux --busy-ms 0.2 --period-ms 100
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import torch
from bare_pipeline import MODELS, load, save, timed_call


def neighbour(stop: Event, ready: Event, busy_s: float, period_s: float) -> None:
    ready.set()
    while not stop.is_set():
        end = time.perf_counter() + busy_s
        while time.perf_counter() < end:
            pass
        time.sleep(period_s - busy_s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=MODELS, default="tiny-flux")
    parser.add_argument("--busy-ms", type=float, default=0.2)
    parser.add_argument("--period-ms", type=float, default=100.0)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's own")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3, help="per side per round")
    parser.add_argument("--side", type=int, default=1024, help="render size in pixels")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        pipe = load(args.model, save(args.model, Path(tmp) / "model"))

        def call(seed: int) -> float:
            return timed_call(pipe, args.side, seed)

        call(0)
        context = multiprocessing.get_context("spawn")
        quiet: list[float] = []
        beside: list[float] = []
        for _ in range(args.rounds):
            quiet += [call(seed) for seed in range(args.calls)]
            stop, ready = context.Event(), context.Event()
            busy = context.Process(
                target=neighbour, args=(stop, ready, args.busy_ms / 1000, args.period_ms / 1000)
            )
            busy.start()
            # A spawned child first imports this script (torch and diffusers: seconds of
            # CPU); timing only starts once it is in its loop.
            ready.wait()
            try:
                beside += [call(seed) for seed in range(args.calls)]
            finally:
                stop.set()
                busy.join()
    print(
        f"{args.model}, {torch.get_num_threads()} torch thread(s), {args.side}², 4 steps; "
        f"neighbour: {args.busy_ms} ms busy every {args.period_ms} ms"
    )
    for label, times in (("quiet", quiet), ("beside the neighbour", beside)):
        print(
            f"  {label:21s} median {statistics.median(times) * 1000:6.0f} ms, "
            f"best {min(times) * 1000:6.0f} ms ({len(times)} calls)"
        )


if __name__ == "__main__":
    main()
