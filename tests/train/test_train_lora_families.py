"""LoRA on every family's tiny checkpoint: only adapters train, the frozen vision tower stays bit-identical, the
loss falls, and the saved adapter reloads to the same outputs."""

from __future__ import annotations

import json

import pytest
import torch
from families import FAMILIES
from train_helpers import base_config
from transformers import TrainerCallback

from vlmkit.config import config_from_dict
from vlmkit.data.collate import VlmCollator
from vlmkit.data.schema import read_samples
from vlmkit.models.loading import load_model
from vlmkit.models.registry import get_family
from vlmkit.train import train


class KeepModel(TrainerCallback):
    """Holds on to the trained model so the test can compare it with the reloaded adapter."""

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_trains_only_adapters_and_reloads(family, tiny_model, image_data, tmp_path):
    base = tiny_model(family)
    before = load_model(base).model.state_dict()
    config = config_from_dict(
        base_config(
            base,
            image_data,
            tmp_path / "run",
            lora={"rank": 8, "alpha": 16},
            optim={"lr": 1e-2},
            train={"batch_size": 4, "max_steps": 24},
        )
    )
    keep = KeepModel()
    result = train(config, callbacks=[keep])

    counts = result.parameters
    assert counts["vision"]["trainable"] == 0 and counts["projector"]["trainable"] == 0
    assert 0 < counts["language_model"]["trainable"] < counts["language_model"]["total"]
    trainable = [n for n, p in keep.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert all(get_family(family).group_of(n) == "language_model" for n in trainable)

    # the frozen vision tower and projector are bit-identical after training
    adapter = get_family(family)
    trained = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in keep.model.state_dict().items()
    }
    frozen = [k for k in before if adapter.group_of(k) in ("vision", "projector")]
    assert frozen and all(torch.equal(before[k], trained[k]) for k in frozen)

    losses = result.losses()
    assert len(losses) == 24
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.3, losses

    manifest = json.loads((result.run_dir / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["parameters"] == counts
    assert manifest["data"]["train"]["sha256"] and manifest["versions"]["peft"]

    # the saved adapter on the base gives the trained model's logits
    reloaded = load_model(base, adapter=result.adapter_dir)
    collator = VlmCollator(reloaded.processor, reloaded.family)
    batch = collator(read_samples(image_data)[:2])
    keep.model.eval()
    with torch.no_grad():
        expected = keep.model(**batch).logits
        got = reloaded.model(**batch).logits
    # the trained model computes patch embeddings as matmuls (models/patch_matmul.py), the reloaded one as the stock
    # convolution: the same values up to float rounding (~1e-5 on these logits)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
