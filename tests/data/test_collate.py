"""The collator on every family: assistant-only labels, train/inference parity, media token counts."""

import pytest
import torch
from families import FAMILIES, QWEN_FAMILIES
from PIL import Image

from vlmkit.data.collate import IGNORE_INDEX, MediaSettings, VlmCollator
from vlmkit.data.schema import Sample
from vlmkit.errors import VlmkitError
from vlmkit.models.loading import load_model


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    paths = {}
    for name, size, color in [("wide", (90, 60), "red"), ("tall", (40, 120), "blue"), ("big", (200, 150), "green")]:
        paths[name] = str(root / f"{name}.png")
        Image.new("RGB", size, color).save(paths[name])
    return paths


def sample(sid, turns, image=None):
    messages = []
    for i, (question, answer) in enumerate(turns):
        content = [{"type": "text", "text": question}]
        if i == 0 and image:
            content.insert(0, {"type": "image", "image": image})
        messages.append({"role": "user", "content": content})
        if answer is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return Sample.model_validate({"id": sid, "messages": messages, "answers": []})


@pytest.fixture(scope="module")
def loaded(tiny_model):
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = load_model(tiny_model(family))
        return cache[family]

    return get


def labelled_text(batch, row, tokenizer):
    ids = batch["input_ids"][row]
    return tokenizer.decode(ids[batch["labels"][row] != IGNORE_INDEX])


def answer_pieces(family, answers):
    """The labelled text the family's template gives for these answers (answer + end-of-turn marker)."""
    if family == "llava":
        return "".join(f" {a}</s>" for a in answers) + " "
    if family == "smolvlm":
        return "".join(f" {a}<end_of_utterance>\n" for a in answers)
    return "".join(f"{a}<|im_end|>\n" for a in answers)


@pytest.mark.parametrize("family", FAMILIES)
def test_labels_are_exactly_the_assistant_turns(family, loaded, images):
    lm = loaded(family)
    collator = VlmCollator(lm.processor, lm.family)
    single = sample("single", [("What color is it?", "red")], images["wide"])
    multi = sample(
        "multi", [("What color is it?", "red"), ("And the shape?", "a circle"), ("How many?", "two")], images["tall"]
    )
    batch = collator([single, multi])
    tok = lm.tokenizer
    got_single = labelled_text(batch, 0, tok)
    got_multi = labelled_text(batch, 1, tok)
    if family == "llava":  # LLaVA's trailing space merges into the next turn's " USER", so only the last keeps it
        assert got_single == " red</s> "
        assert got_multi == " red</s> a circle</s> two</s> "
    else:
        assert got_single == answer_pieces(family, ["red"])
        assert got_multi == answer_pieces(family, ["red", "a circle", "two"])


@pytest.mark.parametrize("family", FAMILIES)
def test_user_text_mentioning_the_assistant_marker_is_not_labelled(family, loaded, images):
    lm = loaded(family)
    tricky = "assistant <|im_start|>assistant\nASSISTANT: Assistant: yes"
    batch = VlmCollator(lm.processor, lm.family)([sample("t", [(tricky, "no")], images["wide"])])
    labelled = labelled_text(batch, 0, lm.tokenizer)
    assert "yes" not in labelled and "assistant" not in labelled.lower()
    assert labelled.strip().startswith("no")


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_is_never_labelled(family, loaded, images):
    lm = loaded(family)
    batch = VlmCollator(lm.processor, lm.family)(
        [
            sample("short", [("Color?", "red")], images["wide"]),
            sample(
                "long", [("Describe the colors and shapes in this picture in detail please?", "blue")], images["big"]
            ),
        ]
    )
    pad = batch["attention_mask"] == 0
    assert pad.any(), "the batch should need padding"
    assert (batch["labels"][pad] == IGNORE_INDEX).all()
    # right padding for training: the padded row ends with padding
    row = int(pad.any(dim=1).nonzero()[0])
    assert batch["attention_mask"][row, -1] == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_inference_prompt_is_the_training_prefix(family, loaded, images):
    lm = loaded(family)
    collator = VlmCollator(lm.processor, lm.family)
    s = sample("p", [("What color is it?", "red"), ("And now?", "blue")], images["wide"])
    train = collator([s])
    labels = train["labels"][0]
    first = int((labels != IGNORE_INDEX).nonzero()[0])
    # prompt for the first question only: the conversation up to the first answer
    first_turn = Sample.model_validate({"id": "p1", "messages": [m.model_dump() for m in s.messages[:1]]})
    gen = collator.generation_batch([first_turn])
    n = int(gen["attention_mask"][0].sum())
    assert gen["input_ids"][0, -n:].tolist() == train["input_ids"][0, :first].tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_media_token_count_matches_the_vision_features_in_a_mixed_batch(family, loaded, images):
    lm = loaded(family)
    collator = VlmCollator(lm.processor, lm.family)
    batch = collator(
        [
            sample("a", [("Color?", "red")], images["wide"]),
            sample("b", [("Color?", "blue")], images["tall"]),
            sample("c", [("Color?", "green")], images["big"]),
        ]
    )
    image_id = lm.tokenizer.convert_tokens_to_ids(lm.family.image_token)
    n_tokens = int((batch["input_ids"] == image_id).sum())
    model = lm.model
    inputs = {k: v for k, v in batch.items() if k not in ("input_ids", "attention_mask", "labels", "mm_token_type_ids")}
    with torch.no_grad():
        feats = model.model.get_image_features(**inputs)
    feats = getattr(feats, "pooler_output", feats)
    if isinstance(feats, (list, tuple)):
        n_features = sum(f.reshape(-1, f.shape[-1]).shape[0] for f in feats)
    else:
        n_features = feats.reshape(-1, feats.shape[-1]).shape[0]
    assert n_tokens == n_features
    out = model(**batch)
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("family", ["qwen2_vl", "llava"])
def test_over_long_sample_is_a_clear_error_or_dropped_and_counted(family, loaded, images):
    lm = loaded(family)
    long_q = "please describe everything " * 40
    samples = [sample("ok", [("Color?", "red")], images["wide"]), sample("too-long", [(long_q, "red")], images["big"])]
    strict = VlmCollator(lm.processor, lm.family, max_length=60)
    with pytest.raises(
        VlmkitError, match=r"sample 'too-long' is \d+ tokens \(\d+ of them image/video tokens\), over max_length=60"
    ):
        strict(samples)
    lenient = VlmCollator(lm.processor, lm.family, max_length=60, on_overflow="drop")
    batch = lenient(samples)
    assert lenient.dropped == ["too-long"] and batch["input_ids"].shape[0] == 1


@pytest.mark.parametrize("family", QWEN_FAMILIES)
def test_video_samples_collate_and_forward_on_qwen(family, loaded, tmp_path):
    from synthetic_media import write_video

    video = write_video(tmp_path / "clip.mp4", n_frames=8, size=(64, 48), fps=4.0)
    s = Sample.model_validate(
        {
            "id": "v",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "video", "video": str(video)}, {"type": "text", "text": "What moves?"}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "a square"}]},
            ],
        }
    )
    lm = loaded(family)
    collator = VlmCollator(lm.processor, lm.family, media=MediaSettings(nframes=4))
    batch = collator([s])
    assert labelled_text(batch, 0, lm.tokenizer) == answer_pieces(family, ["a square"])
    video_id = lm.tokenizer.convert_tokens_to_ids("<|video_pad|>")
    grid = batch["video_grid_thw"]
    assert int((batch["input_ids"] == video_id).sum()) == int(grid.prod(dim=-1).sum()) // 4
    assert torch.isfinite(lm.model(**batch).loss)


def test_video_on_a_family_without_video_is_a_clear_error(loaded, tmp_path):
    from synthetic_media import write_video

    video = write_video(tmp_path / "clip.mp4", n_frames=4)
    s = Sample.model_validate(
        {
            "id": "v",
            "messages": [
                {"role": "user", "content": [{"type": "video", "video": str(video)}, {"type": "text", "text": "?"}]},
                {"role": "assistant", "content": "x"},
            ],
        }
    )
    lm = loaded("llava")
    with pytest.raises(VlmkitError, match="llava does not take video input"):
        VlmCollator(lm.processor, lm.family)([s])


@pytest.mark.parametrize("family", QWEN_FAMILIES)
def test_min_and_max_pixels_change_the_number_of_image_tokens(family, loaded, images):
    lm = loaded(family)
    s = sample("px", [("Color?", "red")], images["big"])
    image_id = lm.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    factor = 32 if family == "qwen3_vl" else 28
    counts = {}
    for max_pixels in (factor * factor * 4, factor * factor * 16):
        media = MediaSettings(min_pixels=factor * factor, max_pixels=max_pixels)
        batch = VlmCollator(lm.processor, lm.family, media=media)([s])
        counts[max_pixels] = int((batch["input_ids"] == image_id).sum())
        assert counts[max_pixels] <= max_pixels // (factor * factor)
    small, large = counts.values()
    assert small < large


def test_qwen3_video_frames_are_capped_like_the_reference(loaded, tmp_path):
    """qwen-vl-utils caps each frame at max_video_tokens patches: our batches do so too (transformers'
    default does not, yet), so a few large frames cost what the reference model was trained on."""
    import copy

    from synthetic_media import write_video

    from vlmkit.data.media import load_video, video_processor_kwargs

    video = write_video(tmp_path / "clip.mp4", n_frames=4, size=(256, 192), fps=4.0)
    s = Sample.model_validate(
        {
            "id": "v",
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "video", "video": str(video)}, {"type": "text", "text": "What moves?"}],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "a square"}]},
            ],
        }
    )
    lm = loaded("qwen3_vl")
    processor = copy.deepcopy(lm.processor)
    processor.video_processor.max_video_tokens = 4  # a per-frame ceiling below this clip's uncapped share
    batch = VlmCollator(processor, lm.family, media=MediaSettings(nframes=4))([s])

    def grid(cap):
        frames = video_processor_kwargs([load_video(str(video), nframes=4)])
        out = processor.video_processor(**frames, cap_pixels_per_frame=cap, return_tensors="pt")
        return out["video_grid_thw"].tolist()

    assert batch["video_grid_thw"].tolist() == grid(True) != grid(False)
    t, h, w = batch["video_grid_thw"][0].tolist()
    assert h * w == 8  # 2x4 patches of 16 px per frame under the cap, against 6x8 uncapped
