"""Issue 18, "eval resume mixes models": a run folder is resumed only by the same weights. New weights under
the same path are refused (the manifest holds a fingerprint of the weights and adapter), and the same model
named by a relative and by an absolute path is accepted (paths are compared resolved, not as strings)."""

import json
import shutil

import pytest
from eval_helpers import write_dataset

from vlmkit.data.schema import Sample
from vlmkit.errors import VlmkitError
from vlmkit.eval import GenerationSettings, Task, evaluate
from vlmkit.eval.engine import load_predict_fn

pytestmark = pytest.mark.slow


def _dataset(root):
    samples = [
        Sample(id=f"q{i}", messages=[{"role": "user", "content": f"Say {i}"}], answers=[str(i)]) for i in range(4)
    ]
    return write_dataset(root, samples)


def _run(model, data, out, **kwargs):
    predict, facts = load_predict_fn(model, batch_size=2, **kwargs)
    task = Task(name="say", metrics=("exact_match",), generation=GenerationSettings(max_new_tokens=2))
    return evaluate(predict, task, data, out, batch_size=2, manifest=facts, make_plots=False, slice="0:2")


def test_resume_accepts_the_same_model_by_another_path_and_refuses_new_weights(tiny_model, tmp_path, monkeypatch):
    from vlmkit.models.tiny import build_tiny

    shutil.copytree(tiny_model("qwen2_vl"), tmp_path / "tiny")
    data, out = _dataset(tmp_path / "data"), tmp_path / "run"
    monkeypatch.chdir(tmp_path)
    assert _run("tiny", data, out).predicted == 2

    manifest = json.loads((out / "manifest.json").read_text())
    weights = manifest["fingerprint"]["model"]
    assert any(name.endswith(".safetensors") for name in weights["files"]) and weights["config_sha256"]
    assert manifest["model_path"] == str((tmp_path / "tiny").resolve())

    # the same folder by its absolute path: the same model, so the run resumes with nothing to redo
    assert _run(str((tmp_path / "tiny").resolve()), data, out).predicted == 0

    # other weights written into the same folder: refused, not mixed into one run
    other = build_tiny("qwen2_vl", tmp_path / "other", seed=1)
    for path in other.glob("*.safetensors"):
        shutil.copyfile(path, tmp_path / "tiny" / path.name)
    with pytest.raises(VlmkitError, match="different fingerprint"):
        _run("tiny", data, out)
