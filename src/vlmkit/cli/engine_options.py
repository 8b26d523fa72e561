"""The options of every verb that loads an inference engine (`infer`, `chat`, `eval`, `serve`), declared once.

`@with_engine_options()` adds the engine, precision, device, media and endpoint flags to a command and hands it
one validated `EngineOptions` (parameter `engine_options`); `@with_generation_options(n)` adds the decoding flags
and hands it one `GenerationParams` (parameter `params`). Typer reads the added flags from the wrapper's
signature, so each flag's name, default and help exist in this file only. Only typer is imported here;
torch loads inside the commands.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

MODEL = typer.Option(
    ...,
    "--model",
    "-m",
    help="Hub id, local checkpoint folder, or a merged export; with --engine openai, the endpoint's model id.",
)
ADAPTER = typer.Option(None, "--adapter", "-a", help="LoRA adapter folder to apply on top of --model.")

# (parameter name, type, typer option); the wrapper's keyword-only parameters, in --help order.
_LOCAL = [
    ("dtype", str, typer.Option("auto", "--dtype", help="auto (float32 on CPU), float32, bfloat16 or float16.")),
    ("device", str | None, typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: cuda if any).")),
    (
        "quantization",
        str | None,
        typer.Option(
            None,
            "--quantization",
            help="Load the language model's weights in 4bit (NF4) or 8bit with bitsandbytes "
            "(pip install 'vlmkit[qlora]'); the vision tower stays as is.",
        ),
    ),
]
_MEDIA = [
    (
        "min_pixels",
        int | None,
        typer.Option(None, "--min-pixels", help="Smallest image area in pixels after resizing (Qwen families)."),
    ),
    (
        "max_pixels",
        int | None,
        typer.Option(None, "--max-pixels", help="Largest image area in pixels after resizing (Qwen families)."),
    ),
    ("nframes", int | None, typer.Option(None, "--nframes", help="Video: this many evenly spaced frames.")),
    (
        "fps",
        float | None,
        typer.Option(None, "--fps", help="Video: frames per second to sample (default 2, when --nframes is unset)."),
    ),
    (
        "max_frames",
        int | None,
        typer.Option(None, "--max-frames", help="Video: at most this many frames with --fps (default 64)."),
    ),
    (
        "config",
        Path | None,
        typer.Option(
            None,
            "--config",
            "-c",
            help="Run config (e.g. RUN_DIR/config.yaml) whose data section sets min/max_pixels and frame "
            "sampling, so inference matches training; flags override it.",
        ),
    ),
]
# serve declares its own --max-prompt-tokens (with its 400 answer); infer, chat and eval take this one.
_PROMPT = [
    (
        "max_prompt_tokens",
        int | None,
        typer.Option(
            None,
            "--max-prompt-tokens",
            min=1,
            help="Longest prompt in tokens, text and media (default 8192, never above the model's context); a "
            "longer sample fails alone with its error recorded (--engine hf).",
        ),
    ),
]
_REMOTE = [
    (
        "engine",
        str,
        typer.Option(
            "hf",
            "--engine",
            help="hf: run the model in this process with transformers. openai: send each request to an "
            "OpenAI-compatible endpoint (an API model, vLLM, SGLang, `vlmkit serve`). vllm: start vLLM's server "
            "for this model (and adapter) from vLLM's own environment (--vllm-python), use it, stop it at the end; "
            "see docs/engines.md.",
        ),
    ),
    (
        "base_url",
        str | None,
        typer.Option(
            None, "--base-url", help="--engine openai: the endpoint, e.g. http://127.0.0.1:8000/v1 (default: OpenAI)."
        ),
    ),
    (
        "api_key_env",
        str,
        typer.Option(
            "OPENAI_API_KEY",
            "--api-key-env",
            help="--engine openai: name of the environment variable holding the API key (the key is never written "
            "anywhere; an endpoint without auth accepts any value).",
        ),
    ),
    ("concurrency", int, typer.Option(8, "--concurrency", help="--engine openai: requests in flight.")),
    (
        "request_timeout",
        float,
        typer.Option(120.0, "--request-timeout", help="--engine openai: seconds before one attempt is abandoned."),
    ),
    (
        "max_retries",
        int,
        typer.Option(
            5,
            "--max-retries",
            help="--engine openai: retries (exponential backoff with jitter, Retry-After honoured) on timeouts, "
            "connection errors, 408/409/429/5xx and malformed answers.",
        ),
    ),
    (
        "price_input",
        float | None,
        typer.Option(None, "--price-input", help="--engine openai: USD per 1M prompt tokens (cost in scores.json)."),
    ),
    (
        "price_output",
        float | None,
        typer.Option(None, "--price-output", help="--engine openai: USD per 1M completion tokens."),
    ),
]
_VLLM = [
    (
        "vllm_python",
        str | None,
        typer.Option(
            None,
            "--vllm-python",
            envvar="VLMKIT_VLLM_PYTHON",
            show_envvar=True,
            help="--engine vllm: the Python interpreter of the environment vLLM is installed in "
            "(vLLM pins its own torch; it runs as `PYTHON -m vllm.entrypoints.openai.api_server`).",
        ),
    ),
    (
        "vllm_arg",
        list[str] | None,
        typer.Option(
            None,
            "--vllm-arg",
            help="--engine vllm: one more argument for vLLM's server, as is (repeatable; write options with a value "
            "as one, e.g. --vllm-arg=--tensor-parallel-size=2 --vllm-arg=--gpu-memory-utilization=0.8 "
            "--vllm-arg=--quantization=fp8). Given last, so it overrides what vlmkit sets.",
        ),
    ),
    (
        "vllm_start_timeout",
        float,
        typer.Option(
            900.0,
            "--vllm-start-timeout",
            help="--engine vllm: seconds to wait for the server's /health before giving up (loading a large model "
            "or compiling CUDA graphs takes minutes).",
        ),
    ),
]

_GENERATION = [
    ("do_sample", bool, typer.Option(False, "--sample/--greedy", help="Sample (temperature/top-p/top-k) or greedy.")),
    ("temperature", float, typer.Option(1.0, "--temperature", help="Sampling temperature (with --sample).")),
    ("top_p", float, typer.Option(1.0, "--top-p", help="Nucleus sampling mass (with --sample).")),
    ("top_k", int, typer.Option(0, "--top-k", help="Keep the K most likely tokens; 0 = off (with --sample).")),
    ("num_beams", int, typer.Option(1, "--num-beams", help="Beam search width (1 = no beam search).")),
    ("repetition_penalty", float, typer.Option(1.0, "--repetition-penalty", help="Penalty > 1 discourages repeats.")),
    (
        "stop",
        list[str] | None,
        typer.Option(None, "--stop", help="Stop string; the answer ends before it. Repeat for several."),
    ),
    ("seed", int | None, typer.Option(None, "--seed", help="Seed for sampling.")),
]


def build_engine_options(
    *,
    engine: str = "hf",
    dtype: str = "auto",
    device: str | None = None,
    quantization: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    nframes: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    config: Path | None = None,
    vllm_python: str | None = None,
    vllm_arg: list[str] | None = None,
    vllm_start_timeout: float = 900.0,
    max_prompt_tokens: int | None = None,
    **endpoint: Any,
) -> Any:
    """EngineOptions from flag values: the run config's media settings (when given) overridden by the flags."""
    from ..data.media_settings import MediaSettings
    from ..infer.options import EndpointSettings, EngineOptions, VllmSettings

    base = MediaSettings.from_config(config) if config is not None else MediaSettings()
    vllm = VllmSettings(python=vllm_python, args=tuple(vllm_arg or ()), start_timeout=vllm_start_timeout)
    media = base.override(min_pixels=min_pixels, max_pixels=max_pixels, nframes=nframes, fps=fps, max_frames=max_frames)
    return EngineOptions(
        engine=engine,
        dtype=dtype,
        device=device,
        quantization=quantization,
        max_prompt_tokens=max_prompt_tokens,
        media=media,
        endpoint=EndpointSettings(**endpoint),
        vllm=vllm,
    )


def with_engine_options(*, remote: bool = True) -> Callable[[Callable], Callable]:
    """Add the engine flags to a command whose body takes `engine_options: EngineOptions`.
    `remote=False` (serve) leaves out the endpoint flags and --max-prompt-tokens (serve has its own)."""
    declared = [_REMOTE[0], *_LOCAL, *(_PROMPT if remote else []), *_MEDIA, *(_REMOTE[1:] if remote else []), *_VLLM]
    return _adding(declared, "engine_options", lambda values: build_engine_options(**values))


def with_endpoint_options() -> Callable[[Callable], Callable]:
    """Add only the endpoint flags (--base-url ... --price-output) to a command whose body takes
    `endpoint: EndpointSettings` (a verb that always talks to an endpoint, e.g. `data augment`)."""

    def build(values: dict[str, Any]) -> Any:
        from ..infer.options import EndpointSettings

        return EndpointSettings(**values)

    return _adding(
        [(name, kind, _without_engine_prefix(option)) for name, kind, option in _REMOTE[1:]], "endpoint", build
    )


def _without_engine_prefix(option: Any) -> Any:
    """The same flag, its help without "--engine openai: " (a verb that always talks to an endpoint)."""
    import copy

    option = copy.copy(option)
    text = option.help.removeprefix("--engine openai: ").replace("(cost in scores.json)", "(cost in the report)")
    option.help = text[:1].upper() + text[1:]
    return option


def with_generation_options(default_max_new_tokens: int) -> Callable[[Callable], Callable]:
    """Add the decoding flags to a command whose body takes `params: GenerationParams`."""
    declared = [
        (
            "max_new_tokens",
            int,
            typer.Option(default_max_new_tokens, "--max-new-tokens", help="Longest answer in tokens."),
        ),
        *_GENERATION,
    ]

    def build(values: dict[str, Any]) -> Any:
        from ..infer import GenerationParams

        return GenerationParams(**{**values, "stop": tuple(values.get("stop") or ())})

    return _adding(declared, "params", build)


def _adding(
    declared: list[tuple[str, Any, Any]], target: str, build: Callable[[dict[str, Any]], Any]
) -> Callable[[Callable], Callable]:
    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func, eval_str=True)
        if target not in signature.parameters:
            raise TypeError(f"{func.__name__} must take a '{target}' parameter")
        kept = [p for p in signature.parameters.values() if p.name != target]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation)
            for name, annotation, option in declared
        ]
        names = [name for name, _, _ in declared]

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            kwargs[target] = build({name: kwargs.pop(name) for name in names if name in kwargs})
            return func(*args, **kwargs)

        parameters = [*kept, *added]
        command.__signature__ = signature.replace(parameters=parameters)  # what typer reads
        command.__annotations__ = {p.name: p.annotation for p in parameters if p.annotation is not p.empty}
        del command.__wrapped__
        return command

    return decorate
