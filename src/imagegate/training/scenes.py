"""Synthetic scenes with exact captions: the shapes model's training data and its judge's
ground truth.

A scene is one to three flat shapes (circle, square, triangle, star, ring) in one of twelve
colours, three sizes and five positions, on a plain or top-to-bottom gradient background.
Captions are drawn from a small grammar in varied phrasings; the phrasings are split into
``TRAIN_TEMPLATES`` and ``HELD_OUT_TEMPLATES`` so that evaluation can use captions whose
phrasing the model never saw. Every held-out caption differs from every training caption
(each held-out template has a feature no training caption has), and uses only words that
training captions use too, so held-out captions test phrasing, not unknown tokens.

Everything is seeded by a ``random.Random``: the same seed gives the same scenes, images
and captions. ``parse_caption`` turns a caption (or any prompt typed in the grammar) back
into what an image must show; ``imagegate.training.judge`` checks it.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from typing import Literal, NamedTuple

from PIL import Image, ImageDraw

# -- vocabulary ----------------------------------------------------------------------------

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring")
PLURALS: dict[str, str] = {shape: shape + "s" for shape in SHAPES}

# Chosen to be at least ~100 apart in RGB (see MIN_COLOUR_DISTANCE) so that a blurry,
# slightly off-colour generated shape still has one unambiguous nearest name.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 25, 35),
    "orange": (250, 130, 0),
    "yellow": (250, 230, 20),
    "green": (30, 150, 50),
    "cyan": (20, 200, 220),
    "blue": (30, 60, 210),
    "purple": (130, 30, 180),
    "pink": (245, 135, 200),
    "brown": (115, 70, 30),
    "black": (15, 15, 15),
    "grey": (128, 128, 128),
    "white": (245, 245, 245),
}
MIN_COLOUR_DISTANCE = 90.0
# An object's colour is at least this far from every colour of its background (gradients
# included), so it never blends into it and the judge can segment it.
MIN_CONTRAST = 90.0

SIZES: tuple[str, ...] = ("small", "medium", "large")
# Nominal diameter as a fraction of the image side.
SIZE_FRACTIONS: dict[str, float] = {"small": 0.19, "medium": 0.27, "large": 0.37}
SIZE_JITTER = 0.06  # relative; keeps sizes apart: 0.19*1.06 < 0.27*0.94

POSITIONS: tuple[str, ...] = ("left", "right", "top", "bottom", "centre")
# Centre of an object at each position, as (x, y) fractions of the image (y points down).
ANCHORS: dict[str, tuple[float, float]] = {
    "left": (0.18, 0.5),
    "right": (0.82, 0.5),
    "top": (0.5, 0.18),
    "bottom": (0.5, 0.82),
    "centre": (0.5, 0.5),
}
POSITION_JITTER = 0.04
EDGE_MARGIN = 0.04  # objects stay off the border, where the judge reads the background
MIN_GAP = 0.03  # between the bounding boxes of two objects in one scene

# Bounding box (width, height) of each shape as a multiple of its nominal diameter.
SHAPE_EXTENTS: dict[str, tuple[float, float]] = {
    "circle": (1.0, 1.0),
    "ring": (1.0, 1.0),
    "square": (0.84, 0.84),
    "triangle": (1.04, 0.9),
    "star": (1.05, 1.0),
}
RING_HOLE = 0.5  # inner diameter / outer diameter
STAR_INNER = 0.47  # inner radius / outer radius: fatter than a pentagram, readable at 12 px

OBJECT_COUNT_WEIGHTS: dict[int, float] = {1: 0.4, 2: 0.35, 3: 0.25}
P_REPEAT = 0.25  # a further object copies the previous one's shape and colour ("two blue squares")
P_GRADIENT = 0.35

NUMBER_WORDS: dict[int, str] = {1: "a", 2: "two", 3: "three"}
# A caption is at most this many words (the default of every caption function), one
# token each: a text encoder reading 24 tokens (start and end included) sees it whole.
# Unshortened, the longest caption is LONGEST_CAPTION_WORDS; three-object captions lose
# details to fit 22 (sizes first, then background, prefix, positions).
MAX_CAPTION_WORDS = 22
LONGEST_CAPTION_WORDS = 35


# -- scenes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Background:
    """Plain ``colour``, or a vertical gradient from ``colour`` (top) to ``gradient_to``."""

    colour: str
    gradient_to: str | None = None

    def __post_init__(self) -> None:
        _check(self.colour, COLOURS, "colour")
        if self.gradient_to is not None:
            _check(self.gradient_to, COLOURS, "colour")
            if self.gradient_to == self.colour:
                raise ValueError("a gradient needs two different colours")

    @property
    def colours(self) -> tuple[str, ...]:
        return (self.colour,) if self.gradient_to is None else (self.colour, self.gradient_to)


@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    position: str
    # Displacement of the centre from the position's anchor, in image fractions.
    offset: tuple[float, float] = (0.0, 0.0)
    # Diameter relative to the size's nominal one (within 1 +- SIZE_JITTER).
    scale: float = 1.0

    def __post_init__(self) -> None:
        _check(self.shape, SHAPES, "shape")
        _check(self.colour, COLOURS, "colour")
        _check(self.size, SIZES, "size")
        _check(self.position, POSITIONS, "position")

    @property
    def diameter(self) -> float:
        """Actual diameter as a fraction of the image side."""
        return SIZE_FRACTIONS[self.size] * self.scale

    @property
    def extent(self) -> tuple[float, float]:
        scale_x, scale_y = SHAPE_EXTENTS[self.shape]
        return self.diameter * scale_x, self.diameter * scale_y

    @property
    def centre(self) -> tuple[float, float]:
        """Centre of the bounding box, kept EDGE_MARGIN inside the image."""
        anchor_x, anchor_y = ANCHORS[self.position]
        width, height = self.extent
        return (
            _clamp(anchor_x + self.offset[0], width / 2 + EDGE_MARGIN),
            _clamp(anchor_y + self.offset[1], height / 2 + EDGE_MARGIN),
        )


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...]
    background: Background

    def __post_init__(self) -> None:
        if not 1 <= len(self.objects) <= 3:
            raise ValueError("a scene holds one to three objects")


def _check(value: str, allowed: Collection[str], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}")


def _clamp(value: float, margin: float) -> float:
    return min(max(value, margin), 1.0 - margin)


def _distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return math.dist(a, b)


def distance_to_background(rgb: tuple[float, ...], background: Background) -> float:
    """Smallest RGB distance from ``rgb`` to any colour the background takes."""
    start = COLOURS[background.colour]
    if background.gradient_to is None:
        return _distance(rgb, start)
    end = COLOURS[background.gradient_to]
    direction = [e - s for s, e in zip(start, end, strict=True)]
    length2 = sum(d * d for d in direction)
    t = sum((c - s) * d for c, s, d in zip(rgb, start, direction, strict=True)) / length2
    t = min(max(t, 0.0), 1.0)
    closest = tuple(s + t * d for s, d in zip(start, direction, strict=True))
    return _distance(rgb, closest)


@cache
def allowed_colours(background: Background) -> tuple[str, ...]:
    """Object colours that stand out from ``background`` (MIN_CONTRAST)."""
    return tuple(
        name
        for name, rgb in COLOURS.items()
        if distance_to_background(rgb, background) >= MIN_CONTRAST
    )


@lru_cache(maxsize=1)
def _gradients() -> tuple[Background, ...]:
    # A gradient through most of the palette would leave few object colours to choose from.
    candidates = (Background(top, bottom) for top in COLOURS for bottom in COLOURS if top != bottom)
    return tuple(b for b in candidates if len(allowed_colours(b)) >= 5)


def sample_scene(
    rng: random.Random,
    n_objects: int | None = None,
    counts: Mapping[int, float] = OBJECT_COUNT_WEIGHTS,
) -> Scene:
    """A random scene; ``n_objects`` fixes the number of objects (1-3), else it is drawn
    with the relative weights ``counts``."""
    if n_objects is None:
        n_objects = rng.choices(list(counts), weights=list(counts.values()))[0]
    if rng.random() < P_GRADIENT:
        background = rng.choice(_gradients())
    else:
        background = Background(rng.choice(tuple(COLOURS)))
    colours = allowed_colours(background)
    # Large objects get a scene to themselves: two of them cannot sit side by side.
    sizes = SIZES if n_objects == 1 else SIZES[:2]
    objects: list[SceneObject] = []
    for position in rng.sample(POSITIONS, n_objects):
        if objects and rng.random() < P_REPEAT:
            shape, colour = objects[-1].shape, objects[-1].colour
        else:
            shape, colour = rng.choice(SHAPES), rng.choice(colours)
        scale = rng.uniform(1.0 - SIZE_JITTER, 1.0 + SIZE_JITTER)
        objects.append(SceneObject(shape, colour, rng.choice(sizes), position, scale=scale))
    return Scene(_jitter(objects, rng), background)


def _jitter(objects: list[SceneObject], rng: random.Random) -> tuple[SceneObject, ...]:
    # The anchors are far enough apart that small and medium objects of nominal size never
    # come closer than MIN_GAP, so falling back to no jitter always works.
    for _ in range(20):
        moved = [
            replace(
                o,
                offset=(
                    rng.uniform(-POSITION_JITTER, POSITION_JITTER),
                    rng.uniform(-POSITION_JITTER, POSITION_JITTER),
                ),
            )
            for o in objects
        ]
        if all(_apart(a, b) for i, a in enumerate(moved) for b in moved[i + 1 :]):
            return tuple(moved)
    return tuple(replace(o, scale=1.0) for o in objects)


def _apart(a: SceneObject, b: SceneObject) -> bool:
    (ax, ay), (bx, by) = a.centre, b.centre
    (aw, ah), (bw, bh) = a.extent, b.extent
    gap_x = abs(ax - bx) - (aw + bw) / 2
    gap_y = abs(ay - by) - (ah + bh) / 2
    return max(gap_x, gap_y) >= MIN_GAP


# -- rendering -----------------------------------------------------------------------------

SUPERSAMPLE = 4  # draw at 4x and box-downsample: clean anti-aliased edges at 64x64


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    centre: tuple[float, float],
    diameter: float,
    fill: tuple[int, int, int] | int,
) -> None:
    """Draw ``shape`` with its bounding box centred on ``centre`` (pixels)."""
    cx, cy = centre
    width, height = (diameter * s for s in SHAPE_EXTENTS[shape])
    if shape in ("circle", "ring"):
        box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        else:
            band = max(1, round(diameter * (1.0 - RING_HOLE) / 2))
            draw.ellipse(box, outline=fill, width=band)
    elif shape == "square":
        draw.rectangle(
            (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2), fill=fill
        )
    elif shape == "triangle":
        top, bottom = cy - height / 2, cy + height / 2
        draw.polygon([(cx, top), (cx + width / 2, bottom), (cx - width / 2, bottom)], fill=fill)
    else:
        draw.polygon(_star_points(cx, cy, width, height), fill=fill)


def _star_points(cx: float, cy: float, width: float, height: float) -> list[tuple[float, float]]:
    # Unit star: outer radius 1, top point at y=-1, lowest points at y=cos(36 degrees).
    low = math.cos(math.radians(36))
    unit_width, unit_height = 2 * math.sin(math.radians(72)), 1 + low
    sx, sy = width / unit_width, height / unit_height
    middle = (low - 1) / 2  # of the unit star's bounding box
    points = []
    for k in range(10):
        radius = 1.0 if k % 2 == 0 else STAR_INNER
        angle = math.radians(-90 + 36 * k)
        x, y = radius * math.cos(angle), radius * math.sin(angle)
        points.append((cx + sx * x, cy + sy * (y - middle)))
    return points


@lru_cache(maxsize=8)
def _ramp(side: int) -> Image.Image:
    # 0 at the top, 255 at the bottom.
    return Image.linear_gradient("L").resize((side, side), Image.Resampling.BILINEAR)


def render_background(background: Background, side: int) -> Image.Image:
    top = Image.new("RGB", (side, side), COLOURS[background.colour])
    if background.gradient_to is None:
        return top
    bottom = Image.new("RGB", (side, side), COLOURS[background.gradient_to])
    return Image.composite(bottom, top, _ramp(side))


def _supersampling(size: int) -> int:
    return SUPERSAMPLE if size <= 256 else 1


def render_bare(background: Background, size: int = 64) -> Image.Image:
    """The background alone, rendered exactly as ``render`` renders it under objects."""
    factor = _supersampling(size)
    image = render_background(background, size * factor)
    return image.reduce(factor) if factor > 1 else image


def render(scene: Scene, size: int = 64) -> Image.Image:
    """The scene as a ``size`` x ``size`` RGB image."""
    factor = _supersampling(size)
    side = size * factor
    image = render_background(scene.background, side)
    draw = ImageDraw.Draw(image)
    for o in scene.objects:
        cx, cy = o.centre
        draw_shape(draw, o.shape, (cx * side, cy * side), o.diameter * side, COLOURS[o.colour])
    return image.reduce(factor) if factor > 1 else image


# -- captions ------------------------------------------------------------------------------

# Phrasings of each position; "middle" and "side" give variety without new structure.
POSITION_PHRASES: dict[str, tuple[tuple[str, ...], ...]] = {
    "left": (("on", "the", "left"), ("on", "the", "left", "side")),
    "right": (("on", "the", "right"), ("on", "the", "right", "side")),
    "top": (("at", "the", "top"), ("near", "the", "top")),
    "bottom": (("at", "the", "bottom"), ("near", "the", "bottom")),
    "centre": (("in", "the", "centre"), ("in", "the", "middle")),
}

Order = Literal["colour_first", "colour_after", "coloured_after", "position_first"]
Placement = Literal["after", "before_with", "before_on"]


@dataclass(frozen=True)
class Template:
    """One phrasing of a caption.

    ``order``: "a red circle on the left" (colour_first), "a circle in red on the left"
    (colour_after), "a circle coloured red on the left" (coloured_after) or "on the left a
    red circle" (position_first).
    ``background``: "... on a yellow background" (after), "a yellow background with ..."
    (before_with) or "on a yellow background ..." (before_on).
    ``says_*``: parts the template always says (and never drops to fit MAX_CAPTION_WORDS);
    held-out templates use them to stay unlike any training caption.
    """

    name: str
    prefix: tuple[str, ...] = ()
    order: Order = "colour_first"
    background: Placement = "after"
    says_prefix: bool = False
    says_background: bool = False
    says_positions: bool = False


TRAIN_TEMPLATES: tuple[Template, ...] = (
    Template("bare"),
    Template("picture_of", prefix=("a", "picture", "of")),
    Template("image_of", prefix=("an", "image", "of")),
    Template("background_with", background="before_with", says_background=True),
    # A colour after its shape, in other words than the held-out "a star in cyan": without
    # it the text encoder never saw a colour follow its shape, and 19 of the previous
    # weights' 23 held-out colour misses were in that one held-out phrasing.
    Template("coloured_after", order="coloured_after"),
)

# Each one has something no training caption has: a caption starting with a position,
# "in" and a colour after a shape, a caption starting with "on a ... background", or
# "a picture with".
HELD_OUT_TEMPLATES: tuple[Template, ...] = (
    Template("position_first", order="position_first", says_positions=True),
    Template("colour_after", order="colour_after"),
    Template("background_first", background="before_on", says_background=True),
    Template("picture_with", prefix=("a", "picture", "with"), says_prefix=True),
)


@dataclass(frozen=True)
class ExpectedObject:
    """What a caption says about one kind of object; None where it says nothing."""

    count: int
    colour: str | None
    shape: str
    size: str | None = None
    position: str | None = None


@dataclass(frozen=True)
class Expectation:
    objects: tuple[ExpectedObject, ...]
    background: Background | None = None


def expectation_of(scene: Scene) -> Expectation:
    """Everything about ``scene`` that a judge can check: each object on its own."""
    return Expectation(
        tuple(ExpectedObject(1, o.colour, o.shape, o.size, o.position) for o in scene.objects),
        scene.background,
    )


def _mentions(scene: Scene) -> list[ExpectedObject]:
    # Objects of one shape and colour are said together ("two blue squares"), without
    # positions; their size only when they share it.
    groups: dict[tuple[str, str], list[SceneObject]] = {}
    for o in scene.objects:
        groups.setdefault((o.shape, o.colour), []).append(o)
    mentions = []
    for (shape, colour), members in groups.items():
        if len(members) == 1:
            o = members[0]
            mentions.append(ExpectedObject(1, colour, shape, o.size, o.position))
        else:
            sizes = {o.size for o in members}
            size = sizes.pop() if len(sizes) == 1 else None
            mentions.append(ExpectedObject(len(members), colour, shape, size, None))
    return mentions


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _object_words(
    mention: ExpectedObject, order: Order, position: tuple[str, ...] | None
) -> list[str]:
    noun = mention.shape if mention.count == 1 else PLURALS[mention.shape]
    size = [mention.size] if mention.size else []
    colour = mention.colour or ""
    if order in ("colour_after", "coloured_after"):
        core = [*size, noun, "in" if order == "colour_after" else "coloured", colour]
    else:
        core = [*size, colour, noun]
    words = [_article(core[0]) if mention.count == 1 else NUMBER_WORDS[mention.count], *core]
    if position is None:
        return words
    return [*position, *words] if order == "position_first" else [*words, *position]


def _background_words(background: Background, variant: int) -> list[str]:
    """The noun phrase: "a yellow background", "a red to blue gradient", ..."""
    top = background.colour
    if background.gradient_to is None:
        return [_article(top), top, "background"]
    bottom = background.gradient_to
    if variant == 0:
        return [_article(top), top, "to", bottom, "gradient"]
    return ["a", "gradient", "from", top, "to", bottom]


@dataclass
class _Plan:
    """The choices behind one caption, so details can be dropped without re-drawing."""

    template: Template
    mentions: list[ExpectedObject]
    positions: list[tuple[str, ...] | None]
    background: Background | None
    background_variant: int
    preposition: str  # "on" or "against", before a plain background
    prefix: bool

    def words(self) -> list[str]:
        t = self.template
        objects: list[str] = []
        for i, (mention, position) in enumerate(zip(self.mentions, self.positions, strict=True)):
            if i:
                objects.append("and")
            objects += _object_words(mention, t.order, position)
        words = list(t.prefix) if self.prefix else []
        if self.background is None:
            return words + objects
        noun = _background_words(self.background, self.background_variant)
        on = "on" if self.background.gradient_to is not None else self.preposition
        if t.background == "before_with":
            return [*words, *noun, "with", *objects]
        if t.background == "before_on":
            return [*words, on, *noun, *objects]
        return [*words, *objects, on, *noun]

    def shorten(self) -> bool:
        """Drop one optional detail: sizes, then the background, the prefix, positions."""
        for i in reversed(range(len(self.mentions))):
            if self.mentions[i].size is not None:
                self.mentions[i] = replace(self.mentions[i], size=None)
                return True
        if self.background is not None and not self.template.says_background:
            self.background = None
            return True
        if self.prefix and not self.template.says_prefix:
            self.prefix = False
            return True
        if not self.template.says_positions:
            for i in reversed(range(len(self.mentions))):
                if self.positions[i] is not None:
                    self.positions[i] = None
                    self.mentions[i] = replace(self.mentions[i], position=None)
                    return True
        return False


class Caption(NamedTuple):
    text: str
    expected: Expectation
    template: Template  # the phrasing it was worded in


def caption_with_expectation(
    scene: Scene,
    rng: random.Random,
    templates: Sequence[Template] = TRAIN_TEMPLATES,
    *,
    p_size: float = 0.5,
    p_position: float = 0.9,
    p_background: float = 0.5,
    max_words: int = MAX_CAPTION_WORDS,
) -> Caption:
    """A caption of ``scene``, exactly what it says, and the template it follows.

    Each object's size, each single object's position and the background are said with
    the given probabilities (or always, where the template insists); groups of one shape
    and colour are said with a count and no position. Details are dropped, least useful
    first, until the caption fits ``max_words``.
    """
    mentions = _mentions(scene)
    usable = [t for t in templates if not t.says_positions or any(m.count == 1 for m in mentions)]
    template = rng.choice(usable or list(templates))
    positions: list[tuple[str, ...] | None] = []
    for i, m in enumerate(mentions):
        phrase = rng.choice(POSITION_PHRASES[m.position]) if m.position else None
        if phrase is None or not (template.says_positions or rng.random() < p_position):
            phrase = None
            mentions[i] = replace(m, position=None)
        positions.append(phrase)
        if mentions[i].size is not None and not rng.random() < p_size:
            mentions[i] = replace(mentions[i], size=None)
    says_background = template.says_background or rng.random() < p_background
    plan = _Plan(
        template=template,
        mentions=mentions,
        positions=positions,
        background=scene.background if says_background else None,
        background_variant=rng.randrange(2),
        preposition=rng.choice(("on", "against")),
        prefix=bool(template.prefix),
    )
    while len(plan.words()) > max_words:
        if not plan.shorten():
            raise ValueError(f"no caption of this scene fits {max_words} words")
    return Caption(
        " ".join(plan.words()), Expectation(tuple(plan.mentions), plan.background), template
    )


def caption(
    scene: Scene,
    rng: random.Random,
    templates: Sequence[Template] = TRAIN_TEMPLATES,
    *,
    p_size: float = 0.5,
    p_position: float = 0.9,
    p_background: float = 0.5,
    max_words: int = MAX_CAPTION_WORDS,
) -> str:
    """A caption of ``scene`` in one of ``templates``' phrasings (see caption_with_expectation)."""
    return caption_with_expectation(
        scene,
        rng,
        templates,
        p_size=p_size,
        p_position=p_position,
        p_background=p_background,
        max_words=max_words,
    ).text


def _template_words(templates: Sequence[Template]) -> set[str]:
    words = {"a", "an", "and", "with", "in", "on", "against", "background", "gradient"}
    words |= {"to", "from", "two", "three", *SHAPES, *PLURALS.values(), *COLOURS, *SIZES}
    for phrases in POSITION_PHRASES.values():
        for phrase in phrases:
            words.update(phrase)
    for t in templates:
        words.update(t.prefix)
        if t.order == "coloured_after":
            words.add("coloured")
    return words


def all_words() -> tuple[str, ...]:
    """Every word any caption (of either template set) can contain, sorted."""
    return tuple(sorted(_template_words((*TRAIN_TEMPLATES, *HELD_OUT_TEMPLATES))))


def training_words() -> tuple[str, ...]:
    """Every word a training caption can contain; held-out captions use no others."""
    return tuple(sorted(_template_words(TRAIN_TEMPLATES)))


def tokenize(text: str) -> list[str]:
    """Lower-case words; punctuation and digits are ignored."""
    return re.findall(r"[a-z]+", text.lower())


# -- the data stream -----------------------------------------------------------------------


class Example(NamedTuple):
    image: Image.Image
    caption: str
    scene: Scene


def examples(
    seed: int,
    size: int = 64,
    templates: Sequence[Template] = TRAIN_TEMPLATES,
    *,
    n_objects: int | None = None,
    counts: Mapping[int, float] = OBJECT_COUNT_WEIGHTS,
    p_size: float = 0.5,
    p_position: float = 0.9,
    p_background: float = 0.5,
    max_words: int = MAX_CAPTION_WORDS,
) -> Iterator[Example]:
    """An endless stream of (image, caption, scene), the same for the same arguments.

    Give each data-loader worker its own seed: streams of different seeds are independent.
    The caption options are caption_with_expectation's.
    """
    rng = random.Random(seed)
    while True:
        scene = sample_scene(rng, n_objects, counts)
        text = caption(
            scene,
            rng,
            templates,
            p_size=p_size,
            p_position=p_position,
            p_background=p_background,
            max_words=max_words,
        )
        yield Example(render(scene, size), text, scene)


# -- parsing -------------------------------------------------------------------------------

# Spellings a user may type that captions never use.
SYNONYMS: dict[str, str] = {
    "gray": "grey",
    "colored": "coloured",
    "center": "centre",
    "big": "large",
    "tiny": "small",
    "little": "small",
    "violet": "purple",
    "one": "a",
    "an": "a",
}
_COUNTS = {"a": 1, "two": 2, "three": 3}
_SINGULAR = {plural: shape for shape, plural in PLURALS.items()}
_PLACES = {"left", "right", "top", "bottom", "centre", "middle"}
_COLOUR_WORDS = "|".join(COLOURS)
# On the normalised text (synonyms applied, "an" -> "a").
_BACKGROUND_PATTERNS = (
    re.compile(rf"\b(?:(?:on|against) )?a ({_COLOUR_WORDS}) to ({_COLOUR_WORDS}) gradient\b"),
    re.compile(rf"\b(?:(?:on|against) )?a gradient from ({_COLOUR_WORDS}) to ({_COLOUR_WORDS})\b"),
    re.compile(rf"\b(?:(?:on|against) )?a ({_COLOUR_WORDS}) background\b"),
)


def parse_caption(text: str) -> Expectation:
    """What ``text`` asks an image to show: each object mention and the background.

    Reads every phrasing of both template sets, and prompts typed in the same words
    (spelling variants in SYNONYMS). Attributes the text does not name are None.
    """
    normal = " ".join(SYNONYMS.get(w, w) for w in tokenize(text))
    background = None
    for pattern in _BACKGROUND_PATTERNS:
        match = pattern.search(normal)
        if match:
            colours = match.groups()
            background = Background(colours[0], colours[1] if len(colours) > 1 else None)
            normal = normal[: match.start()] + " " + normal[match.end() :]
            break
    objects: list[ExpectedObject] = []
    for segment in re.split(r"\b(?:and|with)\b", normal):
        objects += _parse_segment(segment.split())
    return Expectation(tuple(objects), background)


def _parse_segment(words: list[str]) -> list[ExpectedObject]:
    places: list[tuple[int, str]] = []  # (index, position)
    for i in range(len(words) - 2):
        if words[i] in ("on", "at", "near", "in") and words[i + 1] == "the":
            place = words[i + 2]
            if place in _PLACES:
                places.append((i, "centre" if place == "middle" else place))
    found: list[tuple[int, ExpectedObject]] = []
    for i, word in enumerate(words):
        shape = word if word in SHAPES else _SINGULAR.get(word)
        if shape is None:
            continue
        colour = size = None
        j = i - 1
        while j >= 0 and (words[j] in COLOURS or words[j] in SIZES):
            if words[j] in COLOURS:
                colour = colour or words[j]
            else:
                size = size or words[j]
            j -= 1
        count = _COUNTS.get(words[j], 1) if j >= 0 else 1
        if shape != word and count == 1:
            count = 2  # a plural with no number: at least two
        if i + 2 < len(words) and words[i + 1] in ("in", "coloured") and words[i + 2] in COLOURS:
            colour = words[i + 2]
        found.append((i, ExpectedObject(count, colour, shape, size)))
    # A position belongs to the object it follows or, failing that, to the one it leads.
    for index, place in places:
        before = [k for k, (i, _) in enumerate(found) if i < index]
        after = [k for k, (i, _) in enumerate(found) if i > index]
        k = before[-1] if before else (after[0] if after else None)
        if k is not None and found[k][1].position is None and found[k][1].count == 1:
            found[k] = (found[k][0], replace(found[k][1], position=place))
    return [mention for _, mention in found]
