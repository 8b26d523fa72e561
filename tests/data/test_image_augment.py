"""`data.augment`: augmented pixels are a pure function of (seed, epoch, sample id), off means untouched, a video's
frames share one draw, bad parameters are refused by key, and flips that would change answers are refused with the
reason (text-reading tasks, left/right and above/below questions in en / vi / zh)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic_media import make_image

from vlmkit.config import AugmentSection, config_from_dict
from vlmkit.data.collate import VlmCollator
from vlmkit.data.image_augment import Augmenter, EpochItem, describe
from vlmkit.data.image_augment_safety import check_augment
from vlmkit.data.media import Video
from vlmkit.data.schema import Sample
from vlmkit.errors import ConfigError
from vlmkit.models.loading import load_processor
from vlmkit.models.registry import get_family

EVERYTHING = {
    "p": 1.0,
    "brightness": 0.3,
    "contrast": 0.3,
    "saturation": 0.3,
    "hue": 0.05,
    "crop_scale": 0.7,
    "rotation": 8,
    "jpeg_quality": [40, 90],
    "blur_sigma": [0.3, 1.2],
}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("augment-media")
    paths = []
    for i, size in enumerate([(84, 56), (56, 56), (112, 84)]):
        path = root / f"img{i}.png"
        make_image(*size, seed=i).save(path)
        paths.append(str(path))
    return paths


def sample(sid, question="What is shown?", answer="shapes", image=None, source=None):
    content = [{"type": "text", "text": question}]
    if image:
        content.insert(0, {"type": "image", "image": image})
    meta = {"source": source} if source else {}
    messages = [
        {"role": "user", "content": content},
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
    ]
    return Sample.model_validate({"id": sid, "messages": messages, "answers": [answer], "meta": meta})


@pytest.fixture(scope="module")
def processor(tiny_model):
    torch.set_num_threads(1)
    return load_processor(tiny_model("qwen2_vl"), get_family("qwen2_vl"))


def augmenter(seed=3, **settings):
    return Augmenter(AugmentSection(**{**EVERYTHING, **settings}), seed)


def collate(processor, samples, augment=None, epoch=None):
    collator = VlmCollator(processor, get_family("qwen2_vl"), augment=augment)
    items = samples if epoch is None else [EpochItem(s, epoch) for s in samples]
    return collator(items)


def test_seeded_augmentation_is_reproducible_and_changes_with_seed_epoch_and_sample(processor, images):
    samples = [sample(f"s{i}", image=path) for i, path in enumerate(images)]
    plain = collate(processor, samples)
    first = collate(processor, samples, augmenter(seed=3), epoch=0)
    again = collate(processor, samples, augmenter(seed=3), epoch=0)
    assert torch.equal(first["pixel_values"], again["pixel_values"])  # same seed: identical pixels
    assert not torch.equal(first["pixel_values"], plain["pixel_values"])  # augmentation did change them
    assert not torch.equal(
        first["pixel_values"], collate(processor, samples, augmenter(seed=4), epoch=0)["pixel_values"]
    )
    assert not torch.equal(
        first["pixel_values"], collate(processor, samples, augmenter(seed=3), epoch=1)["pixel_values"]
    )
    # sizes are kept, so the token layout (and every length plan made from headers) is unchanged
    assert torch.equal(first["input_ids"], plain["input_ids"]) and torch.equal(first["labels"], plain["labels"])
    assert torch.equal(first["image_grid_thw"], plain["image_grid_thw"])


def test_a_sample_gets_the_same_pixels_whatever_batch_it_lands_in(images):
    aug = augmenter()
    image = make_image(84, 56, seed=7)
    alone = np.asarray(aug.image(image, 2, "s1", 0))
    assert np.array_equal(alone, np.asarray(aug.image(image, 2, "s1", 0)))
    assert not np.array_equal(alone, np.asarray(aug.image(image, 2, "s2", 0)))  # another id: another draw
    assert not np.array_equal(alone, np.asarray(aug.image(image, 2, "s1", 1)))  # another medium of the sample
    torch.manual_seed(0)
    before = torch.get_rng_state()
    aug.image(image, 2, "s1", 0)
    assert torch.equal(before, torch.get_rng_state())  # the global RNG (dropout's) is neither read nor advanced


def test_augment_off_leaves_the_batch_byte_identical(processor, images):
    samples = [sample(f"s{i}", image=path) for i, path in enumerate(images)]
    plain = collate(processor, samples)
    off_section = config_from_dict(
        {"model": {"path": "m"}, "data": {"train": "d", "augment": {"p": 0.5}}}  # a section that sets nothing
    )
    assert Augmenter.from_config(off_section) is None and describe(off_section.data.augment) == "augment: off"
    variants = [
        collate(processor, samples, epoch=0),  # tagged items without an augmenter
        collate(processor, samples, augmenter(p=0.0)),  # an augmenter, but untagged items (evaluation batches)
        collate(processor, samples, augmenter(p=0.0), epoch=0),  # p=0: every coin says no
    ]
    for batch in variants:
        assert batch.keys() == plain.keys()
        for key in plain:
            assert plain[key].dtype == batch[key].dtype and torch.equal(plain[key], batch[key]), key


def test_video_frames_share_one_draw_of_parameters():
    frame = np.asarray(make_image(64, 48, seed=1))
    video = Video(frames=np.stack([frame] * 4), fps=4.0, duration_s=1.0, frame_indices=[0, 1, 2, 3], source="v")
    out = augmenter(hflip=0.0).video(video, 0, "vid-1", 0)
    assert out.frames.shape == video.frames.shape and out.frames.dtype == np.uint8
    assert not np.array_equal(out.frames[0], frame)
    assert all(np.array_equal(out.frames[0], f) for f in out.frames[1:])  # identical frames stay identical
    again = augmenter(hflip=0.0).video(video, 0, "vid-1", 0)
    assert np.array_equal(again.frames, out.frames)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.augment.rotation=45", r"data\.augment\.rotation: .*less than or equal to 30"),
        ("data.augment.brightness=0.9", r"data\.augment\.brightness: .*less than or equal to 0.5"),
        ("data.augment.hue=-0.1", r"data\.augment\.hue: .*greater than or equal to 0"),
        ("data.augment.crop_scale=0.2", r"data\.augment\.crop_scale: .*greater than or equal to 0.5"),
        ("data.augment.p=1.5", r"data\.augment\.p: "),
        ("data.augment.jpeg_quality=[5,90]", r"data\.augment\.jpeg_quality: needs \[low, high\] with 20 <= low"),
        ("data.augment.jpeg_quality=[90,60]", r"data\.augment\.jpeg_quality: "),
        ("data.augment.blur_sigma=[0,1]", r"data\.augment\.blur_sigma: needs \[low, high\] with 0 < low"),
        ("data.augment.blur_sigma=[1,5]", r"data\.augment\.blur_sigma: "),
        ("data.augment.hflip=2", r"data\.augment\.hflip: "),
        ("data.augment.hflp=0.5", r"data\.augment\.hflp: unknown key \(did you mean 'data\.augment\.hflip'\?\)"),
    ],
)
def test_out_of_range_parameters_are_refused_by_key(override, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"model": {"path": "m"}, "data": {"train": "d"}}, [override])


def settings(**values):
    return AugmentSection(**values)


@pytest.mark.parametrize("source", ["docvqa", "textvqa", "chartqa", "infovqa", "vitextvqa", "OCR-VQA"])
def test_flips_and_large_rotations_are_refused_for_text_reading_tasks(source):
    samples = [sample(f"{source}-{i}", source=source) for i in range(3)]
    with pytest.raises(ConfigError, match=rf"data\.augment\.hflip: a horizontal flip mirrors text.*{source}.*3 of 3"):
        check_augment(settings(hflip=0.5), samples, None)
    with pytest.raises(ConfigError, match=r"data\.augment\.vflip: a vertical flip turns text upside down"):
        check_augment(settings(vflip=0.1), samples, None)
    with pytest.raises(ConfigError, match=r"data\.augment\.rotation: 20 degrees is over the 10 allowed.*text-reading"):
        check_augment(settings(rotation=20, p=0.5), samples, None)
    check_augment(settings(rotation=5, brightness=0.2, jpeg_quality=(50, 90)), samples, None)  # safe ones pass
    check_augment(settings(hflip=0.5), [sample("x", source="vizwiz")], None)  # not a text-reading source


def test_text_reading_is_found_from_the_folder_and_can_be_declared(tmp_path):
    folder = tmp_path / "ChartQA-train"
    folder.mkdir()
    plain = [sample("a"), sample("b")]
    with pytest.raises(ConfigError, match=r"data\.augment\.hflip: .*the dataset folder is named 'ChartQA-train'"):
        check_augment(settings(hflip=0.5), plain, str(folder))
    check_augment(settings(hflip=0.5, text_reading=False), plain, str(folder))
    with pytest.raises(ConfigError, match=r"text_reading: true"):
        check_augment(settings(hflip=0.5, text_reading=True), plain, str(tmp_path))


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is on the left of the cup?", "a spoon"),
        ("Which side is the door on?", "Right."),
        ("Cái gì ở bên trái cái bàn?", "cái ghế"),
        ("Người đàn ông rẽ phải hay đi thẳng?", "đi thẳng"),
        ("左边的杯子是什么颜色?", "红色"),
        ("What is the rightmost sign?", "stop"),
    ],
)
def test_hflip_is_refused_when_questions_or_answers_are_about_left_and_right(question, answer):
    samples = [sample("q0"), sample("q1", question, answer), sample("q2")]
    with pytest.raises(ConfigError) as error:
        check_augment(settings(hflip=0.5), samples, None)
    text = str(error.value)
    assert text.startswith("data.augment.hflip: 1 of 3 training samples ask or answer about left or right")
    assert "'q1'" in text and "Set hflip: 0" in text
    check_augment(settings(vflip=0.5), samples, None)  # a vertical flip keeps left and right


@pytest.mark.parametrize(
    "question",
    [
        "Is this the right answer?",
        "How many apples are left?",
        "Có phải là con mèo không?",
        "Đây là trái cây gì?",
        "这个人大约三十岁左右吗?",
    ],
)
def test_words_that_only_look_like_left_or_right_do_not_refuse(question):
    check_augment(settings(hflip=0.5), [sample("q", question, "yes")], None)


def test_vflip_is_refused_when_questions_are_about_above_and_below():
    samples = [sample("v0", "What is on top of the shelf?", "a box"), sample("v1", "Cái gì ở phía dưới?", "sàn")]
    with pytest.raises(ConfigError, match=r"data\.augment\.vflip: 2 of 2 training samples .* above or below .*'v0'"):
        check_augment(settings(vflip=0.5), samples, None)


def test_video_samples_are_augmented_in_the_batch_with_the_same_grid(processor, tmp_path):
    from synthetic_media import write_video

    clip = str(write_video(tmp_path / "clip.mp4", n_frames=4, size=(56, 56)))
    content = [{"type": "video", "video": clip}, {"type": "text", "text": "What happens?"}]
    messages = [{"role": "user", "content": content}, {"role": "assistant", "content": "a square moves"}]
    samples = [Sample.model_validate({"id": "vid-0", "messages": messages})]
    plain = collate(processor, samples)
    first = collate(processor, samples, augmenter(), epoch=0)
    again = collate(processor, samples, augmenter(), epoch=0)
    assert torch.equal(first["pixel_values_videos"], again["pixel_values_videos"])
    assert not torch.equal(first["pixel_values_videos"], plain["pixel_values_videos"])
    assert torch.equal(first["video_grid_thw"], plain["video_grid_thw"])
    assert torch.equal(first["input_ids"], plain["input_ids"])
