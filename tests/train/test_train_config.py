"""The run config: validation names the key, overrides, path resolution, and checks before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from train_helpers import base_config, write_config, write_video_dataset

from vlmkit.cli import main
from vlmkit.config import config_from_dict, load_config, parse_overrides
from vlmkit.errors import ConfigError, DataError
from vlmkit.train import train


def _header_only_model(folder: Path, model_type: str = "qwen2_vl", processor_class: str | None = None) -> Path:
    """A model folder with a config.json and no weights: any attempt to load the model would fail loudly, so a
    test that gets the expected config error proves the check ran before loading."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    if processor_class:
        (folder / "processor_config.json").write_text(json.dumps({"processor_class": processor_class}))
    return folder


def test_defaults_and_derived_values(tmp_path):
    config = config_from_dict({"model": {"path": "Qwen/Qwen2-VL-2B-Instruct"}, "data": {"train": "d"}})
    assert config.method == "lora" and config.lora.targets == "default"
    assert config.freeze.resolved("lora") == {"vision": True, "projector": True, "language_model": True}
    assert config.freeze.resolved("full") == {"vision": True, "projector": False, "language_model": False}
    assert config.tracking.backends == ["tensorboard"]
    assert config.run_dir() == Path("runs/run")


def test_paths_resolve_against_the_config_file_and_hub_ids_stay(tmp_path):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "cfg").mkdir()
    path = write_config(
        tmp_path / "cfg" / "exp.yaml",
        {"model": {"path": "../models/tiny"}, "data": {"train": "../data/train", "eval": "val"}},
    )
    config = load_config(path)
    assert config.model.path == str((tmp_path / "models" / "tiny").resolve())
    assert config.data.train == str((tmp_path / "data" / "train").resolve())
    assert config.data.eval == str((tmp_path / "cfg" / "val").resolve())
    assert config.name == "exp" and config.source == path.resolve()
    hub = load_config(path, ["model.path=Qwen/Qwen2-VL-2B-Instruct"])
    assert hub.model.path == "Qwen/Qwen2-VL-2B-Instruct"


def test_overrides_are_typed_and_nested(tmp_path):
    patch = parse_overrides(
        [
            "lora.rank=16",
            "lora.targets=[q_proj, v_proj]",
            "train.gradient_checkpointing=true",
            "optim.lr=1e-4",
            "data.eval=null",
        ]
    )
    assert patch == {
        "lora": {"rank": 16, "targets": ["q_proj", "v_proj"]},
        "train": {"gradient_checkpointing": True},
        "optim": {"lr": 1e-4},
        "data": {"eval": None},
    }
    config = config_from_dict({"model": {"path": "m"}, "data": {"train": "d"}}, ["lora.rank=16", "optim.lr=1e-4"])
    assert config.lora.rank == 16 and config.optim.lr == 1e-4
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        parse_overrides(["lora.rank"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["lora.rnk=8"], r"lora\.rnk: unknown key \(did you mean 'lora\.rank'\?\)"),
        (["lora.rank=0"], r"lora\.rank: Input should be greater than or equal to 1 \(got 0\)"),
        (["method=dora"], r"method: Input should be 'lora', 'qlora' or 'full'"),
        (["optim.scheduler=exp"], r"optim\.scheduler: Input should be 'cosine', 'linear' or 'constant'"),
        (["data.nframes=8", "data.fps=2"], r"data: set either nframes or fps"),
        (["trian.max_steps=3"], r"trian: unknown key \(did you mean 'train'\?\)"),
        (["eval.every=10"], r"eval\.every: needs a held-out set in data\.eval"),
        (["freeze.language_model=false"], r"freeze\.language_model: false .* Use method: full"),
        (["model.family=qwen9"], r"model\.family: unknown family 'qwen9'"),
        (["lora.dropout=1.5"], r"lora\.dropout: Input should be less than 1"),
    ],
)
def test_invalid_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"model": {"path": "m"}, "data": {"train": "d"}}, overrides)


def test_missing_required_section_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="data: required key is missing"):
        load_config(write_config(tmp_path / "a.yaml", {"model": {"path": "m"}}))
    (tmp_path / "b.yaml").write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="b.yaml: not valid YAML"):
        load_config(tmp_path / "b.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_missing_data_folder_fails_before_the_model_loads(tmp_path):
    model = _header_only_model(tmp_path / "model")
    config = config_from_dict(base_config(model, tmp_path / "nowhere", tmp_path / "run"))
    with pytest.raises(ConfigError, match=r"data\.train: .*nowhere does not exist"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_family_mismatch_fails_before_the_model_loads(tmp_path, image_data):
    model = _header_only_model(tmp_path / "model", "qwen2_vl")
    config = config_from_dict(
        base_config(model, image_data, tmp_path / "run", model={"path": str(model), "family": "llava"})
    )
    with pytest.raises(ConfigError, match=r"model\.family: the config says 'llava' but .* is a qwen2_vl checkpoint"):
        train(config)


def test_processor_of_another_family_is_refused(tmp_path, image_data):
    model = _header_only_model(tmp_path / "model", "qwen2_vl")
    processor = _header_only_model(tmp_path / "processor", "llava", processor_class="LlavaProcessor")
    config = config_from_dict(
        base_config(model, image_data, tmp_path / "run", model={"path": str(model), "processor": str(processor)})
    )
    with pytest.raises(ConfigError, match=r"model\.processor: .* is a LlavaProcessor, .* qwen2_vl family"):
        train(config)
    wrong_own = _header_only_model(tmp_path / "model2", "qwen2_vl", processor_class="SmolVLMProcessor")
    with pytest.raises(ConfigError, match=r"model\.path: .* SmolVLMProcessor"):
        train(config_from_dict(base_config(wrong_own, image_data, tmp_path / "run")))


def test_unsupported_model_type_and_missing_model(tmp_path, image_data):
    odd = _header_only_model(tmp_path / "odd", "bert")
    with pytest.raises(ConfigError, match=r"model\.path: .*model_type 'bert' is not supported"):
        train(config_from_dict(base_config(odd, image_data, tmp_path / "run")))
    with pytest.raises(ConfigError, match=r"model\.path: .*not a model folder"):
        train(config_from_dict(base_config(tmp_path, image_data, tmp_path / "run")))


def test_video_data_for_an_image_only_family_is_refused(tmp_path):
    model = _header_only_model(tmp_path / "model", "llava")
    videos = write_video_dataset(tmp_path / "clips", n=1)
    with pytest.raises(DataError, match=r"sample 'vid-0' has a video, and llava models take images only"):
        train(config_from_dict(base_config(model, videos, tmp_path / "run")))


def test_missing_tracking_package_is_a_clear_error(tmp_path, image_data, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "wandb", None)  # as if absent: find_spec gives None, import raises
    model = _header_only_model(tmp_path / "model")
    config = config_from_dict(base_config(model, image_data, tmp_path / "run", tracking={"backends": ["wandb"]}))
    with pytest.raises(ConfigError, match=r"tracking\.backends: wandb needs the 'wandb' package.*pip install"):
        train(config)


def test_cli_reports_config_errors_in_one_line(tmp_path, image_data, capsys):
    model = _header_only_model(tmp_path / "model")
    path = write_config(tmp_path / "run.yaml", base_config(model, image_data, tmp_path / "run"))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", str(path), "lora.rank=0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "lora.rank" in err and "Traceback" not in err
    main(["train", str(path), "--check"])
    assert "ok: qwen2_vl checkpoint, 8 training samples" in capsys.readouterr().out


def test_resolved_config_round_trips(tmp_path):
    config = config_from_dict({"model": {"path": "m"}, "data": {"train": "d"}}, ["lora.targets=[q_proj]"])
    again = config_from_dict(yaml.safe_load(config.to_yaml()))
    assert again == config


def test_out_is_applied_in_one_place_resolved_and_keeping_the_config_source(tmp_path, image_data, monkeypatch):
    from vlmkit.train.runner import resolve_run_config

    model = _header_only_model(tmp_path / "model")
    (tmp_path / "cfg").mkdir()
    path = write_config(tmp_path / "cfg" / "run.yaml", base_config(model, image_data, tmp_path / "run"))
    monkeypatch.chdir(tmp_path)
    config = resolve_run_config(path, ["lora.rank=4"], "relative-out")
    assert config.output_dir == str(tmp_path / "relative-out") and config.lora.rank == 4
    assert config.source == path.resolve()  # the manifest's config_dir comes from it
    assert resolve_run_config(config, [], None) is config


def test_a_sample_over_max_length_fails_before_the_first_step_naming_it(tmp_path, image_data, tiny_model):
    from vlmkit.data.collate import VlmCollator
    from vlmkit.data.schema import read_samples
    from vlmkit.models.loading import load_model

    model = tiny_model("qwen2_vl")
    loaded = load_model(model)
    collator = VlmCollator(loaded.processor, loaded.family)
    lengths = {s.id: collator.sequence_length(s) for s in read_samples(image_data)}
    longest = max(lengths, key=lengths.get)
    limit = max(8, lengths[longest] - 1)  # exactly one token too short for the longest sample
    config = config_from_dict(base_config(model, image_data, tmp_path / "run", data={"max_length": limit}))
    with pytest.raises(ConfigError, match=rf"sample '{longest}' is {lengths[longest]} tokens .* max_length={limit}"):
        train(config)
    assert not list((tmp_path / "run").glob("checkpoints/*"))


@pytest.mark.parametrize(
    "packing,num_workers", [(False, 0), (False, 1), (True, 1)], ids=["unpacked", "unpacked-worker", "packed-worker"]
)
def test_the_manifest_names_every_sample_dropped_for_length_also_from_dataloader_workers(
    tmp_path, image_data, tiny_model, packing, num_workers
):
    """data.on_overflow: drop. The samples dropped are known from their exact lengths before training, so a batch
    built in a DataLoader worker process cannot keep them from the manifest (its list used to stay in the worker)."""
    import json

    from vlmkit.data.collate import VlmCollator
    from vlmkit.data.schema import read_samples
    from vlmkit.models.loading import load_model

    model = tiny_model("qwen2_vl")
    loaded = load_model(model)
    collator = VlmCollator(loaded.processor, loaded.family)
    lengths = {s.id: collator.sequence_length(s) for s in read_samples(image_data)}
    limit = max(lengths.values()) - 1
    over = sorted(i for i, n in lengths.items() if n > limit)
    assert 0 < len(over) < len(lengths)
    config = config_from_dict(
        base_config(
            model,
            image_data,
            tmp_path / "run",
            data={"max_length": limit, "on_overflow": "drop", "packing": packing},
            train={"batch_size": 2, "max_steps": 4, "seed": 0, "num_workers": num_workers},
        )
    )
    train(config, progress=False)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert sorted(manifest["dropped_for_length"]) == over


def test_every_sample_over_max_length_with_drop_is_one_clear_error(tmp_path, image_data, tiny_model):
    config = base_config(
        tiny_model("qwen2_vl"),
        image_data,
        tmp_path / "run",
        data={"max_length": 8, "on_overflow": "drop", "packing": False},
    )
    with pytest.raises(ConfigError, match="every training sample is over max_length=8"):
        train(config_from_dict(config), progress=False)
