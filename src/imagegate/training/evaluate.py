"""Scores a shapes model with the judge: ``python -m imagegate.training.evaluate --model DIR``.

Captions come from the held-out phrasings by default, so the scores say whether the model
follows prompts worded in ways it never saw in training. Images are made by the diffusers
backend, the code path the server runs, at the model's native 64x64. The same captions'
ground-truth renders are judged too, as they are and through the model's autoencoder, so
every report carries the judge's own accuracy and the decoder's ceiling beside the model's.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers.image_processor import VaeImageProcessor
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
from PIL import Image, ImageDraw

from imagegate.backends.base import GenerationInput
from imagegate.backends.diffusers import DiffusersBackend
from imagegate.domain.registry import RouteSpec
from imagegate.training import scenes
from imagegate.training.judge import Verdict, judge
from imagegate.training.scenes import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES, Expectation, Scene
from imagegate.training.shapes import pixels

NATIVE = 64


@dataclass(frozen=True)
class Case:
    caption: str
    expected: Expectation
    scene: Scene  # one scene the caption describes: the judge's ground truth
    seed: int  # the generation seed
    template: str  # the phrasing's name


def cases(
    count: int, n_objects: int, seed: int, templates: Sequence[scenes.Template]
) -> list[Case]:
    rng = random.Random(seed)
    made = []
    for _ in range(count):
        scene = scenes.sample_scene(rng, n_objects)
        text, expected, template = scenes.caption_with_expectation(scene, rng, templates)
        made.append(Case(text, expected, scene, rng.randrange(2**32), template.name))
    return made


@dataclass(frozen=True)
class Scores:
    """Shares of expected objects (each counted once per image) the judge found right;
    ``position`` only over objects whose caption names a place. ``all_right``: images in
    which every stated detail (background and counts included) is right."""

    images: int
    colour: float
    shape: float
    position: float | None
    all_right: float

    def line(self) -> str:
        place = "n/a" if self.position is None else f"{self.position:.1%}"
        return (
            f"colour {self.colour:.1%}, shape {self.shape:.1%}, position {place}, "
            f"all right {self.all_right:.1%} ({self.images} images)"
        )


def score(verdicts: Sequence[Verdict]) -> Scores:
    if not verdicts:
        return Scores(images=0, colour=0.0, shape=0.0, position=None, all_right=0.0)
    objects = [o for v in verdicts for o in v.objects]
    placed = [o.position for o in objects if o.position is not None]
    return Scores(
        images=len(verdicts),
        colour=sum(bool(o.colour) for o in objects) / len(objects),
        shape=sum(o.shape for o in objects) / len(objects),
        position=sum(placed) / len(placed) if placed else None,
        all_right=sum(v.all_right for v in verdicts) / len(verdicts),
    )


def scores_by(
    verdicts: Sequence[Verdict],
    items: Sequence[Case],
    key: Callable[[Case], str],
    names: Sequence[str],
) -> dict[str, Scores]:
    """Scores of the verdicts whose case ``key`` names each of ``names``, in that order."""
    return {
        name: score([v for v, c in zip(verdicts, items, strict=True) if key(c) == name])
        for name in names
    }


def backend_for(model: Path, steps: int, guidance: float, batch: int) -> DiffusersBackend:
    spec = RouteSpec(
        route="shapes/evaluate",
        backend="diffusers",
        tasks=("text-to-image",),
        max_batch=batch,
        options={"source": str(model), "steps": steps, "guidance_scale": guidance},
    )
    return DiffusersBackend(spec)


def generate(backend: DiffusersBackend, items: Sequence[Case], batch: int) -> list[Image.Image]:
    images: list[Image.Image] = []
    for start in range(0, len(items), batch):
        requests = [
            GenerationInput("text-to-image", c.caption, 1, NATIVE, NATIVE, c.seed)
            for c in items[start : start + batch]
        ]
        images += [made for [made] in backend.generate(requests, lambda step, total: None)]
    return images


def reconstruct(model: Path, images: Sequence[Image.Image]) -> list[Image.Image]:
    """``images`` encoded and decoded by the model's autoencoder."""
    vae = AutoencoderKL.from_pretrained(model, subfolder="vae").eval()
    made: list[Image.Image] = []
    with torch.no_grad():
        for start in range(0, len(images), 50):
            chunk = pixels(images[start : start + 50])
            decoded = vae.decode(vae.encode(chunk).latent_dist.mode()).sample
            made += VaeImageProcessor().postprocess(decoded, output_type="pil")
    return made


def grid(images: Sequence[Image.Image], labels: Sequence[str], columns: int) -> Image.Image:
    """Images at 2x with their captions underneath, wrapped, in rows of ``columns``."""
    cell, text_height = NATIVE * 2, 52
    rows = -(-len(images) // columns)
    sheet = Image.new(
        "RGB", (columns * (cell + 8) + 8, rows * (cell + text_height + 8) + 8), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        x = 8 + (i % columns) * (cell + 8)
        y = 8 + (i // columns) * (cell + text_height + 8)
        sheet.paste(image.resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        lines, line = [], ""
        for word in label.split():
            if line and len(line) + 1 + len(word) > 21:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        draw.multiline_text((x, y + cell + 2), "\n".join(lines[:4]), fill="black", spacing=1)
    return sheet


@dataclass(frozen=True)
class Report:
    model: str
    templates: str
    steps: int
    guidance: float
    seconds_per_image: float
    single: Scores
    single_judge_on_truth: Scores
    double: Scores
    double_judge_on_truth: Scores
    # The same images judged against another case's caption: what the judge grants an
    # image that does not follow its prompt, the floor the scores above are read against.
    single_shuffled: Scores
    double_shuffled: Scores
    # The ground truth through the model's own autoencoder (encode, decode): the most the
    # denoiser could reach, since every image it makes is drawn by that decoder.
    single_reconstructed: Scores
    double_reconstructed: Scores
    # The model's single-object scores for each shape the captions name, and for each
    # phrasing: where it misses, and whether a miss is drawing or reading.
    single_by_shape: dict[str, Scores]
    single_by_template: dict[str, Scores]


def evaluate(
    model: Path,
    *,
    single: int = 200,
    double: int = 100,
    steps: int = 20,
    guidance: float = 4.0,
    held_out: bool = True,
    seed: int = 2026,
    batch: int = 25,
    grid_path: Path | None = None,
) -> Report:
    templates = HELD_OUT_TEMPLATES if held_out else TRAIN_TEMPLATES
    ones = cases(single, 1, seed, templates)
    twos = cases(double, 2, seed + 1, templates)
    every = [*ones, *twos]
    # each case's neighbour within its own group: a caption the image was not made for
    others = [*ones[1:], *ones[:1], *twos[1:], *twos[:1]]
    backend = backend_for(model, steps, guidance, batch)
    started = time.monotonic()
    try:
        made = generate(backend, every, batch)
    finally:
        backend.close()
    per_image = (time.monotonic() - started) / len(made)
    verdicts = [judge(image, c.expected) for image, c in zip(made, every, strict=True)]
    renders = [scenes.render(c.scene) for c in every]
    truth = [judge(r, c.expected) for r, c in zip(renders, every, strict=True)]
    rebuilt = [
        judge(r, c.expected) for r, c in zip(reconstruct(model, renders), every, strict=True)
    ]
    shuffled = [judge(image, c.expected) for image, c in zip(made, others, strict=True)]
    if grid_path is not None:
        shown = [*range(min(24, single)), *range(single, single + min(16, double))]
        grid([made[i] for i in shown], [every[i].caption for i in shown], 8).save(grid_path)
    return Report(
        model=str(model),
        templates="held-out" if held_out else "training",
        steps=steps,
        guidance=guidance,
        seconds_per_image=per_image,
        single=score(verdicts[:single]),
        single_judge_on_truth=score(truth[:single]),
        double=score(verdicts[single:]),
        double_judge_on_truth=score(truth[single:]),
        single_shuffled=score(shuffled[:single]),
        double_shuffled=score(shuffled[single:]),
        single_reconstructed=score(rebuilt[:single]),
        double_reconstructed=score(rebuilt[single:]),
        single_by_shape=scores_by(
            verdicts[:single], ones, lambda c: c.scene.objects[0].shape, scenes.SHAPES
        ),
        single_by_template=scores_by(
            verdicts[:single], ones, lambda c: c.template, [t.name for t in templates]
        ),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m imagegate.training.evaluate")
    parser.add_argument("--model", type=Path, required=True, help="pipeline directory")
    parser.add_argument("--single", type=int, default=200, help="single-object captions")
    parser.add_argument("--double", type=int, default=100, help="two-object captions")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--training-phrasings",
        action="store_true",
        help="caption with the training templates (for tuning) instead of the held-out ones",
    )
    parser.add_argument("--grid", type=Path, help="write a PNG grid of samples here")
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    args = parser.parse_args(argv)
    report = evaluate(
        args.model,
        single=args.single,
        double=args.double,
        steps=args.steps,
        guidance=args.guidance,
        held_out=not args.training_phrasings,
        seed=args.seed,
        grid_path=args.grid,
    )
    print(
        f"{report.templates} phrasings, {report.steps} steps, guidance {report.guidance}, "
        f"{report.seconds_per_image * 1000:.0f} ms per image in batches"
    )
    print(f"  one object:  {report.single.line()}")
    print(f"    judge on ground truth: {report.single_judge_on_truth.line()}")
    print(f"    against another caption: {report.single_shuffled.line()}")
    print(f"    ground truth through the autoencoder: {report.single_reconstructed.line()}")
    for shape, scores in report.single_by_shape.items():
        print(f"    {shape}s: {scores.line()}")
    for name, scores in report.single_by_template.items():
        print(f"    phrased {name}: {scores.line()}")
    print(f"  two objects: {report.double.line()}")
    print(f"    judge on ground truth: {report.double_judge_on_truth.line()}")
    print(f"    against another caption: {report.double_shuffled.line()}")
    print(f"    ground truth through the autoencoder: {report.double_reconstructed.line()}")
    if args.json is not None:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")


if __name__ == "__main__":
    main()
