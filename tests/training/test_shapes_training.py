"""The shapes training script end to end at toy scale: every stage runs, a killed run
resumes where its checkpoint left it, and what it saves is a pipeline the diffusers backend
serves with no special case."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
from PIL import Image

from imagegate.backends.base import GenerationInput
from imagegate.backends.diffusers import DiffusersBackend
from imagegate.training import scenes, shapes_model
from imagegate.training.evaluate import evaluate
from imagegate.training.shapes import (
    Plan,
    Trainer,
    _edges,
    _latent_masks,
    _object_masks,
    _scene_batches,
    min_snr_weights,
    standardise_latents,
)
from tests.backends.conftest import diffusers_spec

TOY = Plan(
    vae_steps=2,
    vae_batch=4,
    scenes=16,
    unet_steps=3,
    unet_batch=4,
    warmup=1,
    checkpoint_every=1,
    widths=shapes_model.Widths(vae=(8, 16, 16), unet=(16, 32, 32), text_layers=1),
)


def test_a_toy_run_trains_every_stage_and_saves_a_servable_pipeline(tmp_path: Path) -> None:
    out = Trainer(TOY, tmp_path / "work").run(tmp_path / "model")
    assert (out / "model_index.json").exists() and (out / "training.txt").exists()
    with (tmp_path / "work" / "loss.csv").open() as log:
        stages = [row[0] for row in csv.reader(log)]
    assert stages == ["vae"] * 2 + ["unet"] * 3

    backend = DiffusersBackend(diffusers_spec(out, "me/shapes", steps=2, render_scale=0.05))
    request = GenerationInput(
        task="text-to-image", prompt="a red circle", n=2, seed=1, width=1024, height=1024
    )
    [images] = backend.generate([request], lambda step, total: None)
    assert [image.size for image in images] == [(1024, 1024), (1024, 1024)]
    # the latents' standardisation lives in the VAE's own weights, not in a scaling factor
    assert backend._text.vae.config.scaling_factor == 1.0
    backend.close()
    cached = torch.load(tmp_path / "work" / "latents.pt", weights_only=False)
    assert "masks" not in cached  # only an object-weighted loss needs them
    latents = cached["latents"].float()
    assert torch.allclose(latents.mean(dim=(0, 2, 3)), torch.zeros(4), atol=1e-2)
    assert torch.allclose(latents.std(dim=(0, 2, 3)), torch.ones(4), atol=1e-2)

    report = evaluate(out, single=5, double=3, steps=2, batch=4, grid_path=tmp_path / "grid.png")
    assert (report.single.images, report.double.images) == (5, 3)
    assert (report.single_reconstructed.images, report.double_reconstructed.images) == (5, 3)
    # each single-object image is counted under the one shape its caption names
    assert sum(s.images for s in report.single_by_shape.values()) == 5
    # ... and under the one held-out phrasing it was worded in
    assert set(report.single_by_template) == {t.name for t in scenes.HELD_OUT_TEMPLATES}
    assert sum(s.images for s in report.single_by_template.values()) == 5
    # the ground truth of the very captions scored passes the judge: the scores are sound
    assert report.single_judge_on_truth.all_right == report.double_judge_on_truth.all_right == 1
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size == (8 + 8 * (128 + 8), 8 + 1 * (128 + 52 + 8))  # 8 images, one row


def test_a_v_prediction_run_exports_a_v_prediction_pipeline(tmp_path: Path) -> None:
    plan = replace(TOY, prediction="v_prediction", vae_steps=1, unet_steps=1)
    out = Trainer(plan, tmp_path / "work").run(tmp_path / "model")
    config = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    assert config["prediction_type"] == "v_prediction"
    backend = DiffusersBackend(diffusers_spec(out, "me/shapes", steps=2, render_scale=0.05))
    request = GenerationInput(task="text-to-image", prompt="a red circle", n=1, seed=1,
                              width=1024, height=1024)  # fmt: skip
    [images] = backend.generate([request], lambda step, total: None)
    assert images[0].size == (1024, 1024)
    backend.close()


class Killed(Exception):
    pass


class KilledAtSecondUnetStep(Trainer):
    """Dies after computing UNet step 2, before that step's checkpoint is written."""

    def _log_loss(self, stage: str, step: int, loss: float, lr: float) -> None:
        super()._log_loss(stage, step, loss, lr)
        if (stage, step) == ("unet", 2):
            raise Killed()


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_same_weights(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    with pytest.raises(Killed):
        KilledAtSecondUnetStep(TOY, work).run(tmp_path / "never")
    resumed = Trainer(TOY, work).run(tmp_path / "resumed")
    with (work / "loss.csv").open() as log:
        steps = [(row[0], int(row[1])) for row in csv.reader(log)]
    # step 2 is done again (its checkpoint was never written); nothing else starts over
    assert steps == [("vae", 1), ("vae", 2), ("unet", 1), ("unet", 2), ("unet", 2), ("unet", 3)]
    straight = Trainer(TOY, tmp_path / "straight").run(tmp_path / "straight-out")
    for weights in sorted(resumed.glob("*/*.safetensors")):
        twin = straight / weights.relative_to(resumed)
        assert weights.read_bytes() == twin.read_bytes(), (
            f"{weights.parent.name}: a resumed run must give an uninterrupted run's weights"
        )


def test_min_snr_weights_for_epsilon_leave_noisy_timesteps_alone_and_cap_clean_ones() -> None:
    noise = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="epsilon")
    weights = min_snr_weights(noise, gamma=5.0)
    alphas = noise.alphas_cumprod.double()
    snr = alphas / (1 - alphas)
    assert weights.shape == (1000,)
    assert torch.all(weights[snr <= 5] == 1)  # as noisy as gamma or more: plain MSE
    clean = snr > 5
    assert torch.allclose(weights[clean].double(), 5 / snr[clean], rtol=1e-6)
    assert weights[0] < 0.01  # the cleanest timestep counts for little


def test_v_prediction_weights_cap_clean_timesteps_and_keep_noisy_ones() -> None:
    noise = shapes_model.training_scheduler("v_prediction")
    weights = min_snr_weights(noise, gamma=5.0).double()
    alphas = noise.alphas_cumprod.double()
    snr = alphas / (1 - alphas)
    # a v error is a clean-image error times sqrt(SNR + 1): as clean-image loss weights
    # these are clamp(SNR, 1, 5)
    assert torch.allclose(weights * (snr + 1), snr.clamp(min=1, max=5), rtol=1e-6)
    assert weights[-1] > 0.99  # pure noise: full weight, the overall colour is chosen there
    assert weights[0] < 0.01  # the cleanest timestep counts for little


def test_object_masks_mark_the_objects_and_no_background_gradient_included() -> None:
    images, _, batch = next(_scene_batches(3, 16))
    masks = _object_masks(images, batch)
    assert masks.shape == (16, 1, 64, 64)
    for mask, scene in zip(masks, batch, strict=True):
        # the border stays background (objects keep off it), gradients included
        assert mask[0, :2].sum() == mask[0, -2:].sum() == 0
        assert mask[0, :, :2].sum() == mask[0, :, -2:].sum() == 0
        drawn = sum(o.diameter**2 for o in scene.objects) * 64 * 64
        assert 0.3 * drawn < mask.sum() < 1.2 * drawn  # about the objects' area


def test_standardising_the_latents_inside_the_vae_changes_no_decoded_pixel() -> None:
    torch.manual_seed(0)
    vae = shapes_model.vae(shapes_model.Widths(vae=(8, 16, 16)))
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        raw = vae.encode(images).latent_dist
        before = vae.decode(raw.mode()).sample
        mean, std = raw.mode().mean(dim=(0, 2, 3)), raw.mode().std(dim=(0, 2, 3))
        standardise_latents(vae, mean, std)
        standard = vae.encode(images).latent_dist
        after = vae.decode(standard.mode()).sample
    shape = (1, -1, 1, 1)
    assert torch.allclose(
        standard.mode(), (raw.mode() - mean.view(shape)) / std.view(shape), atol=1e-5
    )
    assert torch.allclose(standard.std, raw.std / std.view(shape), rtol=1e-4)  # sampling too
    assert torch.allclose(after, before, atol=1e-4)
    assert vae.config.scaling_factor == 1.0


def test_edges_are_the_band_where_an_object_meets_its_background() -> None:
    masks = torch.zeros(1, 1, 10, 10)
    masks[0, 0, 3:7, 3:7] = 1  # a 4x4 square
    edges = _edges(masks)[0, 0]
    assert edges[5, 5] == 0 and edges[0, 0] == 0  # deep inside, far outside
    assert edges[3, 3] == edges[2, 2] == edges[3, 5] == 1  # its rim, inside and out
    assert int(edges.sum()) == 6 * 6 - 2 * 2  # grown by one pixel, less shrunk by one


def test_latent_masks_mark_each_latent_pixel_an_object_touches() -> None:
    masks = torch.zeros(1, 1, 16, 16)
    masks[0, 0, 3:6, 9] = 1  # a thin upright bar across two 4x4 patches
    latent = _latent_masks(masks, 4)
    assert latent.shape == (1, 4, 4) and latent.dtype == torch.bool
    assert latent[0].nonzero().tolist() == [[0, 2], [1, 2]]


def test_an_object_weighted_run_stores_latent_masks_and_trains(tmp_path: Path) -> None:
    plan = replace(TOY, denoiser_object_weight=4.0)
    Trainer(plan, tmp_path / "work").run(tmp_path / "model")
    cached = torch.load(tmp_path / "work" / "latents.pt", weights_only=False)
    masks, latents = cached["masks"], cached["latents"]
    assert masks.shape == (latents.shape[0], *latents.shape[2:]) and masks.dtype == torch.bool
    # every scene has an object, and no object fills its whole scene
    assert all(0 < int(m.sum()) < m.numel() for m in masks)
    with (tmp_path / "work" / "loss.csv").open() as log:
        losses = [float(row[2]) for row in csv.reader(log) if row[0] == "unet"]
    assert len(losses) == 3 and all(0 < loss < 100 for loss in losses)
    assert "denoiser_object_weight = 4.0" in (tmp_path / "model" / "training.txt").read_text()


def test_an_object_weighted_run_on_latents_without_masks_says_what_to_do(tmp_path: Path) -> None:
    Trainer(TOY, tmp_path / "work").run(tmp_path / "model")
    weighted = Trainer(replace(TOY, denoiser_object_weight=4.0), tmp_path / "work")
    with pytest.raises(ValueError, match=r"without object masks.*delete it"):
        weighted.run(tmp_path / "weighted")
