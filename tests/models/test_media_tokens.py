"""The media contract: each family's adapter counts exactly the tokens its real processor produces.

Truth is the tiny checkpoint's own processor: the tokens it puts in place of an item's placeholder, and how many
of them are the family's image / video token. The collator's `sequence_length` (what training-length estimation
and packing use) must equal the length of the batch the collator really builds.
"""

import pytest
import torch
from families import FAMILIES, QWEN_FAMILIES
from PIL import Image
from synthetic_media import make_image, write_video
from transformers import AutoProcessor

from vlmkit.data.collate import MediaSettings, VlmCollator
from vlmkit.data.schema import Sample
from vlmkit.models.registry import get_family

# (width, height): tiny, square, wide, tall, extreme aspect, larger than every tiny processor's bound
SIZES = [(12, 9), (32, 32), (90, 60), (40, 120), (300, 28), (37, 500), (640, 480)]


@pytest.fixture(scope="module")
def processors(tiny_model):
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = AutoProcessor.from_pretrained(tiny_model(family))
        return cache[family]

    return get


def truth(family, processor, images=(), video=None, media=MediaSettings()):
    """(tokens, features) per processor call of one user turn holding `images` or a video (frames, metadata)."""
    adapter = get_family(family)
    kind = "video" if video is not None else "image"
    content = [{"type": kind} for _ in (images or [video])] + [{"type": "text", "text": "What is it?"}]
    text = processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False)
    unexpanded = len(processor.tokenizer(text, add_special_tokens=False)["input_ids"])
    kwargs = {"text": [text], "return_tensors": "pt", "add_special_tokens": False}
    if images:
        kwargs["images"] = adapter.processor_images([list(images)])
        kwargs.update(adapter.processor_kwargs(media.min_pixels, media.max_pixels, processor))
    else:
        kwargs.update(videos=[video[0]], video_metadata=[video[1]], do_sample_frames=False)
        kwargs.update(adapter.video_call_kwargs(processor))
    ids = processor(**kwargs)["input_ids"][0]
    token_id = processor.tokenizer.convert_tokens_to_ids(
        adapter.image_token if kind == "image" else adapter.video_token
    )
    return len(ids) - unexpanded, int((ids == token_id).sum())


@pytest.mark.parametrize("family", FAMILIES)
def test_image_tokens_are_exactly_what_the_processor_makes(family, processors):
    processor, adapter = processors(family), get_family(family)
    seen = set()
    for width, height in SIZES:
        cost = adapter.image_tokens(processor, width, height)
        added, features = truth(family, processor, [make_image(width, height)])
        assert (cost.tokens - 1, cost.features) == (added, features), (width, height)
        seen.add(cost.tokens)
    # Two images in one turn add up (and the dynamic-resolution families really vary with the size).
    pair = [make_image(90, 60), make_image(40, 120)]
    added, _ = truth(family, processor, pair)
    assert added == sum(adapter.image_tokens(processor, *im.size).tokens - 1 for im in pair)
    assert len(seen) > 1 or family == "llava"


@pytest.mark.parametrize("family", QWEN_FAMILIES)
def test_min_and_max_pixels_enter_the_image_count(family, processors):
    processor, adapter = processors(family), get_family(family)
    factor = processor.image_processor.patch_size * processor.image_processor.merge_size
    for media in (MediaSettings(max_pixels=factor * factor * 4), MediaSettings(min_pixels=factor * factor * 40)):
        counts = set()
        for width, height in SIZES[2:]:
            cost = adapter.image_tokens(processor, width, height, media)
            added, features = truth(family, processor, [make_image(width, height)], media=media)
            assert (cost.tokens - 1, cost.features) == (added, features), (media, width, height)
            counts.add(cost.features)
        assert counts != {adapter.image_tokens(processor, 640, 480).features}


@pytest.mark.parametrize("family", QWEN_FAMILIES)
def test_video_tokens_are_exactly_what_the_processor_makes(family, processors, tmp_path):
    from vlmkit.data.media import load_video, plan_video, video_processor_kwargs

    processor, adapter = processors(family), get_family(family)
    clip = write_video(tmp_path / "clip.mp4", n_frames=24, size=(96, 64), fps=8.0)
    for sampling in ({"nframes": 1}, {"nframes": 3}, {"nframes": 8}, {"fps": 2.0}, {"fps": 8.0, "max_frames": 12}):
        video = load_video(clip, **sampling)
        plan = plan_video(clip, **sampling)
        assert plan.frame_indices == video.frame_indices
        cost = adapter.video_tokens(processor, plan.frame_indices, plan.fps, plan.width, plan.height)
        frames = video_processor_kwargs([video])
        added, features = truth(family, processor, video=(frames["videos"][0], frames["video_metadata"][0]))
        assert (cost.tokens - 1, cost.features) == (added, features), sampling


def _sample(sid, parts):
    content = [*parts, {"type": "text", "text": "What color is the circle?"}]
    return Sample.model_validate(
        {
            "id": sid,
            "messages": [
                {"role": "user", "content": content},
                {"role": "assistant", "content": [{"type": "text", "text": "red"}]},
            ],
            "answers": ["red"],
        }
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_sequence_length_is_the_length_of_the_built_batch(family, processors, tmp_path):
    torch.set_num_threads(1)
    processor = processors(family)
    paths = []
    for i, size in enumerate([(90, 60), (40, 120), (640, 480)]):
        paths.append(tmp_path / f"im{i}.png")
        Image.new("RGB", size, "red").save(paths[-1])
    parts = [[{"type": "image", "image": str(p)}] for p in paths] + [
        [{"type": "image", "image": str(paths[0])}, {"type": "image", "image": str(paths[2])}]
    ]
    if get_family(family).supports_video:
        clip = write_video(tmp_path / "clip.mp4", n_frames=12, size=(64, 48), fps=4.0)
        parts.append([{"type": "video", "video": str(clip)}])
    samples = [_sample(f"s{i}", p) for i, p in enumerate(parts)]
    collator = VlmCollator(processor, get_family(family), media=MediaSettings(nframes=5))
    for sample in samples:
        batch = collator.training_batch([sample])
        assert collator.sequence_length(sample) == int(batch["attention_mask"][0].sum()), sample.id
