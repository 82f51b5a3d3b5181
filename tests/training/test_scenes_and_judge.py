from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable

import pytest
from PIL import Image, ImageDraw, ImageFilter

from imagegate.training import judge as judging
from imagegate.training import scenes
from imagegate.training.scenes import (
    HELD_OUT_TEMPLATES,
    TRAIN_TEMPLATES,
    Background,
    Expectation,
    ExpectedObject,
    Scene,
    SceneObject,
)

TEMPLATE_SETS = pytest.mark.parametrize(
    "templates", [TRAIN_TEMPLATES, HELD_OUT_TEMPLATES], ids=["train", "held_out"]
)


def _captions(templates: tuple[scenes.Template, ...], n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [scenes.caption(scenes.sample_scene(rng), rng, templates) for _ in range(n)]


# -- the generator -------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_examples() -> None:
    first = list(itertools.islice(scenes.examples(7), 20))
    again = list(itertools.islice(scenes.examples(7), 20))
    other = list(itertools.islice(scenes.examples(8), 20))
    assert [(e.caption, e.scene, e.image.tobytes()) for e in first] == [
        (e.caption, e.scene, e.image.tobytes()) for e in again
    ]
    assert [e.caption for e in first] != [e.caption for e in other]


def test_examples_are_rgb_images_of_the_asked_size() -> None:
    image, text, scene = next(scenes.examples(0, size=96))
    assert (image.mode, image.size) == ("RGB", (96, 96))
    assert text and 1 <= len(scene.objects) <= 3
    assert scenes.render(scene).size == (64, 64)


def test_palette_colours_are_well_separated() -> None:
    for a, b in itertools.combinations(scenes.COLOURS.values(), 2):
        assert math.dist(a, b) >= scenes.MIN_COLOUR_DISTANCE


def test_scenes_keep_objects_apart_inside_the_image_and_off_the_background() -> None:
    rng = random.Random(1)
    counts: Counter[int] = Counter()
    for _ in range(3000):
        scene = scenes.sample_scene(rng)
        counts[len(scene.objects)] += 1
        assert len({o.position for o in scene.objects}) == len(scene.objects)
        for o in scene.objects:
            rgb = scenes.COLOURS[o.colour]
            assert scenes.distance_to_background(rgb, scene.background) >= scenes.MIN_CONTRAST
            (x, y), (w, h) = o.centre, o.extent
            assert w / 2 <= x <= 1 - w / 2 and h / 2 <= y <= 1 - h / 2
        for a, b in itertools.combinations(scene.objects, 2):
            assert scenes._apart(a, b)
    assert set(counts) == {1, 2, 3}


def test_unjittered_objects_are_always_apart() -> None:
    # sample_scene falls back to this layout when jittering keeps failing.
    for first, second in itertools.combinations(scenes.POSITIONS, 2):
        for shapes in itertools.product(scenes.SHAPES, repeat=2):
            for sizes in itertools.product(("small", "medium"), repeat=2):
                a = SceneObject(shapes[0], "red", sizes[0], first)
                b = SceneObject(shapes[1], "red", sizes[1], second)
                assert scenes._apart(a, b)


@TEMPLATE_SETS
def test_captions_name_exactly_the_scene_objects(templates: tuple[scenes.Template, ...]) -> None:
    rng = random.Random(2)
    for _ in range(300):
        scene = scenes.sample_scene(rng)
        text, said, template = scenes.caption_with_expectation(
            scene, rng, templates, p_size=1.0, p_position=1.0, p_background=1.0
        )
        assert template in templates
        named = Counter({(o.colour, o.shape): o.count for o in said.objects})
        assert named == Counter((o.colour, o.shape) for o in scene.objects), text
        for mentioned in said.objects:
            matching = [
                o
                for o in scene.objects
                if (o.colour, o.shape) == (mentioned.colour, mentioned.shape)
            ]
            if mentioned.position is not None:
                assert [o.position for o in matching] == [mentioned.position]
            if mentioned.size is not None:
                assert {o.size for o in matching} == {mentioned.size}
        assert said.background in (None, scene.background)


def test_held_out_phrasings_never_occur_in_training() -> None:
    training = set(_captions(TRAIN_TEMPLATES, 4000))
    held_out = set(_captions(HELD_OUT_TEMPLATES, 4000))
    assert not training & held_out
    # Held-out captions test new phrasings, not unknown words.
    assert set(scenes.all_words()) == set(scenes.training_words())


@TEMPLATE_SETS
def test_every_caption_word_is_in_the_vocabulary_and_fits(
    templates: tuple[scenes.Template, ...],
) -> None:
    vocabulary = set(scenes.all_words())
    rng = random.Random(3)
    for _ in range(1000):
        scene = scenes.sample_scene(rng, n_objects=3)
        text = scenes.caption(scene, rng, templates, p_size=1, p_position=1, p_background=1)
        words = scenes.tokenize(text)
        assert words == text.split()
        assert set(words) <= vocabulary
        assert len(words) <= scenes.MAX_CAPTION_WORDS
        full = scenes.caption(
            scene, rng, templates, p_size=1, p_position=1, p_background=1, max_words=1000
        )
        assert len(full.split()) <= scenes.LONGEST_CAPTION_WORDS


@TEMPLATE_SETS
@pytest.mark.parametrize("detail", [0.0, 0.5, 1.0])
def test_parse_caption_reads_back_what_the_caption_says(
    templates: tuple[scenes.Template, ...], detail: float
) -> None:
    rng = random.Random(4)
    for _ in range(300):
        scene = scenes.sample_scene(rng)
        text, said, _ = scenes.caption_with_expectation(
            scene, rng, templates, p_size=detail, p_position=detail, p_background=detail
        )
        assert scenes.parse_caption(text) == said, text


def test_parse_caption_reads_prompts_typed_by_people() -> None:
    assert scenes.parse_caption("A big gray circle in the center.") == Expectation(
        (ExpectedObject(1, "grey", "circle", "large", "centre"),)
    )
    assert scenes.parse_caption("two blue squares on a yellow background") == Expectation(
        (ExpectedObject(2, "blue", "square"),), Background("yellow")
    )
    assert scenes.parse_caption("stars") == Expectation((ExpectedObject(2, None, "star"),))
    assert scenes.parse_caption("a small triangle colored pink on the left") == Expectation(
        (ExpectedObject(1, "pink", "triangle", "small", "left"),)
    )


# -- the judge -----------------------------------------------------------------------------


def _one(shape: str, colour: str, position: str = "centre", size: str = "medium") -> Scene:
    return Scene((SceneObject(shape, colour, size, position),), Background("white"))


def _share_right(verdicts: list[judging.Verdict], attribute: str) -> float:
    flags = [getattr(o, attribute) for v in verdicts for o in v.objects]
    return sum(bool(f) for f in flags) / len(flags)


@pytest.mark.parametrize(
    "degrade",
    [
        lambda image: image,
        lambda image: image.filter(ImageFilter.GaussianBlur(0.8)),
    ],
    ids=["clean", "blurred"],
)
def test_the_judge_accepts_ground_truth(degrade: Callable[[Image.Image], Image.Image]) -> None:
    rng = random.Random(5)
    verdicts = []
    for _ in range(150):
        scene = scenes.sample_scene(rng)
        image = degrade(scenes.render(scene))
        verdicts.append(judging.judge(image, scenes.expectation_of(scene)))
    for attribute in ("colour", "shape", "position", "size", "count"):
        assert _share_right(verdicts, attribute) >= 0.95, attribute
    assert sum(bool(v.background) for v in verdicts) / len(verdicts) >= 0.95


def test_the_judge_reads_held_out_captions_of_ground_truth() -> None:
    rng = random.Random(6)
    verdicts = []
    for _ in range(60):
        scene = scenes.sample_scene(rng, n_objects=1)
        text = scenes.caption(scene, rng, HELD_OUT_TEMPLATES)
        verdicts.append(judging.judge(scenes.render(scene), text))
    assert sum(v.all_right for v in verdicts) / len(verdicts) >= 0.95


def test_the_judge_rejects_the_wrong_colour_and_shape() -> None:
    verdict = judging.judge(scenes.render(_one("circle", "red")), "a blue square")
    (only,) = verdict.objects
    assert (only.colour, only.shape, only.count) == (False, False, False)
    assert not verdict.all_right


def test_the_judge_rejects_the_wrong_position_size_and_background() -> None:
    image = scenes.render(_one("star", "green", position="left", size="small"))
    verdict = judging.judge(image, "a large green star on the right on a black background")
    (only,) = verdict.objects
    assert (only.colour, only.shape, only.count) == (True, True, True)
    assert (only.position, only.size, verdict.background) == (False, False, False)


def test_the_judge_counts() -> None:
    scene = Scene(
        (
            SceneObject("square", "blue", "small", "left"),
            SceneObject("square", "blue", "small", "right"),
        ),
        Background("yellow", gradient_to="cyan"),
    )
    image = scenes.render(scene)
    assert judging.judge(image, "two blue squares on a yellow to cyan gradient").all_right
    too_few = judging.judge(image, "a blue square")
    assert too_few.objects[0].shape and not too_few.objects[0].count
    too_many = judging.judge(image, "three blue squares")
    assert not too_many.objects[0].count


@pytest.mark.parametrize("shape", scenes.SHAPES)
def test_the_judge_tells_every_shape_from_the_others(shape: str) -> None:
    detection = judging.detect(scenes.render(_one(shape, "purple", size="small")))
    assert [o.shape for o in detection.objects] == [shape]


def test_a_frame_at_the_image_edge_is_neither_background_nor_object() -> None:
    # What a decoder's zero padding leaves: a two-pixel frame of another colour. Fitted as
    # background it tilted the plane and turned patches of background into objects.
    scene = Scene(
        (SceneObject("square", "red", "medium", "centre"),),
        Background("blue", gradient_to="cyan"),
    )
    image = scenes.render(scene)
    ImageDraw.Draw(image).rectangle((0, 0, 63, 63), outline=(250, 240, 40), width=2)
    verdict = judging.judge(image, scenes.expectation_of(scene))
    assert [(o.colour, o.shape) for o in verdict.detected] == [("red", "square")]
    assert verdict.all_right


def test_an_empty_image_has_nothing_right() -> None:
    verdict = judging.judge(Image.new("RGB", (64, 64), "white"), "a red circle")
    assert verdict.detected == () and not verdict.objects[0].colour


def test_object_counts_follow_the_weights_asked_for() -> None:
    def shares(stream: list[Scene]) -> dict[int, float]:
        counted = Counter(len(scene.objects) for scene in stream)
        return {n: counted[n] / len(stream) for n in (1, 2, 3)}

    default = shares([scenes.sample_scene(random.Random(i)) for i in range(3000)])
    for n, weight in scenes.OBJECT_COUNT_WEIGHTS.items():
        assert abs(default[n] - weight) < 0.04, default
    singles = {1: 0.6, 2: 0.4 * 7 / 12, 3: 0.4 * 5 / 12}
    stream = scenes.examples(5, size=32, counts=singles)
    asked = shares([next(stream).scene for _ in range(3000)])
    for n, weight in singles.items():
        assert abs(asked[n] - weight) < 0.04, asked
    only_pairs = scenes.examples(6, size=32, counts={2: 1.0})
    assert {len(next(only_pairs).scene.objects) for _ in range(50)} == {2}
