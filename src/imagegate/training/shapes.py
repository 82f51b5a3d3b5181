"""Train the shapes model: ``python -m imagegate.training.shapes --out DIR``.

Three stages, each resumable from the last checkpoint in ``--work``:

1. the VAE learns to reconstruct synthetic scenes (64x64 -> 16x16x4 latents);
2. a fixed set of scenes is encoded once to latents (with their captions' token ids);
3. the UNet and the text encoder learn together to denoise those latents given the
   caption (10 % of captions are dropped, for classifier-free guidance), with an EMA of
   both, under a cosine learning-rate schedule.

The result is saved as an ordinary StableDiffusionPipeline directory. Everything is seeded:
the same command gives the same weights on the same machine.
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import StableDiffusionPipeline
from tqdm import tqdm

from imagegate.training import scenes
from imagegate.training import shapes_model as model


@dataclass(frozen=True)
class Plan:
    seed: int = 0
    vae_steps: int = 1_500
    vae_batch: int = 32
    vae_lr: float = 1e-3
    vae_warmup: int = 100
    kl_weight: float = 1e-6
    # Objects cover a tenth of a scene: weighted equally with the background, a young
    # decoder paints them in the background's colour (seen in a trial: 53 % colours right).
    object_weight: float = 4.0
    # A shape is its outline, so the pixels on an object's edge count this much more again.
    # With it (and a decaying rate) the judge recognised 90.5 % of ground-truth shapes
    # through the decoder, against 84.5 % without; small rings kept their holes (1 wrong of
    # 31, was 12), but small stars, 3 latent pixels across, are still lost (31 of 32).
    edge_weight: float = 4.0
    scenes: int = 60_000
    # The denoiser's scenes: one object in 60 % of them (the autoencoder's and the
    # grammar's default is 40 %), since the goal is measured on single-object captions;
    # two and three objects keep their 7:5 ratio.
    denoiser_counts: tuple[float, float, float] = (0.6, 0.4 * 7 / 12, 0.4 * 5 / 12)
    unet_steps: int = 5_000
    unet_batch: int = 32
    unet_lr: float = 5e-4
    warmup: int = 200
    ema_decay: float = 0.999
    caption_dropout: float = 0.1
    snr_gamma: float = 5.0
    # How much more the denoiser's loss counts on the latent pixels an object touches than
    # on the background's (1: all alike). A small star is a few of a latent's 256 pixels.
    denoiser_object_weight: float = 1.0
    prediction: str = model.PREDICTION  # "epsilon" or "v_prediction"
    checkpoint_every: int = 200
    widths: model.Widths = model.DEFAULT_WIDTHS


def pixels(batch: Sequence[Any]) -> torch.Tensor:
    """PIL images as one (N, 3, H, W) tensor in [-1, 1], the VAE's input range."""
    pixels = np.stack([np.asarray(image, dtype=np.float32) for image in batch]) / 127.5 - 1.0
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


def _scene_batches(
    seed: int, size: int, counts: Mapping[int, float] = scenes.OBJECT_COUNT_WEIGHTS
) -> Iterator[tuple[torch.Tensor, list[str], list[scenes.Scene]]]:
    stream = scenes.examples(seed, size=model.IMAGE_SIZE, counts=counts)
    while True:
        chunk = [next(stream) for _ in range(size)]
        yield (
            pixels([image for image, _, _ in chunk]),
            [text for _, text, _ in chunk],
            [scene for _, _, scene in chunk],
        )


def _object_masks(images: torch.Tensor, batch: list[scenes.Scene]) -> torch.Tensor:
    """1 where a pixel differs from its scene's bare background, else 0: (N, 1, H, W)."""
    side = images.shape[-1]
    backgrounds = pixels([scenes.render_bare(s.background, side) for s in batch])
    return ((images - backgrounds).abs().amax(dim=1, keepdim=True) > 0.02).float()


def _latent_masks(masks: torch.Tensor, factor: int) -> torch.Tensor:
    """True on each latent pixel whose ``factor`` x ``factor`` patch of the image an object
    touches: (N, H / factor, W / factor)."""
    return torch.nn.functional.max_pool2d(masks, factor)[:, 0].bool()


def _edges(masks: torch.Tensor) -> torch.Tensor:
    """1 on the two-pixel band where an object mask meets the background, else 0."""
    grown = torch.nn.functional.max_pool2d(masks, 3, stride=1, padding=1)
    shrunk = -torch.nn.functional.max_pool2d(-masks, 3, stride=1, padding=1)
    return grown - shrunk


def _warmup_cosine(warmup: int, total: int, floor: float = 0.05) -> Callable[[int], float]:
    """Learning-rate factor per step: linear warm-up, then cosine decay to ``floor``."""

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return rate


def standardise_latents(vae: Any, mean: torch.Tensor, std: torch.Tensor) -> None:
    """Fold a per-channel standardisation, (z - mean) / std, into the VAE itself.

    One global scale (Stable Diffusion's ``scaling_factor``) left the previous weights
    (2026-11-28) with channel means of -0.75 to 0.12 and deviations of 0.17 to 1.7: under
    the noise, the weakest channel was all but invisible to the denoiser, and the offsets
    had to be learned back. The encoder's last 1x1
    convolution now outputs standardised latents and the decoder's first one takes that
    back, exactly, so the pipeline stays an ordinary one, with ``scaling_factor`` 1.
    """
    mean, std = mean.double(), std.double()
    channels = mean.numel()
    with torch.no_grad():
        quant, post = vae.quant_conv, vae.post_quant_conv
        # quant_conv writes the posterior's means, then its log-variances
        weight, bias = quant.weight.double(), quant.bias.double()
        weight[:channels] /= std.view(-1, 1, 1, 1)
        bias[:channels] = (bias[:channels] - mean) / std
        bias[channels:] -= 2 * std.log()
        quant.weight.copy_(weight)
        quant.bias.copy_(bias)
        # post_quant_conv(std * z + mean) = (W * std) z + (W mean + b)
        weight, bias = post.weight.double(), post.bias.double()
        bias += weight[:, :, 0, 0] @ mean
        weight *= std.view(1, -1, 1, 1)
        post.weight.copy_(weight)
        post.bias.copy_(bias)
    vae.register_to_config(scaling_factor=1.0)


def min_snr_weights(noise: Any, gamma: float) -> torch.Tensor:
    """Loss weights per timestep. Epsilon prediction: Min-SNR-gamma (Hang et al., 2023),
    min(SNR, gamma) / SNR, so the nearly clean timesteps, least useful to learn, stop
    dominating the gradient. V prediction: clamp(SNR, 1, gamma) / (SNR + 1), the same cap
    with Salimans and Ho's floor of 1 on the clean-image loss, because plain Min-SNR would
    weight the noisiest timesteps, where a sample's overall colour is chosen, near zero."""
    alphas = noise.alphas_cumprod.double()
    snr = alphas / (1 - alphas)
    if noise.config["prediction_type"] == "v_prediction":
        return (snr.clamp(min=1, max=gamma) / (snr + 1)).float()
    return (snr.clamp(max=gamma) / snr).float()


class Trainer:
    def __init__(self, plan: Plan, work: Path) -> None:
        self.plan = plan
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(plan.seed)
        self.tokenizer = model.tokenizer(scenes.all_words())
        self.vae = model.vae(plan.widths)
        self.text = model.text_encoder(self.tokenizer, plan.widths)
        self.unet = model.unet(plan.widths)
        self.noise = model.training_scheduler(plan.prediction)
        self._log = (work / "loss.csv").open("a", newline="")
        self._writer = csv.writer(self._log)

    # -- bookkeeping ------------------------------------------------------------------

    def _log_loss(self, stage: str, step: int, loss: float, lr: float) -> None:
        self._writer.writerow([stage, step, f"{loss:.5f}", f"{lr:.6f}", round(time.time())])
        self._log.flush()

    def _save(self, name: str, state: dict[str, Any]) -> None:
        partial = self.work / f"{name}.pt.partial"
        torch.save(state, partial)
        partial.replace(self.work / f"{name}.pt")  # a kill mid-save keeps the last one

    def _load(self, name: str) -> dict[str, Any] | None:
        path = self.work / f"{name}.pt"
        if not path.exists():
            return None
        state: dict[str, Any] = torch.load(path, weights_only=False)
        return state

    # -- stage 1: the autoencoder -------------------------------------------------------

    def train_vae(self) -> None:
        plan = self.plan
        optimizer = torch.optim.AdamW(self.vae.parameters(), lr=plan.vae_lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _warmup_cosine(plan.vae_warmup, plan.vae_steps)
        )
        start = 0
        if (state := self._load("vae")) is not None:
            self.vae.load_state_dict(state["vae"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            start = state["step"]
        if start >= plan.vae_steps:
            return
        self.vae.train()
        batches = _scene_batches(plan.seed * 1000 + start, plan.vae_batch)
        bar = tqdm(range(start, plan.vae_steps), desc="vae", initial=start, total=plan.vae_steps)
        for step in bar:
            images, _, batch = next(batches)
            masks = _object_masks(images, batch)
            weights = 1 + plan.object_weight * masks + plan.edge_weight * _edges(masks)
            posterior = self.vae.encode(images).latent_dist
            reconstruction = self.vae.decode(posterior.sample()).sample
            # L1 keeps flat colours and sharp edges; the tiny KL keeps latents well scaled.
            error = ((reconstruction - images).abs() * weights).sum() / (weights.sum() * 3)
            loss = error + plan.kl_weight * posterior.kl().mean()
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            self._log_loss("vae", step + 1, loss.item(), float(schedule.get_last_lr()[0]))
            if (step + 1) % plan.checkpoint_every == 0 or step + 1 == plan.vae_steps:
                self._save(
                    "vae",
                    {
                        "vae": self.vae.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "step": step + 1,
                    },
                )

    # -- stage 2: latents of a fixed set of scenes --------------------------------------

    def encode_scenes(self) -> dict[str, torch.Tensor]:
        if (cached := self._load("latents")) is not None:
            standardise_latents(self.vae, cached["mean"], cached["std"])
            return cached
        self.vae.eval()
        latents, ids, masks = [], [], []
        # Only an object-weighted loss reads the masks, and each costs a render of its
        # scene's bare background (about 0.6 of a minute for 60,000 scenes).
        weighted = self.plan.denoiser_object_weight != 1
        counts = dict(enumerate(self.plan.denoiser_counts, start=1))
        batches = _scene_batches(self.plan.seed * 1000 + 999_999, 250, counts)
        with torch.no_grad():
            for _ in tqdm(range(math.ceil(self.plan.scenes / 250)), desc="encode"):
                images, captions, batch = next(batches)
                encoded = self.vae.encode(images).latent_dist.mode()
                latents.append(encoded.half())
                ids.append(self._ids(captions))
                if weighted:
                    factor = images.shape[-1] // encoded.shape[-1]
                    masks.append(_latent_masks(_object_masks(images, batch), factor))
        raw = torch.cat(latents)[: self.plan.scenes].float()
        mean, std = raw.mean(dim=(0, 2, 3)), raw.std(dim=(0, 2, 3))
        standardise_latents(self.vae, mean, std)
        shape = (1, -1, 1, 1)
        standard = ((raw - mean.view(shape)) / std.view(shape)).half()
        cached = {"latents": standard, "ids": torch.cat(ids)[: self.plan.scenes]}
        if weighted:
            cached["masks"] = torch.cat(masks)[: self.plan.scenes]
        self._save("latents", {**cached, "mean": mean, "std": std})
        return cached

    def _ids(self, captions: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            captions,
            padding="max_length",
            max_length=model.MAX_TOKENS,
            truncation=True,
            return_tensors="pt",
        )
        ids: torch.Tensor = tokens.input_ids
        return ids

    # -- stage 3: the denoiser and the text encoder ------------------------------------

    def train_unet(self, data: dict[str, torch.Tensor]) -> tuple[Any, Any]:
        plan = self.plan
        parameters: list[torch.Tensor] = [*self.unet.parameters(), *self.text.parameters()]
        optimizer = torch.optim.AdamW(parameters, lr=plan.unet_lr, weight_decay=0.01)

        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _warmup_cosine(plan.warmup, plan.unet_steps)
        )
        ema_unet, ema_text = copy.deepcopy(self.unet), copy.deepcopy(self.text)
        averaged: list[torch.Tensor] = [*ema_unet.parameters(), *ema_text.parameters()]
        start = 0
        if (state := self._load("unet")) is not None:
            self.unet.load_state_dict(state["unet"])
            self.text.load_state_dict(state["text"])
            ema_unet.load_state_dict(state["ema_unet"])
            ema_text.load_state_dict(state["ema_text"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            start = state["step"]
        empty = self._ids([""])
        weights = min_snr_weights(self.noise, plan.snr_gamma)
        latents, ids, masks = data["latents"], data["ids"], data.get("masks")
        if plan.denoiser_object_weight != 1 and masks is None:
            raise ValueError(
                f"{self.work / 'latents.pt'} was encoded without object masks, which an "
                "object-weighted loss needs: delete it to encode the latents again"
            )
        scaling = float(self.vae.config["scaling_factor"])
        self.unet.train()
        self.text.train()
        bar = tqdm(range(start, plan.unet_steps), desc="unet", initial=start, total=plan.unet_steps)
        for step in bar:
            # Seeded by step, so a resumed run draws exactly the batches it would have.
            generator = torch.Generator().manual_seed(plan.seed * 1_000_003 + step)
            rows = torch.randint(0, len(latents), (plan.unet_batch,), generator=generator)
            clean = latents[rows].float() * scaling
            captions = ids[rows].clone()
            dropped = torch.rand(plan.unet_batch, generator=generator) < plan.caption_dropout
            captions[dropped] = empty
            noise = torch.randn(clean.shape, generator=generator)
            timesteps = torch.randint(
                0,
                int(self.noise.config["num_train_timesteps"]),
                (plan.unet_batch,),
                generator=generator,
            )
            noisy = self.noise.add_noise(clean, noise, timesteps)  # type: ignore[arg-type]
            predicted = self.unet(noisy, timesteps, self.text(captions)[0]).sample
            target = (
                self.noise.get_velocity(clean, noise, timesteps)  # type: ignore[arg-type]
                if self.noise.config["prediction_type"] == "v_prediction"
                else noise
            )
            if masks is None or plan.denoiser_object_weight == 1:
                # the plain mean, computed as the shipped weights' run computed it
                per_example = (predicted - target).pow(2).mean(dim=(1, 2, 3))
            else:
                # a weighted mean per example, so the loss keeps its scale and only its
                # emphasis moves from the background to the objects
                where = 1 + (plan.denoiser_object_weight - 1) * masks[rows].float()
                error = (predicted - target).pow(2).mean(dim=1)
                per_example = (error * where).sum(dim=(1, 2)) / where.sum(dim=(1, 2))
            loss = (per_example * weights[timesteps]).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            # Warm the average up: at a fixed 0.999 a short run's EMA would still be a
            # third the random initial weights after 1,000 steps (seen in a trial run).
            decay = min(plan.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                # one fused call for the ~300 tensors instead of a Python loop over them
                torch._foreach_lerp_(averaged, parameters, 1 - decay)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            self._log_loss("unet", step + 1, loss.item(), float(schedule.get_last_lr()[0]))
            if (step + 1) % plan.checkpoint_every == 0 or step + 1 == plan.unet_steps:
                self._save(
                    "unet",
                    {
                        "unet": self.unet.state_dict(),
                        "text": self.text.state_dict(),
                        "ema_unet": ema_unet.state_dict(),
                        "ema_text": ema_text.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": schedule.state_dict(),
                        "step": step + 1,
                    },
                )
        return ema_unet, ema_text

    def export(self, out: Path, unet: Any, text: Any) -> Path:
        pipe = StableDiffusionPipeline(
            vae=self.vae.eval(),
            text_encoder=text.eval(),
            tokenizer=self.tokenizer,
            unet=unet.eval(),
            scheduler=model.sampling_scheduler(self.plan.prediction),  # type: ignore[arg-type]
            safety_checker=None,  # type: ignore[arg-type]
            feature_extractor=None,  # type: ignore[arg-type]
            requires_safety_checker=False,
        )
        out.mkdir(parents=True, exist_ok=True)
        pipe.save_pretrained(out)
        (out / "training.txt").write_text(
            "trained by `python -m imagegate.training.shapes` with\n"
            + "\n".join(f"{key} = {value}" for key, value in asdict(self.plan).items())
            + "\n"
        )
        return out

    def run(self, out: Path) -> Path:
        try:
            self.train_vae()
            data = self.encode_scenes()
            unet, text = self.train_unet(data)
            return self.export(out, unet, text)
        finally:
            self._log.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imagegate.training.shapes")
    parser.add_argument("--out", type=Path, required=True, help="pipeline directory to write")
    parser.add_argument("--work", type=Path, default=Path("shapes-work"), help="checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-steps", type=int, default=Plan.vae_steps)
    parser.add_argument("--unet-steps", type=int, default=Plan.unet_steps)
    parser.add_argument("--scenes", type=int, default=Plan.scenes)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument(
        "--prediction",
        choices=["epsilon", "v_prediction"],
        default=Plan.prediction,
        help="what the denoiser learns to predict",
    )
    parser.add_argument(
        "--denoiser-object-weight",
        type=float,
        default=Plan.denoiser_object_weight,
        help="the denoiser's loss weight on latent pixels an object touches (background: 1)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    plan = Plan(
        seed=args.seed,
        vae_steps=args.vae_steps,
        unet_steps=args.unet_steps,
        scenes=args.scenes,
        prediction=args.prediction,
        denoiser_object_weight=args.denoiser_object_weight,
    )
    started = time.monotonic()
    out = Trainer(plan, args.work).run(args.out)
    print(f"saved {out} after {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
