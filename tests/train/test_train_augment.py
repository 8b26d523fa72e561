"""`data.augment` in real runs: the augmenter sees every training image tagged with its epoch, a run interrupted at a
checkpoint and resumed ends bit-exact with an uninterrupted one (length-grouped, shuffled and packed orders), a
DataLoader worker augments as the main process does, the manifest records the settings, and `train --check` shows
them or refuses a flip with its reason."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from safetensors.torch import load_file
from test_train_resume import StopAfter
from train_helpers import base_config, write_config

from vlmkit.cli import main
from vlmkit.config import config_from_dict
from vlmkit.data.image_augment import Augmenter
from vlmkit.train import train

AUGMENT = {
    "p": 0.8,
    "brightness": 0.3,
    "contrast": 0.3,
    "saturation": 0.2,
    "hue": 0.05,
    "crop_scale": 0.7,
    "rotation": 8,
    "jpeg_quality": [40, 90],
    "blur_sigma": [0.3, 1.5],
}
LAYOUTS = {
    "grouped": {},
    "shuffled": {"train": {"group_by_length": False}},
    "packed": {"data": {"packing": True, "max_length": 80}},  # two samples a row, one row a micro-batch
}


def _config(model, data, out, layout="grouped", max_steps=8, augment=AUGMENT, **train_options):
    # 8 samples, 2 a step: 4 steps an epoch, so checkpoint-6 resumes in the second epoch, whose images must differ
    # from the first's and match the uninterrupted run's.
    sections = LAYOUTS[layout]
    return config_from_dict(
        base_config(
            model,
            data,
            out,
            data={"augment": augment, **sections.get("data", {})},
            lora={"rank": 4, "alpha": 8, "dropout": 0.1},
            optim={"lr": 5e-3, "scheduler": "cosine", "warmup_steps": 2},
            train={"batch_size": 2, "max_steps": max_steps, "seed": 3, **sections.get("train", {}), **train_options},
            save={"every": 3, "keep_last": 2},
        )
    )


@pytest.fixture
def draws(monkeypatch):
    """(epoch, sample id, hash of the augmented pixels) for every image the augmenter is asked for, in order."""
    seen = []
    original = Augmenter.image

    def spy(self, image, epoch, sample_id, position):
        out = original(self, image, epoch, sample_id, position)
        seen.append((epoch, sample_id, hashlib.sha256(np.asarray(out).tobytes()).hexdigest()))
        return out

    monkeypatch.setattr(Augmenter, "image", spy)
    return seen


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_augmented_resume_matches_uninterrupted_run(layout, tiny_model, image_data, tmp_path, draws):
    model = tiny_model("qwen2_vl")
    straight = train(_config(model, image_data, tmp_path / "straight", layout))
    straight_draws = list(draws)
    assert {epoch for epoch, _, _ in straight_draws} == {0, 1} and len(straight_draws) == 16
    first_epoch = {sid: digest for epoch, sid, digest in straight_draws if epoch == 0}
    second_epoch = {sid: digest for epoch, sid, digest in straight_draws if epoch == 1}
    assert first_epoch.keys() == second_epoch.keys() and first_epoch != second_epoch  # new variants each epoch

    interrupted = tmp_path / "interrupted"
    train(_config(model, image_data, interrupted, layout), callbacks=[StopAfter(7)])
    draws.clear()
    resumed = train(_config(model, image_data, interrupted, layout), resume=True)

    assert draws == straight_draws[-len(draws) :] and len(draws) == 4  # steps 7-8 saw the same images
    assert resumed.global_step == straight.global_step == 8
    assert resumed.losses() == straight.losses()
    a = load_file(straight.adapter_dir / "adapter_model.safetensors")
    b = load_file(resumed.adapter_dir / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    manifest = json.loads((straight.run_dir / "manifest.json").read_text())
    assert manifest["augment"]["rotation"] == 8 and manifest["augment"]["jpeg_quality"] == [40, 90]
    assert manifest["augment"]["seed"] == 3


def test_a_dataloader_worker_augments_as_the_main_process_does(tiny_model, image_data, tmp_path):
    model = tiny_model("qwen2_vl")
    in_process = train(_config(model, image_data, tmp_path / "main", max_steps=4))
    in_worker = train(_config(model, image_data, tmp_path / "worker", max_steps=4, num_workers=1))
    assert in_worker.losses() == in_process.losses()
    plain = train(_config(model, image_data, tmp_path / "plain", max_steps=4, augment=None))
    assert plain.losses() != in_process.losses()  # the augmentation reached the model
    assert json.loads((plain.run_dir / "manifest.json").read_text())["augment"] is None


def test_check_shows_the_settings_and_refuses_a_flip_with_its_reason(tiny_model, image_data, tmp_path, capsys):
    config = base_config(tiny_model("qwen2_vl"), image_data, tmp_path / "run", data={"augment": AUGMENT})
    path = write_config(tmp_path / "run.yaml", config)
    main(["train", str(path), "--check"])
    out = capsys.readouterr().out
    assert "augment: colour jitter (brightness 0.3, contrast 0.3, saturation 0.2, hue 0.05)" in out
    assert "rotation +-8 deg" in out and "JPEG quality 40-90" in out and "each with p=0.8" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(path), "--check", "data.augment.hflip=0.5", "data.augment.text_reading=true"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "data.augment.hflip: a horizontal flip mirrors text" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
