"""Scores a generated image against a caption by colour and shape analysis.

The image is read at 64x64. Its background is a plane per RGB channel, fitted robustly to
a band just inside the outermost pixels, which covers plain and gradient backgrounds alike;
pixels far from it belong to objects, split where two objects bleed into each other. Each
object gets:

- a colour: the palette colour that, mixed with the background, explains its pixels;
- a coverage map (how much of each pixel it covers), whose area and centroid survive blur;
- a shape: each shape's template is placed by that area and centroid, blurred by a few
  amounts, and compared with the coverage map; the closest fit wins;
- a position (nearest anchor) and a size, from the winning fit.

Expected objects are then matched one-to-one to detected ones, best agreement first.

No training and no torch: the judge is the scene generator's geometry read backwards. It
is meant to survive the blur, noise, colour drift and compression of a small diffusion
model's output; tests/training checks it on clean and blurred ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from imagegate.training.scenes import (
    ANCHORS,
    COLOURS,
    SHAPE_EXTENTS,
    SHAPES,
    SIZE_FRACTIONS,
    Background,
    Expectation,
    ExpectedObject,
    draw_shape,
    parse_caption,
)

Array = npt.NDArray[np.float32]

SIDE = 64  # images are judged at the model's native size
# The outermost pixels of each edge are neither background evidence nor object: a
# decoder's zero padding leaves a frame of its own colour there, which fitted as background
# tilted the whole plane and made large patches of background into "objects" (a model's
# single-object images showed six detected objects in 79 of 200 cases). Scenes keep their
# objects off this frame.
EDGE = 2
BORDER = 3  # pixels inside that frame that the background is fitted to
DETECT_DISTANCE = 45.0  # RGB distance from the background that makes a pixel an object's
MIN_AREA = 12  # pixels; smaller blobs are noise
PEAK_PULL = 0.25  # weight of the distance to the peak colour in choosing a colour name
CORE_RATIO = 0.7  # of the neighbourhood's peak distance, for a pixel to seed an object
MIN_SEED = 4  # pixels
MAX_OBJECTS = 6  # the largest ones; the grammar never asks for more than three

_PALETTE_NAMES = tuple(COLOURS)
_PALETTE = np.array([COLOURS[name] for name in _PALETTE_NAMES], dtype=np.float32)


@dataclass(frozen=True)
class DetectedObject:
    colour: str
    shape: str
    position: str
    size: str
    centre: tuple[float, float]  # of the bounding box, as image fractions
    extent: tuple[float, float]  # bounding box width and height, as image fractions
    area: int  # pixels at 64x64
    # Per shape, 1 - the template's squared error per unit area: best fit first.
    shape_scores: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Detection:
    objects: tuple[DetectedObject, ...]  # largest first
    background_top: str  # nearest palette colour of the fitted background, top edge
    background_bottom: str


@dataclass(frozen=True)
class ObjectVerdict:
    """One expected object (all ``count`` of it); None where the caption names nothing."""

    expected: ExpectedObject
    colour: bool | None
    shape: bool
    position: bool | None
    size: bool | None
    count: bool  # as many objects of this colour and shape as the caption asks for


@dataclass(frozen=True)
class Verdict:
    objects: tuple[ObjectVerdict, ...]
    background: bool | None
    detected: tuple[DetectedObject, ...]
    extra_objects: int  # detected objects that no expected object claimed

    @property
    def all_right(self) -> bool:
        checks = [self.background] + [
            flag for o in self.objects for flag in (o.colour, o.shape, o.position, o.size, o.count)
        ]
        return all(flag is not False for flag in checks)


def judge(image: Image.Image, expected: Expectation | str) -> Verdict:
    """How far ``image`` shows what ``expected`` (or a caption, parsed) asks for."""
    if isinstance(expected, str):
        expected = parse_caption(expected)
    detection = detect(image)
    found = detection.objects
    units = [o for o in expected.objects for _ in range(o.count)]
    matched = _match(units, found)
    verdicts = []
    start = 0
    for wanted in expected.objects:
        mine = matched[start : start + wanted.count]
        start += wanted.count
        verdicts.append(
            ObjectVerdict(
                expected=wanted,
                colour=None
                if wanted.colour is None
                else all(d is not None and d.colour == wanted.colour for d in mine),
                shape=all(d is not None and d.shape == wanted.shape for d in mine),
                position=None
                if wanted.position is None
                else all(d is not None and d.position == wanted.position for d in mine),
                size=None
                if wanted.size is None
                else all(d is not None and d.size == wanted.size for d in mine),
                count=_count_right(wanted, expected.objects, found),
            )
        )
    claimed = sum(d is not None for d in matched)
    return Verdict(
        objects=tuple(verdicts),
        background=_background_right(expected.background, detection),
        detected=found,
        extra_objects=len(found) - claimed,
    )


def _agreement(wanted: ExpectedObject, found: DetectedObject) -> float:
    # Colour first: it is what a small model gets right most reliably, so it is the best
    # clue to which detected object was meant.
    return (
        4.0 * (found.colour == wanted.colour)
        + 2.0 * (found.shape == wanted.shape)
        + 1.0 * (found.position == wanted.position)
        + 0.5 * (found.size == wanted.size)
    )


def _match(
    units: list[ExpectedObject], found: tuple[DetectedObject, ...]
) -> list[DetectedObject | None]:
    """The one-to-one assignment of detected objects to expected ones that agrees most.

    Exact, by dynamic programming over which detected objects are taken (at most
    MAX_OBJECTS), so a prompt naming many objects costs no more than a few.
    """
    # used-objects bitmask -> (agreement, chosen index per unit; -1 for none)
    states: dict[int, tuple[float, tuple[int, ...]]] = {0: (0.0, ())}
    for unit in units:
        following: dict[int, tuple[float, tuple[int, ...]]] = {}
        for used, (score, picks) in states.items():
            options = [(used, score, -1)] + [
                # Any object beats none: it is the image's attempt at this one.
                (used | 1 << j, score + 0.01 + _agreement(unit, d), j)
                for j, d in enumerate(found)
                if not used >> j & 1
            ]
            for key, total, j in options:
                if key not in following or total > following[key][0]:
                    following[key] = (total, (*picks, j))
        states = following
    _, picks = max(states.values(), key=lambda state: state[0])
    return [found[j] if j >= 0 else None for j in picks]


def _count_right(
    wanted: ExpectedObject,
    everything: tuple[ExpectedObject, ...],
    found: tuple[DetectedObject, ...],
) -> bool:
    def same_kind(colour: str | None, shape: str) -> bool:
        return shape == wanted.shape and (wanted.colour is None or colour == wanted.colour)

    asked = sum(o.count for o in everything if same_kind(o.colour, o.shape))
    return asked == sum(same_kind(d.colour, d.shape) for d in found)


def _background_right(expected: Background | None, detection: Detection) -> bool | None:
    if expected is None:
        return None
    bottom = expected.gradient_to or expected.colour
    return detection.background_top == expected.colour and detection.background_bottom == bottom


# -- detection -----------------------------------------------------------------------------


def detect(image: Image.Image) -> Detection:
    """The objects in ``image`` and the colours of its background."""
    rgb = image.convert("RGB")
    if rgb.size != (SIDE, SIDE):
        rgb = rgb.resize((SIDE, SIDE), Image.Resampling.BOX)
    pixels = np.asarray(rgb, dtype=np.float32)
    background, coefficients = _fit_background(pixels)
    distance = np.linalg.norm(pixels - background, axis=2)
    distance[_from_edge(distance.shape[0]) < EDGE] = 0.0
    labels = _segment(distance)
    sizes = np.bincount(labels.ravel())
    candidates = [k for k in np.argsort(-sizes) if k != 0 and sizes[k] >= MIN_AREA]
    objects = [_describe(pixels, background, labels, int(k)) for k in candidates[:MAX_OBJECTS]]
    top = coefficients[0] + coefficients[1] * 0.5 + coefficients[2] * (0.5 / SIDE)
    bottom = coefficients[0] + coefficients[1] * 0.5 + coefficients[2] * (1 - 0.5 / SIDE)
    return Detection(tuple(objects), _nearest_colour(top), _nearest_colour(bottom))


@lru_cache(maxsize=4)
def _from_edge(side: int) -> npt.NDArray[np.int64]:
    """Each pixel's distance in pixels to the nearest edge of a ``side`` x ``side`` image."""
    along = np.minimum(np.arange(side), np.arange(side)[::-1])
    return np.minimum.outer(along, along)


def _fit_background(pixels: Array) -> tuple[Array, Array]:
    """A plane per channel, least squares on the band inside the edge frame, objects on it
    discounted."""
    side = pixels.shape[0]
    centres = (np.arange(side, dtype=np.float32) + 0.5) / side
    ys, xs = np.meshgrid(centres, centres, indexing="ij")
    design = np.stack([np.ones_like(xs), xs, ys], axis=-1)
    from_edge = _from_edge(side)
    border = (from_edge >= EDGE) & (from_edge < EDGE + BORDER)
    a, b = design[border], pixels[border]
    keep = np.ones(len(a), dtype=bool)
    for _ in range(3):
        coefficients = np.linalg.lstsq(a[keep], b[keep], rcond=None)[0]
        residual = np.linalg.norm(a @ coefficients - b, axis=1)
        keep = residual <= max(3.0 * float(np.median(residual)), 12.0)
    plane = (design @ coefficients).astype(np.float32)
    return plane, coefficients.astype(np.float32)


def _segment(distance: Array) -> npt.NDArray[np.int64]:
    """Objects: pixels far from the background, split where two objects bleed together.

    A blurred or compressed gap between two objects can stay above DETECT_DISTANCE, but
    it is a valley: each object is seeded by its core (pixels near their neighbourhood's
    peak distance) and grows through the rest of the foreground.
    """
    foreground = distance > DETECT_DISTANCE
    core = foreground & (distance >= CORE_RATIO * _max_filter(distance, 2))
    seeds = _label(core)
    seeds[np.isin(seeds, np.nonzero(np.bincount(seeds.ravel()) < MIN_SEED)[0])] = 0
    return _grow(seeds, foreground)


def _grow(seeds: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Give each pixel of ``mask`` the label of the nearest seed it connects to."""
    labels = seeds.copy()
    while True:
        reach = labels.copy()
        np.maximum(reach[1:], labels[:-1], out=reach[1:])
        np.maximum(reach[:-1], labels[1:], out=reach[:-1])
        np.maximum(reach[:, 1:], labels[:, :-1], out=reach[:, 1:])
        np.maximum(reach[:, :-1], labels[:, 1:], out=reach[:, :-1])
        grown = np.where((labels == 0) & mask, reach, labels)
        if np.array_equal(grown, labels):
            return labels
        labels = grown


def _max_filter(image: Array, radius: int) -> Array:
    """Maximum over the (2 * radius + 1)^2 neighbourhood."""
    out = image.copy()
    for axis in (0, 1):
        source = out.copy()
        for step in range(1, radius + 1):
            forward = [slice(None)] * 2
            backward = [slice(None)] * 2
            forward[axis], backward[axis] = slice(step, None), slice(None, -step)
            np.maximum(out[tuple(forward)], source[tuple(backward)], out=out[tuple(forward)])
            np.maximum(out[tuple(backward)], source[tuple(forward)], out=out[tuple(backward)])
    return out


def _label(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """4-connected components, numbered by their first pixel (0 is background)."""
    h, w = mask.shape
    never = h * w + 1
    labels = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), never)
    while True:
        low = labels.copy()
        np.minimum(low[1:], labels[:-1], out=low[1:])
        np.minimum(low[:-1], labels[1:], out=low[:-1])
        np.minimum(low[:, 1:], labels[:, :-1], out=low[:, 1:])
        np.minimum(low[:, :-1], labels[:, 1:], out=low[:, :-1])
        low = np.where(mask, low, never)
        if np.array_equal(low, labels):
            break
        labels = low
    values, dense = np.unique(np.where(mask, labels, 0), return_inverse=True)
    dense = dense.reshape(h, w).astype(np.int64)
    # np.unique sorts, so where there is background it stays 0.
    return dense if values[0] == 0 else dense + 1


def _describe(
    pixels: Array, background: Array, labels: npt.NDArray[np.int64], k: int
) -> DetectedObject:
    mine = labels == k
    near = _dilate(mine, 3) & ~_dilate((labels != k) & (labels != 0), 1)
    rows, cols = np.nonzero(near)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    window = (slice(top, bottom), slice(left, right))
    near, mine = near[window], mine[window]
    local, ground = pixels[window], background[window]

    colour_rgb = _object_colour(local[mine], ground[mine])
    colour = _explaining_colour(local[mine], ground[mine], colour_rgb)
    # Coverage of each pixel by the object: where it lies between the background and the
    # object's colour. Unlike a threshold, its sum (area) and centroid survive blur.
    towards = colour_rgb - ground
    alpha = np.einsum("ijc,ijc->ij", local - ground, towards) / np.maximum(
        np.einsum("ijc,ijc->ij", towards, towards), 1.0
    )
    alpha = np.where(near, alpha, 0.0).astype(np.float32)
    mass = max(float(alpha.sum()), 1.0)
    ys, xs = np.mgrid[0 : bottom - top, 0 : right - left].astype(np.float32) + 0.5
    centroid = (float((alpha * xs).sum()) / mass, float((alpha * ys).sum()) / mass)

    fits = {shape: _fit(shape, alpha, near, mass, centroid) for shape in SHAPES}
    ranked = sorted(fits.items(), key=lambda item: item[1][0])
    shape, (_, (cx, cy), diameter) = ranked[0]
    centre = (float(left + cx) / SIDE, float(top + cy) / SIDE)
    scale_x, scale_y = SHAPE_EXTENTS[shape]
    d = diameter / SIDE
    return DetectedObject(
        colour=colour,
        shape=shape,
        position=min(ANCHORS, key=lambda p: math.dist(ANCHORS[p], centre)),
        size=min(SIZE_FRACTIONS, key=lambda s: abs(math.log(d / SIZE_FRACTIONS[s]))),
        centre=centre,
        extent=(d * scale_x, d * scale_y),
        area=int(mine.sum()),
        shape_scores=tuple((name, round(1.0 - fit[0], 3)) for name, fit in ranked),
    )


def _object_colour(inside: Array, ground: Array) -> Array:
    """The colour of the object's most opaque pixels (those farthest from the background)."""
    distance = np.linalg.norm(inside - ground, axis=1)
    return np.asarray(np.median(inside[distance >= 0.8 * distance.max()], axis=0), np.float32)


def _explaining_colour(inside: Array, ground: Array, peak: Array) -> str:
    """The palette colour that, mixed with the background, best explains the object.

    Blur and chroma subsampling mix a small object's colour with the background's, so its
    most opaque pixels can sit nearer another palette colour (green on orange reads as
    brown). Its pixels still lie on the line from the background to its true colour. A
    pull towards the peak colour decides between colours on one line (grey and black, seen
    from white).
    """
    distance = np.linalg.norm(inside - ground, axis=1)
    strong = distance >= 0.5 * distance.max()
    pixels, under = inside[strong], ground[strong]
    best, best_cost = _nearest_colour(peak), math.inf
    for name, rgb in zip(_PALETTE_NAMES, _PALETTE, strict=True):
        towards = rgb - under
        length2 = np.einsum("ij,ij->i", towards, towards)
        if float(np.sqrt(length2.min())) < DETECT_DISTANCE:
            continue  # the background's own colour explains nothing
        t = np.clip(np.einsum("ij,ij->i", pixels - under, towards) / length2, 0.0, 1.0)
        residual = np.linalg.norm(pixels - (under + t[:, None] * towards), axis=1)
        cost = float(residual.mean()) + PEAK_PULL * float(np.linalg.norm(peak - rgb))
        if cost < best_cost:
            best, best_cost = name, cost
    return best


_BLURS = (0.0, 0.5, 0.9, 1.3, 1.8)  # sigmas, in pixels, that templates are tried at


def _fit(
    shape: str,
    alpha: Array,
    near: npt.NDArray[np.bool_],
    mass: float,
    centroid: tuple[float, float],
) -> tuple[float, tuple[float, float], float]:
    """(error, bounding-box centre, diameter) of ``shape`` placed by area and centroid."""
    coverage, (shift_x, shift_y) = _moments(shape)
    diameter = math.sqrt(mass / coverage)
    centre = (centroid[0] - shift_x * diameter, centroid[1] - shift_y * diameter)
    template = _draw_template(shape, alpha.shape, centre, diameter)
    error = min(float(((alpha - _blur(template, sigma)) ** 2)[near].sum()) for sigma in _BLURS)
    return error / mass, centre, diameter


@lru_cache(maxsize=len(SHAPES))
def _moments(shape: str) -> tuple[float, tuple[float, float]]:
    """Area per diameter squared, and the centroid's offset from the bounding box's centre
    per diameter, of ``shape``."""
    diameter = 400.0
    side = int(diameter * 1.2)
    canvas = Image.new("L", (side, side), 0)
    draw_shape(ImageDraw.Draw(canvas), shape, (side / 2, side / 2), diameter, 255)
    ink = np.asarray(canvas, dtype=np.float64) / 255.0
    ys, xs = np.mgrid[0:side, 0:side] + 0.5
    total = float(ink.sum())
    shift = (
        (float((ink * xs).sum()) / total - side / 2) / diameter,
        (float((ink * ys).sum()) / total - side / 2) / diameter,
    )
    return total / diameter**2, shift


def _draw_template(
    shape: str, window: tuple[int, ...], centre: tuple[float, float], diameter: float
) -> Array:
    factor = 4
    canvas = Image.new("L", (window[1] * factor, window[0] * factor), 0)
    draw_shape(
        ImageDraw.Draw(canvas),
        shape,
        (centre[0] * factor, centre[1] * factor),
        diameter * factor,
        255,
    )
    return np.asarray(canvas.reduce(factor), dtype=np.float32) / 255.0


def _blur(image: Array, sigma: float) -> Array:
    if sigma == 0.0:
        return image
    h, w = image.shape
    blurred = _blur_matrix(h, sigma) @ image @ _blur_matrix(w, sigma).T
    return np.asarray(blurred, dtype=np.float32)


@lru_cache(maxsize=512)
def _blur_matrix(n: int, sigma: float) -> Array:
    """Gaussian blur along one axis, as a matrix (rows sum to 1: edges are not darkened)."""
    index = np.arange(n, dtype=np.float32)
    weights = np.exp(-0.5 * ((index[:, None] - index[None, :]) / sigma) ** 2)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def _dilate(mask: npt.NDArray[np.bool_], steps: int) -> npt.NDArray[np.bool_]:
    """Grow by ``steps`` pixels in all eight directions."""
    grown = mask.copy()
    for _ in range(steps):
        wider = grown.copy()
        wider[1:] |= grown[:-1]
        wider[:-1] |= grown[1:]
        grown = wider.copy()
        grown[:, 1:] |= wider[:, :-1]
        grown[:, :-1] |= wider[:, 1:]
    return grown


def _nearest_colour(rgb: npt.ArrayLike) -> str:
    distances = np.linalg.norm(_PALETTE - np.asarray(rgb, dtype=np.float32), axis=1)
    return _PALETTE_NAMES[int(np.argmin(distances))]
