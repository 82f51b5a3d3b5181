"""imagegate's diffusers backend: images/s through the server against the bare pipeline.

The same pipeline, on the same machine in the same run, two ways:

- **direct**: loaded once with diffusers' ``from_pretrained`` (same dtype and device),
  warmed up, then called in a loop, one image per call, with the same steps, size, guidance
  and a CPU generator per image, ``output_type="pil"``, plus the same Lanczos upscale to the
  delivered size that imagegate does (no PNG encoding, no storage). A second reference row
  calls it with ``max_batch`` images per call, to show what batching alone can gain. It
  has glibc's default malloc, as a plain script does; ``--direct-reuse-memory`` gives it
  the settings of imagegate's model process, to compare imagegate's own overhead alone.
- **imagegate**: a real ``imagegate serve`` subprocess on 127.0.0.1 (process isolation,
  SQLite in a temporary data directory, ``warm = true``) serving that pipeline through a
  registry entry with the same options; N closed-loop clients each submit one job
  (``n = 1``, ``enable_sync_mode``, distinct seeds) and the next as soon as it completes,
  until the scenario's images are made, encoded and stored.

On a CPU both are loaded at once and take turns (``--rounds``, 3 by default), so the
machine's drift in speed falls on both; on a GPU the direct rows run before and after.

    # defaults: tiny-sd rendered at the full 1024x1024, ~1.5 s an image on a 2-core CPU
    python benchmarks/backend_overhead.py
    # where batching pays on a CPU: a tiny render (64x64), upscaled to 1024x1024
    python benchmarks/backend_overhead.py --steps 32 --render-scale 0.0625 --images 64
    # on a GPU (device auto): real architectures, random weights, nothing from the hub
    python benchmarks/backend_overhead.py --model sd-turbo-class --render-scale 0.5 --images 32
    python benchmarks/backend_overhead.py --model flux-schnell-class --images 8

Goals (the issue's): >= 0.95x the direct loop at 1 client; >= 1.5x at 8 clients where the
model is small enough for batching to pay (the table says n/a where batching the direct
pipeline itself gains less than that). The ratio only means something where the model's
time per image dominates imagegate's fixed cost per job (the output check, PNG encoding
and storing of the delivered image and the HTTP round trips: about 65 ms for a 1024x1024
image on a 2-core CPU). The server, its model process
and the scratch directories are removed on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Before anything imports huggingface_hub: every model here is built locally or named by
# the user, and the benchmark must never wait on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import httpx
from processes import imagegate_serve

ROUTE = "bench/model"
SUBMIT_PATH = f"/api/v3/{ROUTE}/text-to-image"
PROMPT = "a photo of a red horse in a green forest at night"
GOALS = {1: 0.95, 8: 1.5}  # clients -> images/s as a multiple of the direct loop
# A row during which other processes used this much CPU (in cores) is flagged.
DISTURBED_CORES = 0.2
LOAD_TIMEOUT_S = 1800.0  # a large model loading from a cold disk onto a GPU
PRESETS = ("tiny-sd", "tiny-flux", "sd-turbo-class", "flux-schnell-class")
# Guidance a preset runs with: SD-Turbo and FLUX.1-schnell are distilled for none.
PRESET_GUIDANCE = {name: 0.0 for name in PRESETS}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- models: built with random weights in code, or the user's own ---


def build_model(preset: str, directory: Path, device: str, dtype: str) -> Path:
    """Save the preset's pipeline under ``directory``; nothing comes from the hub."""
    from imagegate.testing import tiny_pipelines

    if preset == "tiny-sd":
        return tiny_pipelines.save_tiny_sd(directory)
    if preset == "tiny-flux":
        return tiny_pipelines.save_tiny_flux(directory)
    import torch

    from imagegate.backends.diffusers.loading import pick_device, pick_dtype

    where = pick_device(device)
    torch_dtype = pick_dtype(dtype, where)
    # Real-sized models: create the random weights on the device (seconds on a GPU) and
    # in the dtype they will run in, so FLUX's 16.6B parameters never exist in float32
    # (66 GB). On a CPU, FLUX-class needs about 35 GB of memory even in bfloat16.
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype)
    try:
        with torch.device(where), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            pipe = _sd_turbo_class() if preset == "sd-turbo-class" else _flux_schnell_class()
    finally:
        torch.set_default_dtype(default_dtype)
    pipe.to(dtype=torch_dtype)
    directory.mkdir(parents=True, exist_ok=True)
    pipe.save_pretrained(directory)
    del pipe
    gc.collect()
    if where.type == "cuda":
        torch.cuda.empty_cache()
    return directory


def _sd_turbo_class() -> Any:
    """stabilityai/sd-turbo's architecture (SD 2.1: UNet 865M, OpenCLIP-H text encoder,
    SD VAE) with random weights. The tokenizer is imagegate's tiny CLIP-layout one, so the
    text encoder's vocabulary is small; the sequence length (77) and every layer are real."""
    from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import (
        StableDiffusionPipeline,
    )

    from imagegate.testing.tiny_pipelines import (
        _clip_tokenizer,
        clip_text_encoder,
        four_block_vae,
        sd_turbo_scheduler,
    )

    tokenizer = _clip_tokenizer()
    text_encoder = clip_text_encoder(
        tokenizer, hidden=1024, layers=23, heads=16, intermediate=4096, act="gelu"
    )
    unet = UNet2DConditionModel(
        sample_size=64,
        in_channels=4,
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ),
        up_block_types=(
            "UpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
            "CrossAttnUpBlock2D",
        ),
        block_out_channels=(320, 640, 1280, 1280),
        layers_per_block=2,
        attention_head_dim=(5, 10, 20, 20),
        cross_attention_dim=1024,
        use_linear_projection=True,
    )
    vae = four_block_vae(
        (128, 256, 512, 512),
        latent_channels=4,
        layers_per_block=2,
        norm_num_groups=32,
        sample_size=768,
        scaling_factor=0.18215,
    )
    scheduler = sd_turbo_scheduler()
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,  # type: ignore[arg-type]  # hinted as an enum of classes
        # diffusers hints these as non-optional, but None is how SD runs without them.
        safety_checker=None,  # type: ignore[arg-type]
        feature_extractor=None,  # type: ignore[arg-type]
        requires_safety_checker=False,
    )


def _flux_schnell_class() -> Any:
    """black-forest-labs/FLUX.1-schnell's architecture (12B transformer without guidance
    embedding, CLIP-L, T5-XXL, 16-channel VAE) with random weights and imagegate's tiny
    CLIP- and T5-layout tokenizers (small vocabularies, real sequence lengths)."""
    from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel
    from diffusers.pipelines.flux.pipeline_flux import FluxPipeline
    from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
        FlowMatchEulerDiscreteScheduler,
    )

    from imagegate.testing.tiny_pipelines import (
        _clip_tokenizer,
        _t5_tokenizer,
        clip_text_encoder,
        four_block_vae,
        t5_text_encoder,
    )

    tokenizer = _clip_tokenizer()
    text_encoder = clip_text_encoder(
        tokenizer, hidden=768, layers=12, heads=12, intermediate=3072, act="quick_gelu"
    )
    tokenizer_2 = _t5_tokenizer()
    text_encoder_2 = t5_text_encoder(
        tokenizer_2, d_model=4096, d_kv=64, d_ff=10240, layers=24, heads=64, buckets=32
    )
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=19,
        num_single_layers=38,
        attention_head_dim=128,
        num_attention_heads=24,
        joint_attention_dim=4096,
        pooled_projection_dim=768,
        guidance_embeds=False,
        axes_dims_rope=(16, 56, 56),
    )
    vae = four_block_vae(
        (128, 256, 512, 512),
        latent_channels=16,
        layers_per_block=2,
        norm_num_groups=32,
        sample_size=1024,
        scaling_factor=0.3611,
        shift_factor=0.1159,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False
    )
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )


# --- the direct loop ---


@dataclass(frozen=True)
class Config:
    source: str
    pipeline: str | None
    steps: int
    guidance_scale: float | None
    aspect_ratio: str
    resolution: str
    render_scale: float
    max_batch: int
    device: str
    dtype: str
    output_format: str
    clients: tuple[int, ...]
    images: int
    warmup: int
    cpu_threads: int | None = None
    rounds: int = 1
    direct_reuse_memory: bool = False


@dataclass
class Sizes:
    delivered: tuple[int, int] = (0, 0)
    rendered: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Measured:
    label: str
    clients: int  # 0 for the direct rows
    images: int
    seconds: float
    load: float  # the 1-minute load average, the higher of its start and end
    others: float  # cores' worth of CPU that other processes used meanwhile
    detail: str = ""

    @property
    def rate(self) -> float:
        return self.images / self.seconds


def _on_cpu(device: str) -> bool:
    from imagegate.backends.diffusers.loading import pick_device

    return pick_device(device).type == "cpu"


def allocator_facts(config: Config, env_extra: dict[str, str]) -> list[str]:
    reuse = env_extra.get("IMAGEGATE_MODEL_MEMORY_REUSE", "true").lower() in ("1", "true", "yes")
    return [
        "malloc: imagegate's model process "
        + (
            "keeps freed memory for reuse (IMAGEGATE_MODEL_MEMORY_REUSE, the default)"
            if reuse
            else "has glibc's defaults (IMAGEGATE_MODEL_MEMORY_REUSE=false)"
        )
        + "; the direct loop "
        + (
            "the same (--direct-reuse-memory)"
            if config.direct_reuse_memory
            else "glibc's defaults, as a plain script has"
        ),
        f"rounds: {config.rounds}"
        + (
            " (direct and imagegate in turn)" if config.rounds > 1 else " (direct before and after)"
        ),
    ]


def machine_facts(device: str) -> list[str]:
    import diffusers
    import torch

    from imagegate.backends.diffusers.loading import pick_device

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    where = pick_device(device)
    gpu = f" ({torch.cuda.get_device_name(where)})" if where.type == "cuda" else ""
    return [
        f"CPU: {os.cpu_count()} x {model} ({platform.machine()}), "
        f"torch intra-op threads {torch.get_num_threads()}",
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"diffusers {diffusers.__version__}",
        f"device: {where}{gpu}",
    ]


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (steal included), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICK


def _cpu_s(session: int | None) -> dict[str, float]:
    """CPU seconds so far of this process ("bench"), and of the server ("server", the
    session leader) and the rest of its session ("model": its model process)."""
    cpu = {"bench": sum(os.times()[:2]), "server": 0.0, "model": 0.0}
    if session is not None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # it exited meanwhile
            if int(fields[3]) == session:
                name = "server" if int(stat.parent.name) == session else "model"
                cpu[name] += (int(fields[11]) + int(fields[12])) / _TICK
    return cpu


@dataclass(frozen=True)
class Watched:
    seconds: float
    load: float  # the higher 1-minute load average of the start and the end
    others: float  # cores' worth of CPU other processes used meanwhile
    cpu: dict[str, float]  # CPU seconds meanwhile: bench, server, model


class Watch:
    """Wall time, load average, our CPU and the CPU other processes took, over one row."""

    def __init__(self, session: int | None = None) -> None:
        self.session = session
        self.load = os.getloadavg()[0]
        self.linux = Path("/proc/stat").exists()
        self.busy = _machine_busy_s() if self.linux else 0.0
        self.cpu = _cpu_s(session) if self.linux else {}
        self.start = time.perf_counter()

    def stop(self) -> Watched:
        seconds = time.perf_counter() - self.start
        load = max(self.load, os.getloadavg()[0])
        if not self.linux:
            return Watched(seconds, load, math.nan, {})
        busy = _machine_busy_s() - self.busy
        cpu = {name: value - self.cpu[name] for name, value in _cpu_s(self.session).items()}
        return Watched(seconds, load, max(0.0, busy - sum(cpu.values())) / seconds, cpu)


class DirectPipeline:
    """The bare pipeline, loaded with diffusers' own ``from_pretrained``."""

    def __init__(self, config: Config, sizes: Sizes) -> None:
        import torch

        # The same device/dtype resolution and size arithmetic as the server's (so both
        # render the same pixels); the pipeline itself is called plainly below.
        from imagegate.backends.diffusers.loading import pick_device, pick_dtype, pipeline_class
        from imagegate.backends.diffusers.rendering import render_size, size_multiple
        from imagegate.domain.sizes import output_size

        self.config = config
        self.where = pick_device(config.device)
        dtype = pick_dtype(config.dtype, self.where)
        pipe: Any = pipeline_class(config.pipeline).from_pretrained(config.source, dtype=dtype)
        if getattr(pipe, "safety_checker", None) is not None:
            pipe.safety_checker = None
        pipe.to(self.where)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        width, height = output_size(config.aspect_ratio, config.resolution)
        render_w, render_h = render_size(width, height, config.render_scale, size_multiple(pipe))
        sizes.delivered, sizes.rendered = (width, height), (render_w, render_h)
        self.delivered, self.rendered = (width, height), (render_w, render_h)
        self._torch = torch

    def call(self, seeds: list[int]) -> tuple[float, float]:
        """Make one image per seed; (pipeline seconds, upscale seconds)."""
        from PIL import Image

        kwargs: dict[str, Any] = {
            "prompt": [PROMPT] * len(seeds),
            "num_inference_steps": self.config.steps,
            "width": self.rendered[0],
            "height": self.rendered[1],
            "generator": [self._torch.Generator("cpu").manual_seed(seed) for seed in seeds],
            "output_type": "pil",
        }
        if self.config.guidance_scale is not None:
            kwargs["guidance_scale"] = self.config.guidance_scale
        start = time.perf_counter()
        images = self.pipe(**kwargs).images
        model_s = time.perf_counter() - start
        for image in images:
            if image.size != self.delivered:
                image.resize(self.delivered, Image.Resampling.LANCZOS)
        return model_s, time.perf_counter() - start - model_s

    def warm(self) -> None:
        for k in range(self.config.warmup):
            self.call([10_000 + k])
            per_call = self.config.max_batch
            self.call([20_000 + k * per_call + j for j in range(per_call)])

    def close(self) -> None:
        self.pipe = None  # hand the weights back before anything loads its own copy
        gc.collect()
        if self.where.type == "cuda":
            self._torch.cuda.empty_cache()


@contextmanager
def direct_pipeline(config: Config, sizes: Sizes) -> Iterator[DirectPipeline]:
    pipe = DirectPipeline(config, sizes)
    try:
        pipe.warm()
        yield pipe
    finally:
        pipe.close()


@dataclass
class Tally:
    """One row of the report, summed over the rounds it was measured in."""

    label: str
    clients: int = 0  # 0 for the direct rows
    per_call: int = 1  # images per direct call
    images: int = 0
    seconds: float = 0.0
    load: float = 0.0
    others_s: float = 0.0  # CPU seconds other processes used meanwhile
    cpu: dict[str, float] = field(default_factory=dict)
    calls: int = 0
    model_s: float = 0.0
    upscale_s: float = 0.0
    jobs: list[Job] = field(default_factory=list)

    def add(self, watched: Watched, images: int) -> None:
        self.images += images
        self.seconds += watched.seconds
        self.load = max(self.load, watched.load)
        self.others_s += watched.others * watched.seconds
        for name, value in watched.cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + value

    def measured(self) -> Measured:
        made = max(self.images, 1)
        if self.clients == 0:
            detail = (
                f"pipeline call {self.model_s / max(self.calls, 1) * 1000:.0f} ms, upscale "
                f"{self.upscale_s / made * 1000:.1f} ms/image; "
                f"CPU {self.cpu.get('bench', math.nan) / made * 1000:.0f} ms/image"
            )
        else:
            per_image = {k: v / made * 1000 for k, v in self.cpu.items()}
            detail = (
                f"per job: latency {statistics.mean(j.latency_s for j in self.jobs) * 1000:.0f}"
                f" ms, worker {statistics.mean(j.execution_ms for j in self.jobs):.0f} ms, "
                f"model call {statistics.mean(j.inference_ms for j in self.jobs):.0f} ms; "
                f"CPU/image: server {per_image.get('server', math.nan):.0f} ms, model process "
                f"{per_image.get('model', math.nan):.0f} ms, clients "
                f"{per_image.get('bench', math.nan):.0f} ms"
            )
        others = self.others_s / self.seconds if self.seconds else math.nan
        return Measured(
            self.label, self.clients, self.images, self.seconds, self.load, others, detail
        )


def direct_calls(pipe: DirectPipeline, tally: Tally, images: int) -> None:
    """``images`` more images for a direct row, ``tally.per_call`` to a call."""
    calls = math.ceil(images / tally.per_call)
    watch = Watch()
    for _ in range(calls):
        first = tally.calls * tally.per_call
        model_s, upscale_s = pipe.call(list(range(first, first + tally.per_call)))
        tally.calls += 1
        tally.model_s += model_s
        tally.upscale_s += upscale_s
    watched = watch.stop()
    tally.add(watched, calls * tally.per_call)
    rate = calls * tally.per_call / watched.seconds
    _log(f"  {tally.label}: {rate:.2f} images/s (others {watched.others:.2f} cores)")


# --- imagegate ---


def registry_toml(config: Config) -> str:
    lines = [
        f'[models."{ROUTE}"]',
        'backend = "diffusers"',
        f"source = {json.dumps(config.source)}",
        'tasks = ["text-to-image"]',
        f"steps = {config.steps}",
        f'dtype = "{config.dtype}"',
        f'device = "{config.device}"',
        f"render_scale = {config.render_scale}",
        f"max_batch = {config.max_batch}",
        "warm = true",
    ]
    if config.guidance_scale is not None:
        lines.append(f"guidance_scale = {config.guidance_scale}")
    if config.pipeline is not None:
        lines.append(f"pipeline = {json.dumps(config.pipeline)}")
    if config.cpu_threads is not None:
        lines.append(f"cpu_threads = {config.cpu_threads}")
    return "\n".join(lines) + "\n"


def server_env(config: Config, tmp: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGEGATE_")}
    env |= {
        "HF_HUB_OFFLINE": "1",
        "IMAGEGATE_DATA_DIR": str(tmp / "data"),
        "IMAGEGATE_MODELS": str(tmp / "models.toml"),
        "IMAGEGATE_WORKER_CONCURRENCY": str(max(2, *config.clients)),
        "IMAGEGATE_SYNC_MODE_TIMEOUT": "600",
        "PYTHONUNBUFFERED": "1",
    }
    return env | extra


@contextmanager
def imagegate_server(
    config: Config, tmp: Path, env: dict[str, str], keep_log: Path | None, log_level: str
) -> Iterator[tuple[str, str, int]]:
    """``imagegate serve`` with this run's registry entry, once its model is loaded."""
    (tmp / "models.toml").write_text(registry_toml(config), encoding="utf-8")
    log = tmp / "server.log"
    started = time.monotonic()
    try:
        with imagegate_serve(env, log, f"loaded model {ROUTE}", LOAD_TIMEOUT_S, log_level) as (
            base,
            key,
            pid,
        ):
            took = time.monotonic() - started
            _log(f"  imagegate serve (pid {pid}) started and loaded the model in {took:.1f} s")
            yield base, key, pid
    finally:
        if keep_log is not None:
            keep_log.write_bytes(log.read_bytes())


@dataclass(frozen=True)
class Job:
    latency_s: float  # submit to the completed answer, at the client
    execution_ms: int  # the worker's: claimed to stored
    inference_ms: int  # the model process's call for the batch the job was in
    output: str


async def _one_job(client: httpx.AsyncClient, config: Config, seed: int) -> Job:
    body = {
        "prompt": PROMPT,
        "aspect_ratio": config.aspect_ratio,
        "resolution": config.resolution,
        "n": 1,
        "seed": seed,
        "output_format": config.output_format,
        "enable_sync_mode": True,
    }
    start = time.perf_counter()
    answer = (await client.post(SUBMIT_PATH, json=body)).json()
    if answer.get("code") != 200:
        raise RuntimeError(f"submit failed: {answer}")
    data = answer["data"]
    while data["status"] not in ("completed", "failed"):  # sync mode ran out: long-poll
        url = f"/api/v3/predictions/{data['id']}/result?wait=60"
        data = (await client.get(url)).json()["data"]
    latency = time.perf_counter() - start
    if data["status"] != "completed" or len(data["outputs"]) != 1:
        raise RuntimeError(f"job did not complete with one image: {data}")
    return Job(latency, data["executionTime"], data["timings"]["inference"], data["outputs"][0])


async def _closed_loop(
    base: str, key: str, config: Config, clients: int, images: int, first_seed: int
) -> tuple[float, list[Job]]:
    """``clients`` closed loops sharing a budget of ``images`` jobs: (seconds, jobs)."""
    tickets = iter(range(images))
    jobs: list[Job] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": key}, timeout=None, limits=limits
    ) as client:

        async def loop() -> None:
            for ticket in tickets:
                jobs.append(await _one_job(client, config, first_seed + ticket))

        start = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(clients)))
        return time.perf_counter() - start, jobs


def _check_stored(url: str, sizes: Sizes) -> None:
    """The job's stored file is an image of the delivered size (outside the timing)."""
    import io

    from PIL import Image

    content = httpx.get(url, timeout=60).raise_for_status().content
    with Image.open(io.BytesIO(content)) as image:
        if image.size != sizes.delivered:
            raise RuntimeError(f"the stored image is {image.size}, expected {sizes.delivered}")


def imagegate_jobs(
    base: str, key: str, pid: int, config: Config, sizes: Sizes, tally: Tally, images: int
) -> None:
    """``images`` more jobs for an imagegate row, from ``tally.clients`` closed loops."""
    # The server is its own session (start_new_session): its model process too.
    watch = Watch(session=pid)
    first_seed = 1_000_000 + 10_000 * tally.clients + tally.images
    _, jobs = asyncio.run(_closed_loop(base, key, config, tally.clients, images, first_seed))
    watched = watch.stop()
    _check_stored(jobs[-1].output, sizes)
    tally.jobs += jobs
    tally.add(watched, len(jobs))
    _log(
        f"  imagegate, {tally.clients} client(s): {len(jobs) / watched.seconds:.2f} images/s "
        f"(others {watched.others:.2f} cores)"
    )


def warm_imagegate(base: str, key: str, config: Config) -> None:
    """Every client count's first job(s), unmeasured, so batches of each size ran once."""
    for clients in config.clients:
        warm = clients * config.warmup
        asyncio.run(_closed_loop(base, key, config, clients, warm, 900_000 + 1_000 * clients))


def measure(
    config: Config,
    sizes: Sizes,
    tmp: Path,
    env: dict[str, str],
    keep_log: Path | None,
    log_level: str,
    direct_after: bool,
) -> tuple[list[Measured], list[Measured]]:
    """(direct rows, imagegate rows). With several rounds, the direct pipeline and the
    server are both loaded and take turns, each round a share of the direct rows' and the
    1-client row's images, so the machine's drift in speed (here up to 30 % within
    minutes) falls on both alike. A row with more clients runs whole, in the middle round:
    cut into shares, it would pay its ramp-up (the first job starts alone) and its tail (a
    last, partial batch) once a round. With one round, the direct rows are measured before
    and after imagegate's, with only one copy of the model loaded at a time (for models
    that fill a GPU)."""
    per_round = math.ceil(config.images / config.rounds)
    rows = [Tally("imagegate", clients) for clients in config.clients]

    def direct_tallies(when: str | None) -> list[Tally]:
        loop, reference = (f" ({when})", f" ({when}; reference)") if when else ("", " (reference)")
        return [
            Tally(f"direct loop, 1 image per call{loop}"),
            Tally(
                f"direct, {config.max_batch} images per call{reference}", per_call=config.max_batch
            ),
        ]

    if config.rounds > 1:
        directs = direct_tallies(None)
        _log(f"direct pipeline and imagegate, {config.rounds} rounds in turn ...")
        with (
            direct_pipeline(config, sizes) as pipe,
            imagegate_server(config, tmp, env, keep_log, log_level) as (base, key, pid),
        ):
            warm_imagegate(base, key, config)
            for round_ in range(config.rounds):
                _log(f"round {round_ + 1} of {config.rounds}")
                for tally in directs:
                    direct_calls(pipe, tally, per_round)
                for tally in rows:
                    if tally.clients == 1:
                        imagegate_jobs(base, key, pid, config, sizes, tally, per_round)
                    elif round_ == config.rounds // 2:
                        imagegate_jobs(base, key, pid, config, sizes, tally, config.images)
        return [t.measured() for t in directs], [t.measured() for t in rows]

    _log("direct pipeline ...")
    directs = direct_tallies("before")
    with direct_pipeline(config, sizes) as pipe:
        for tally in directs:
            direct_calls(pipe, tally, config.images)
    _log("imagegate ...")
    with imagegate_server(config, tmp, env, keep_log, log_level) as (base, key, pid):
        warm_imagegate(base, key, config)
        for tally in rows:
            imagegate_jobs(base, key, pid, config, sizes, tally, config.images)
    if direct_after:
        _log("direct pipeline again ...")
        after = direct_tallies("after")
        with direct_pipeline(config, sizes) as pipe:
            for tally in after:
                direct_calls(pipe, tally, config.images)
        directs += after
    return [t.measured() for t in directs], [t.measured() for t in rows]


# --- the report ---


def print_report(
    config: Config,
    sizes: Sizes,
    facts: list[str],
    directs: list[Measured],
    rows: list[Measured],
    command: str,
) -> None:
    # The best of the direct measurements: on a shared machine another process's burst
    # slows a run down (torch's threads wait for a core) and never speeds one up.
    loops = [row for row in directs if row.label.startswith("direct loop")]
    base = max(row.rate for row in loops)
    batched = max(row.rate for row in directs if row not in loops)
    guidance = "pipeline default" if config.guidance_scale is None else config.guidance_scale
    (dw, dh), (rw, rh) = sizes.delivered, sizes.rendered
    print(f"`{command}`")
    print()
    for line in facts:
        print(f"- {line}")
    print(
        f"- model: {config.source} ({config.pipeline or 'AutoPipelineForText2Image'}), "
        f"{config.steps} steps, guidance {guidance}, dtype {config.dtype}, device {config.device}"
    )
    print(
        f"- size {config.aspect_ratio} {config.resolution}: rendered {rw}x{rh} "
        f"(render_scale {config.render_scale}), delivered {dw}x{dh}; max_batch "
        f"{config.max_batch}; output {config.output_format}; {config.images} images a row"
    )
    print(
        "- direct: includes the Lanczos upscale to the delivered size, not PNG encoding or "
        "storage; ratios are against the (faster) direct loop row"
    )
    print()
    print(
        "| scenario | clients | images | seconds | images/s | ratio | goal | met? "
        "| load avg | others' CPU | detail |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|---|--:|--:|---|")
    headroom = batched / base
    for row in (*directs, *rows):
        goal = GOALS.get(row.clients)
        ratio = row.rate / base
        met = "" if goal is None else ("met" if ratio >= goal else "MISSED")
        if goal is not None and goal > 1 and headroom < goal:
            met = f"n/a ({met}): batching alone gives {headroom:.2f}x"
        if row.others >= DISTURBED_CORES:
            met = f"{met} DISTURBED".strip()
        print(
            f"| {row.label} | {row.clients or '-'} | {row.images} | {row.seconds:.1f} "
            f"| {row.rate:.2f} | {ratio:.2f} | {f'>= {goal}x' if goal else ''} | {met} "
            f"| {row.load:.2f} | {row.others:.2f} | {row.detail} |"
        )
    print()
    disturbed = [row for row in (*directs, *rows) if row.others >= DISTURBED_CORES]
    if disturbed:
        print(
            f"**{len(disturbed)} row(s) DISTURBED**: other processes used at least "
            f"{DISTURBED_CORES} of a core meanwhile; run again on a quieter machine."
        )
        print()
    print(
        f"Batching alone ({config.max_batch} images per direct call) gives {headroom:.2f}x the "
        f"direct loop; the {GOALS[8]}x goal at 8 clients applies only where it is above that. "
        "load avg: the 1-minute load average (this benchmark itself adds about the number of "
        "cores it keeps busy); others' CPU: cores' worth of CPU that processes other than this "
        "benchmark, the server and its model process used during the row."
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _size(text: str) -> tuple[str, str]:
    from imagegate.domain.sizes import ASPECT_RATIOS, RESOLUTIONS

    aspect, _, resolution = text.partition("/")
    resolution = resolution or "1k"
    if aspect not in ASPECT_RATIOS or resolution not in RESOLUTIONS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: want ASPECT[/RESOLUTION] with ASPECT one of {', '.join(ASPECT_RATIOS)} "
            f"and RESOLUTION one of {', '.join(RESOLUTIONS)}"
        )
    return aspect, resolution


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: want client counts like 1,8") from None
    if min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: client counts must be at least 1")
    return counts


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--model",
        choices=PRESETS,
        default="tiny-sd",
        help="a pipeline built in code with random weights (default: %(default)s); the "
        "-class ones have the real architecture and size, for a GPU",
    )
    which.add_argument("--source", help="your own model: a local directory or a hub repo id")
    parser.add_argument(
        "--pipeline", help="diffusers pipeline class (default: read from the source)"
    )
    parser.add_argument("--steps", type=int, default=4, help="(default: %(default)s)")
    parser.add_argument(
        "--guidance-scale",
        type=float,
        help="(default: 0 for --model, the pipeline's own for --source)",
    )
    parser.add_argument(
        "--size",
        type=_size,
        default="1:1/1k",
        metavar="ASPECT[/RES]",
        help="the contract's aspect ratio and resolution (default: %(default)s)",
    )
    parser.add_argument("--render-scale", type=float, default=1.0, help="(default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=8, help="(default: %(default)s)")
    parser.add_argument(
        "--cpu-threads",
        type=int,
        help="the registry entry's cpu_threads (default: unset, torch's one per core)",
    )
    parser.add_argument(
        "--clients",
        type=_counts,
        default="1,8",
        metavar="N[,N...]",
        help="closed-loop client counts, one row each (default: %(default)s)",
    )
    parser.add_argument(
        "--images", type=int, default=8, help="measured images per row (default: %(default)s)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="unmeasured calls / jobs per client first (default: %(default)s)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N, mps (default: %(default)s)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "float16", "bfloat16"),
        help="(default: %(default)s: bfloat16/float16 on a GPU, float32 on a CPU)",
    )
    parser.add_argument(
        "--output-format",
        default="png",
        choices=("png", "jpeg", "webp"),
        help="what the clients ask imagegate for (default: %(default)s)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="take turns: each round measures a share of every row, both loaded at once "
        "(default: 3 on a CPU; 1 on a GPU, where 1 measures direct before and after)",
    )
    parser.add_argument(
        "--direct-reuse-memory",
        action="store_true",
        help="give the direct loop the malloc settings imagegate's model process runs with "
        "(IMAGEGATE_MODEL_MEMORY_REUSE): compares imagegate's overhead alone",
    )
    parser.add_argument(
        "--no-direct-after",
        dest="direct_after",
        action="store_false",
        help="skip the second direct measurement after imagegate's",
    )
    parser.add_argument("--keep-log", type=Path, help="copy the server's log here at the end")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning"),
        help="the server's; debug logs each batch's size (default: %(default)s)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for imagegate serve, e.g. IMAGEGATE_BATCH_WINDOW_MS=0",
    )
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    if any("=" not in item for item in args.server_env):
        sys.exit("--server-env wants NAME=VALUE")
    extra = dict(item.split("=", 1) for item in args.server_env)
    command = " ".join(["python benchmarks/backend_overhead.py", *sys.argv[1:]])
    try:
        with tempfile.TemporaryDirectory(prefix="imagegate-backend-bench-") as scratch:
            tmp = Path(scratch)
            if args.source:
                source, guidance = args.source, args.guidance_scale
            else:
                _log(f"building {args.model} with random weights ...")
                source = str(build_model(args.model, tmp / "model", args.device, args.dtype))
                guidance = (
                    PRESET_GUIDANCE[args.model]
                    if args.guidance_scale is None
                    else args.guidance_scale
                )
            config = Config(
                source=source,
                pipeline=args.pipeline,
                steps=args.steps,
                guidance_scale=guidance,
                aspect_ratio=args.size[0],
                resolution=args.size[1],
                render_scale=args.render_scale,
                max_batch=args.max_batch,
                device=args.device,
                dtype=args.dtype,
                output_format=args.output_format,
                clients=args.clients,
                images=args.images,
                warmup=args.warmup,
                cpu_threads=args.cpu_threads,
                rounds=args.rounds or (3 if _on_cpu(args.device) else 1),
                direct_reuse_memory=args.direct_reuse_memory,
            )
            if config.direct_reuse_memory:
                from imagegate.worker import allocator

                # Before the direct pipeline allocates anything, as in the model process.
                if not allocator.keep_freed_memory():
                    sys.exit("--direct-reuse-memory: this C library is not glibc")
            facts = [*machine_facts(args.device), *allocator_facts(config, env_extra=extra)]
            for line in facts:
                _log(line)
            env = server_env(config, tmp, extra)
            shown = {k: v for k, v in env.items() if k.startswith("IMAGEGATE_")}
            _log(f"registry entry:\n{registry_toml(config)}server environment: {shown}")
            sizes = Sizes()
            directs, rows = measure(
                config, sizes, tmp, env, args.keep_log, args.log_level, args.direct_after
            )
            print_report(config, sizes, facts, directs, rows, command)
    except KeyboardInterrupt:
        _log("interrupted: the server and its model process stopped, scratch files removed")
        sys.exit(130)


if __name__ == "__main__":
    main()
