"""`data.packing` in real runs: rows reach the model without padding or attention mask, the manifest and --check
report the packing, resume sees the same rows, and full fine-tuning, gradient checkpointing and video work."""

from __future__ import annotations

import json

import pytest
from train_helpers import base_config, write_config
from transformers import TrainerCallback

from vlmkit.cli import main
from vlmkit.config import config_from_dict
from vlmkit.train import train


class Batches(TrainerCallback):
    """What the model was called with during training: rows, tokens, samples per row (from the position ids)."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, margs, mkwargs):
            if module.training:
                positions = mkwargs["position_ids"]
                text = positions[0] if positions.ndim == 3 else positions
                self.calls.append(
                    {
                        "mask": mkwargs.get("attention_mask"),
                        "shape": tuple(mkwargs["input_ids"].shape),
                        "starts": int((text == 0).sum()),
                        "video": mkwargs.get("pixel_values_videos") is not None,
                    }
                )

        model.register_forward_pre_hook(hook, with_kwargs=True)


def _config(model, dataset, out, **sections):
    sections["data"] = {"packing": True, **sections.get("data", {})}
    return config_from_dict(base_config(model, dataset, out, **sections))


def test_packed_lora_run_feeds_rows_and_records_packing(tiny_model, image_data, tmp_path):
    seen = Batches()
    config = _config(tiny_model("qwen2_vl"), image_data, tmp_path / "run", train={"batch_size": 4, "max_steps": 3})
    result = train(config, callbacks=[seen])
    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    packing = manifest["packing"]
    assert packing["samples"] == 8 and 0 < packing["efficiency"] <= 1
    # no max_length: a row has room for batch_size samples of mean length, and a micro-batch is one row
    assert packing["rows"] == 2 and packing["rows_per_batch"] == 1
    assert packing["attention"] == "segment_sdpa"  # SDPA per sample, not one block-masked call per row
    assert all(call["mask"] is None and call["shape"][0] == 1 for call in seen.calls)
    assert any(call["starts"] >= 2 for call in seen.calls)  # some row holds more than one sample
    assert len(result.losses()) == 3 and all(loss > 0 for loss in result.losses())


def test_check_reports_rows_and_efficiency(tiny_model, image_data, tmp_path, capsys):
    # no data.packing in the config: packing is the default
    config = base_config(tiny_model("qwen2_vl"), image_data, tmp_path / "run", data={"max_length": 160})
    path = write_config(tmp_path / "run.yaml", config)
    main(["train", str(path), "--check"])
    out = capsys.readouterr().out
    assert "ok: qwen2_vl checkpoint, 8 training samples" in out
    assert "packing: 8 samples in 2 rows of up to 160 tokens, efficiency" in out
    assert not (tmp_path / "run").exists()  # --check trains nothing


def test_packed_resume_matches_uninterrupted_run(tiny_model, image_data, tmp_path):
    from test_train_resume import StopAfter

    def config(out):
        return _config(
            tiny_model("qwen2_vl"),
            image_data,
            out,
            data={"max_length": 80},  # two samples a row, four rows, one row a micro-batch
            lora={"rank": 4, "alpha": 8, "dropout": 0.1},
            train={"batch_size": 2, "max_steps": 6, "seed": 3},
            save={"every": 2, "keep_last": 1},
        )

    straight = train(config(tmp_path / "straight"))
    train(config(tmp_path / "interrupted"), callbacks=[StopAfter(3)])
    resumed = train(config(tmp_path / "interrupted"), resume=True)
    assert resumed.losses() == straight.losses()


@pytest.mark.parametrize("family", ["qwen3_vl", "smolvlm"])
def test_packed_full_fine_tune_with_gradient_checkpointing(family, tiny_model, image_data, tmp_path):
    config = _config(
        tiny_model(family),
        image_data,
        tmp_path / "run",
        method="full",
        optim={"lr": 1e-3},
        train={"batch_size": 2, "max_steps": 4, "gradient_checkpointing": True},
    )
    result = train(config)
    losses = result.losses()
    assert len(losses) == 4 and losses[-1] < losses[0]
    # the training-only attention is not written into the saved model: it loads as any checkpoint does
    saved = json.loads((result.run_dir / "model" / "config.json").read_text())
    assert "segment_sdpa" not in json.dumps(saved)


def test_packed_video_rows(tiny_model, video_data, tmp_path):
    seen = Batches()
    config = _config(
        tiny_model("qwen2_5_vl"),
        video_data,
        tmp_path / "run",
        data={"nframes": 4, "max_length": 400},
        optim={"lr": 2e-2},
        train={"batch_size": 1, "max_steps": 2},
    )
    result = train(config, callbacks=[seen])
    assert all(call["video"] and call["starts"] >= 2 for call in seen.calls)
    assert result.losses()[-1] < result.losses()[0]
