"""One typed road for engine and media options (issue 19 item 2): `MediaSettings` validates itself wherever it is
made (the server included), the run config and the flags build it one way, and every verb that loads a model
declares the same engine flags from one place."""

from __future__ import annotations

import pytest

from vlmkit.data.media_settings import MediaSettings
from vlmkit.errors import ConfigError
from vlmkit.infer.options import EndpointSettings, EngineOptions, public_url


def run_cli(capsys, *args):
    from vlmkit.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_pixels": 5000, "max_pixels": 100}, "min_pixels 5000 is above max_pixels 100"),
        ({"nframes": 4, "fps": 1.0}, "not both"),
        ({"max_pixels": 0}, "max_pixels must be positive"),
        ({"fps": -2.0}, "fps must be positive"),
        ({"max_frames": 0}, "max_frames must be positive"),
    ],
)
def test_media_settings_refuse_contradictions_wherever_they_are_made(values, message):
    with pytest.raises(ConfigError, match=message):
        MediaSettings(**values)


def test_media_settings_from_a_run_config_file_or_object_are_the_same(tmp_path):
    from vlmkit.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text("model: {path: m}\ndata: {train: d, min_pixels: 3136, max_pixels: 50176, fps: 1.5}\n")
    expected = MediaSettings(min_pixels=3136, max_pixels=50176, fps=1.5)
    assert MediaSettings.from_config(path) == expected
    assert MediaSettings.from_config(load_config(path)) == expected
    assert MediaSettings.from_config(load_config(path).data) == expected
    assert expected.override(nframes=8) == MediaSettings(min_pixels=3136, max_pixels=50176, nframes=8)


@pytest.mark.parametrize("verb", ["serve", "eval", "infer", "chat"])
def test_every_verb_checks_media_flags_before_loading_a_model(capsys, tmp_path, verb):
    """`serve` used to build MediaSettings by hand and skip the checks; now each verb refuses in one line."""
    extra = {"eval": ["--task", "docvqa", "--data", tmp_path, "--out", tmp_path / "o"]}.get(verb, [])
    code, _, err = run_cli(
        capsys, verb, "--model", tmp_path / "no-model", "--min-pixels", 5000, "--max-pixels", 100, *extra
    )
    assert code == 2 and "min_pixels 5000 is above max_pixels 100" in err and "Traceback" not in err


def _options_of(verb: str) -> dict[str, tuple]:
    import typer.main

    from vlmkit.cli import app

    command = typer.main.get_command(app).commands[verb]
    return {p.name: (tuple(p.opts), p.default, p.help) for p in command.params}


def test_the_engine_flags_are_declared_once_and_identical_in_every_verb():
    shared = ["dtype", "device", "quantization", "min_pixels", "max_pixels", "nframes", "fps", "max_frames", "config"]
    shared += ["engine", "vllm_python", "vllm_arg", "vllm_start_timeout"]  # serve runs hf or a launched vLLM
    remote = ["base_url", "api_key_env", "concurrency", "request_timeout", "max_retries", "price_input"]
    verbs = {verb: _options_of(verb) for verb in ("infer", "chat", "eval", "serve")}
    for name in shared + ["model", "adapter"]:
        assert len({verbs[v][name] for v in verbs}) == 1, name
    for name in remote:
        assert len({verbs[v][name] for v in ("infer", "chat", "eval")}) == 1, name
        assert name not in verbs["serve"]  # serve talks to no endpoint of the user's
    generation = ["do_sample", "temperature", "top_p", "top_k", "repetition_penalty", "stop", "seed"]
    for name in generation:
        assert verbs["infer"][name] == verbs["chat"][name], name


def test_engine_options_keep_local_and_remote_settings_apart():
    with pytest.raises(ConfigError, match="--engine openai"):
        EngineOptions(endpoint=EndpointSettings(base_url="http://127.0.0.1:1/v1"))
    with pytest.raises(ConfigError, match="--quantization"):
        EngineOptions(engine="openai", quantization="4bit")
    with pytest.raises(ConfigError, match="unknown engine 'vllmx'"):
        EngineOptions(engine="vllmx")
    with pytest.raises(ConfigError, match="concurrency"):
        EndpointSettings(concurrency=0)
    remote = EngineOptions(engine="openai", endpoint=EndpointSettings(base_url="https://u:secret@h.example/v1/?key=k"))
    assert remote.backend_options() == {"endpoint": remote.endpoint}
    assert "secret" not in str(remote.to_dict()) and remote.to_dict()["endpoint"]["base_url"] == "https://h.example/v1"
    assert public_url("http://127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"
    local = EngineOptions(dtype="float32", media=MediaSettings(max_pixels=3136))
    assert local.backend_options() == {"device": None, "quantization": None}
