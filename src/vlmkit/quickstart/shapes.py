"""ShapesVQA: a synthetic VQA task small enough to learn on a laptop CPU, in English and Vietnamese.

Each 56 px image holds one to three shapes (distinct shapes, distinct colours), each in its own 28 px cell of
a 2x2 grid: one cell is exactly one merged vision token of Qwen2-VL (14 px patches, 2x2 merge). Shades and
the background vary, so the space of images is far larger than any training set, and the test split
additionally skips every scene the training stream contains: test images are never seen in training.

Questions (one per sample, the three types equally often): the colour of the shape ("What color is the
circle?" / "Hình tròn màu gì?") and the shape of the colour ("What shape is blue?" / "Hình nào màu xanh
dương?"), asked of one-shape images, and the count ("How many shapes are there?"), asked of any image. Why
not colour/shape questions about one of several shapes, or yes/no questions: the 1.8M-parameter model does
not learn to bind a named shape to its colour among several in a CPU budget (held-out accuracy stayed at the
"guess one of the colours present" level in runs of up to 3,000 steps on 48,000 images), and questions it cannot
learn drown the signal of those it can. Questions are drawn as language-neutral specs, so English and
Vietnamese ask the same facts of the same images. Everything comes from seeded streams, so a seed gives the same files.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from ..data.schema import DatasetWriter, Sample

IMAGE_SIZE = 56
GRID = 2  # cells per side: 28 px cells, one merged vision token each
LANGS = ("en", "vi")
QUESTION_TYPES = ("color", "shape", "count")
SHADE = 12  # each RGB channel of a shape varies by up to this much around its named colour

# name -> (RGB, Vietnamese)
COLORS: dict[str, tuple[tuple[int, int, int], str]] = {
    "red": ((220, 40, 40), "đỏ"),
    "green": ((40, 160, 60), "xanh lá"),
    "blue": ((40, 80, 220), "xanh dương"),
    "yellow": ((235, 200, 30), "vàng"),
    "purple": ((150, 60, 190), "tím"),
}
SHAPES: dict[str, str] = {
    "circle": "hình tròn",
    "square": "hình vuông",
    "triangle": "hình tam giác",
    "star": "ngôi sao",
}
NUMBERS = {"en": ("zero", "one", "two", "three"), "vi": ("không", "một", "hai", "ba")}


@dataclass(frozen=True)
class Item:
    shape: str
    color: str
    cell: int  # 0..GRID²-1, row-major
    scale: float = 0.85  # fraction of the cell the shape spans
    dx: int = 0  # centre offset in pixels
    dy: int = 0
    shade: tuple[int, int, int] = (0, 0, 0)  # RGB offset from the named colour

    @property
    def rgb(self) -> tuple[int, int, int]:
        return tuple(max(0, min(255, c + d)) for c, d in zip(COLORS[self.color][0], self.shade))


@dataclass(frozen=True)
class Scene:
    id: str
    items: tuple[Item, ...]
    background: tuple[int, int, int]

    @property
    def key(self) -> tuple:
        """What the image shows (everything but the id): equal keys draw identical images."""
        return (self.items, self.background)


@dataclass(frozen=True)
class QA:
    type: str
    question: str
    answer: str


# --- scenes and images ------------------------------------------------------------------------------
def random_scene(rng: random.Random, scene_id: str, shapes: int | None = None) -> Scene:
    n = shapes or rng.choice((1, 2, 3))
    kinds = rng.sample(sorted(SHAPES), n)
    colors = rng.sample(sorted(COLORS), n)
    cells = rng.sample(range(GRID * GRID), n)
    # Shades and the background vary; size and position within the cell do not: the frozen random vision
    # tower tells shapes apart only when a shape always covers the same pixels of its token.
    items = tuple(
        Item(kind, color, cell, shade=tuple(rng.randint(-SHADE, SHADE) for _ in range(3)))
        for kind, color, cell in zip(kinds, colors, cells)
    )
    grey = rng.randint(228, 250)
    return Scene(scene_id, items, (grey, grey, grey))


def render(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    image = Image.new("RGB", (size, size), scene.background)
    draw = ImageDraw.Draw(image)
    cell = size / GRID
    for item in scene.items:
        cx = (item.cell % GRID + 0.5) * cell + item.dx
        cy = (item.cell // GRID + 0.5) * cell + item.dy
        r = item.scale * cell / 2
        fill = item.rgb
        if item.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif item.shape == "square":
            s = r * 0.85
            draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
        elif item.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
        else:
            draw.polygon(_star(cx, cy, r), fill=fill)
    return image


def _star(cx: float, cy: float, r: float, points: int = 5) -> list[tuple[float, float]]:
    out = []
    for k in range(points * 2):
        radius = r if k % 2 == 0 else r * 0.45
        angle = math.pi * k / points - math.pi / 2
        out.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return out


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# --- questions --------------------------------------------------------------------------------------
def color_question(item: Item, lang: str) -> QA:
    if lang == "en":
        return QA("color", f"What color is the {item.shape}?", item.color)
    return QA("color", f"{SHAPES[item.shape].capitalize()} màu gì?", f"màu {COLORS[item.color][1]}")


def shape_question(item: Item, lang: str) -> QA:
    if lang == "en":
        return QA("shape", f"What shape is {item.color}?", item.shape)
    return QA("shape", f"Hình nào màu {COLORS[item.color][1]}?", SHAPES[item.shape])


def count_question(scene: Scene, lang: str) -> QA:
    question = "How many shapes are there?" if lang == "en" else "Có bao nhiêu hình?"
    return QA("count", question, NUMBERS[lang][len(scene.items)])


def ask(kind: str, scene: Scene, lang: str) -> QA:
    if kind == "color":
        return color_question(scene.items[0], lang)
    if kind == "shape":
        return shape_question(scene.items[0], lang)
    return count_question(scene, lang)


def corpus() -> list[str]:
    """Every question and answer wording in both languages: the text the small tokenizer is trained on."""
    lines = []
    for lang in LANGS:
        for shape in SHAPES:
            for color in COLORS:
                item = Item(shape, color, 0)
                for qa in (color_question(item, lang), shape_question(item, lang)):
                    lines += [qa.question, qa.answer]
        lines += [count_question(Scene("c", (), (0, 0, 0)), lang).question, *NUMBERS[lang][1:]]
    random.Random(0).shuffle(lines)
    return lines


# --- datasets ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapesConfig:
    train_images: int = 16000  # per language: the Vietnamese fine-tune and its English replay
    base_train_images: int = 48000  # English only, when the base is trained here (a prefix-superset of the above)
    test_images: int = 300  # held out, one question each, the three types in turn
    seed: int = 0


def stream(split: str, seed: int) -> Iterator[tuple[Scene, str]]:
    """(scene, question type) pairs of one split, endless. Separate seeded streams per split, so a split's
    first N items never depend on N or on the other split. Training draws the type at random, the test split
    cycles through the types; colour and shape questions get one-shape scenes."""
    rng = random.Random(f"shapes-{split}-{seed}")
    for index in itertools.count():
        kind = QUESTION_TYPES[index % len(QUESTION_TYPES)] if split == "test" else rng.choice(QUESTION_TYPES)
        scene = random_scene(rng, f"{split}-{index:05d}", shapes=None if kind == "count" else 1)
        yield scene, kind


def plan(split: str, config: ShapesConfig, images: int | None = None) -> list[tuple[Scene, str]]:
    """The (scene, question type) list a split's dataset is written from. Test scenes that the training
    stream (up to the larger training size) also contains are skipped, so no test image was seen in training."""
    if split == "train":
        return list(itertools.islice(stream("train", config.seed), images or config.train_images))
    seen = training_keys(config.seed, max(config.train_images, config.base_train_images))
    fresh = ((scene, kind) for scene, kind in stream("test", config.seed) if scene.key not in seen)
    return list(itertools.islice(fresh, images or config.test_images))


@functools.lru_cache(maxsize=4)
def training_keys(seed: int, count: int) -> frozenset:
    """The keys of the first `count` training scenes; cached, as both test languages check against them."""
    return frozenset(scene.key for scene, _ in itertools.islice(stream("train", seed), count))


def qa_sample(scene: Scene, kind: str, image_path: str, lang: str) -> Sample:
    qa = ask(kind, scene, lang)
    return Sample.model_validate(
        {
            "id": f"{scene.id}-{lang}",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image", "image": image_path}, {"type": "text", "text": qa.question}],
                },
                {"role": "assistant", "content": qa.answer},
            ],
            "answers": [qa.answer],
            "meta": {
                "source": "shapes_vqa",
                "lang": lang,
                "image_id": scene.id,
                "shapes": len(scene.items),
                "question_type": kind,
            },
        }
    )


def write_split(
    out_dir: Path, split: str, lang: str, config: ShapesConfig, *, images: int | None = None, overwrite: bool = True
) -> Path:
    """Write one language of one split as a vlmkit dataset folder; returns the folder. `images` overrides the
    config's count; a smaller count gives a prefix of a larger one."""
    with DatasetWriter(out_dir, overwrite=overwrite) as writer:
        for scene, kind in plan(split, config, images):
            path = writer.add_media_bytes(png_bytes(render(scene)), ".png")
            writer.write(qa_sample(scene, kind, path, lang))
    return out_dir
