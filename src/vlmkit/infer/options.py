"""EngineOptions: everything that says how to load an inference engine, apart from the model itself.

One typed value travels from the command line (declared once in `cli/engine_options.py`), a script or a
sweep to `load_engine`: the backend (`engine`), precision and placement for in-process backends, the media
settings, the endpoint settings of remote backends, and how vlmkit launches vLLM (`--engine vllm`). A new
backend adds its settings here and one line in `BACKENDS`; no verb changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..data.media_settings import MediaSettings
from ..errors import ConfigError

if TYPE_CHECKING:
    from .engine import Engine

DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZATIONS = ("4bit", "8bit")
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


@dataclass(frozen=True)
class EndpointSettings:
    """How a remote engine talks to its server (`--engine openai`)."""

    base_url: str | None = None  # None: the client's default (OPENAI_BASE_URL, else api.openai.com)
    api_key_env: str = DEFAULT_API_KEY_ENV  # the variable holding the key; the key itself is never stored
    concurrency: int = 8  # requests in flight
    request_timeout: float = 120.0  # seconds per attempt
    max_retries: int = 5  # further attempts after a retryable fault
    price_input: float | None = None  # USD per 1M prompt tokens
    price_output: float | None = None  # USD per 1M completion tokens

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.concurrency, int) or self.concurrency < 1:
            problems.append(f"concurrency must be a positive integer, not {self.concurrency!r}")
        if not _positive(self.request_timeout):
            problems.append(f"request_timeout must be a positive number of seconds, not {self.request_timeout!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            problems.append(f"max_retries must be an integer >= 0, not {self.max_retries!r}")
        for name in ("price_input", "price_output"):
            value = getattr(self, name)
            if value is not None and not (_positive(value) or value == 0):
                problems.append(f"{name} must be a price >= 0 in USD per 1M tokens, not {value!r}")
        if not self.api_key_env or not self.api_key_env.replace("_", "").isalnum():
            problems.append(f"api_key_env must name an environment variable, not {self.api_key_env!r}")
        if self.base_url is not None and not str(self.base_url).startswith(("http://", "https://")):
            problems.append(f"base_url must be an http(s) URL, not {self.base_url!r}")
        if problems:
            raise ConfigError("endpoint settings: " + "; ".join(problems))

    @property
    def priced(self) -> bool:
        return self.price_input is not None or self.price_output is not None


VLLM_PYTHON_ENV = "VLMKIT_VLLM_PYTHON"


@dataclass(frozen=True)
class VllmSettings:
    """How `--engine vllm` starts vLLM's OpenAI server in its own environment (see `vllm_launcher`).

    `images_per_prompt` / `videos_per_prompt` / `max_model_len` are what the caller knows about the work (the
    task's data, the server's caps); None leaves vLLM's defaults. `args` go to vLLM last, so they win."""

    python: str | None = None  # vLLM's interpreter; None: $VLMKIT_VLLM_PYTHON
    args: tuple[str, ...] = ()  # passed through: --tensor-parallel-size 2, --gpu-memory-utilization 0.8, ...
    start_timeout: float = 900.0  # seconds until /health answers
    port: int | None = None  # None: a free loopback port
    log_file: str | None = None  # None: a temporary file (its path is printed and recorded)
    max_model_len: int | None = None
    images_per_prompt: int | None = None
    videos_per_prompt: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "args", tuple(self.args or ()))
        problems = []
        if not _positive(self.start_timeout):
            problems.append(f"start timeout must be a positive number of seconds, not {self.start_timeout!r}")
        if self.port is not None and not (isinstance(self.port, int) and 0 < self.port < 65536):
            problems.append(f"port must be 1-65535, not {self.port!r}")
        for name in ("max_model_len", "images_per_prompt", "videos_per_prompt"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                problems.append(f"{name} must be an integer >= 0, not {value!r}")
        if problems:
            raise ConfigError("vLLM settings: " + "; ".join(problems))

    @property
    def customised(self) -> bool:
        """True when the user set something only `--engine vllm` reads."""
        return (self.python, self.args, self.start_timeout) != (None, (), 900.0)


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@dataclass(frozen=True)
class EngineOptions:
    """How to load an engine: `EngineOptions(...).load(model, adapter)`. Validated on creation."""

    engine: str = "hf"  # a key of vlmkit.infer.engine.BACKENDS
    dtype: str = "auto"
    device: str | None = None
    quantization: str | None = None  # "4bit" | "8bit" (bitsandbytes), in-process backends only
    max_prompt_tokens: int | None = None  # in-process backends: longer prompts fail per sample (None: the default)
    media: MediaSettings = field(default_factory=MediaSettings)
    endpoint: EndpointSettings = field(default_factory=EndpointSettings)
    vllm: VllmSettings = field(default_factory=VllmSettings)

    def __post_init__(self) -> None:
        from .engine import BACKENDS

        if self.engine not in BACKENDS:
            raise ConfigError(f"unknown engine '{self.engine}'; available: {', '.join(BACKENDS)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, not '{self.dtype}'")
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not '{self.quantization}'")
        if self.vllm.customised and self.engine != "vllm":
            raise ConfigError("--vllm-python, --vllm-arg and --vllm-start-timeout are for --engine vllm")
        if self.engine == "vllm":
            local = [f"--{f}" for f in ("device", "quantization") if getattr(self, f) is not None]
            if local:
                raise ConfigError(
                    f"{', '.join(local)}: with --engine vllm, vLLM places and quantises the model; pass its own "
                    "options with --vllm-arg (e.g. --vllm-arg=--quantization=fp8)"
                )
            if self.max_prompt_tokens is not None:
                raise ConfigError(
                    "--max-prompt-tokens: with --engine vllm, vLLM caps prompts at its max model length "
                    "(pass --vllm-arg=--max-model-len=N)"
                )
            outside = [flag for flag, on in _ENDPOINT_ONLY.items() if on(self.endpoint)]
            if outside:
                raise ConfigError(f"{', '.join(outside)}: --engine vllm talks to the vLLM server it starts itself")
        elif self.remote:
            local = [f"--{f}" for f in ("device", "quantization") if getattr(self, f) is not None]
            local += ["--max-prompt-tokens"] if self.max_prompt_tokens is not None else []
            local += ["--dtype"] if self.dtype != "auto" else []
            if local:
                raise ConfigError(f"{', '.join(local)} set how a local model loads; --engine {self.engine} runs none")
        elif self.endpoint != EndpointSettings():
            raise ConfigError(
                "--base-url, --api-key-env, --concurrency, --request-timeout, --max-retries and the prices "
                "are for a remote engine: add --engine openai"
            )

    @property
    def launched(self) -> bool:
        """True when vlmkit starts the model's server itself (`--engine vllm`): the weights are local files."""
        return self.engine == "vllm"

    @property
    def remote(self) -> bool:
        """True when the model runs behind an HTTP endpoint rather than in this process."""
        return self.engine != "hf"

    def backend_options(self) -> dict[str, Any]:
        """The keyword arguments this backend's `load` takes besides model, adapter, dtype, batch size, media."""
        if self.launched:
            return {"endpoint": self.endpoint, "vllm": self.vllm}
        if self.remote:
            return {"endpoint": self.endpoint}
        options = {"device": self.device, "quantization": self.quantization}
        if self.max_prompt_tokens is not None:
            options["max_prompt_tokens"] = self.max_prompt_tokens
        return options

    def load(self, model: str, adapter: str | None = None, *, batch_size: int = 16, **extra: Any) -> Engine:
        """Load the engine; `extra` goes to the backend as is (e.g. serve's max_prompt_tokens)."""
        from .engine import load_engine

        return load_engine(
            model,
            adapter=str(adapter) if adapter else None,
            backend=self.engine,
            dtype=self.dtype,
            batch_size=batch_size,
            media=self.media,
            **self.backend_options(),
            **extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values for manifests (no secrets: the endpoint holds only the key's variable name)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("media", "endpoint", "vllm")}
        out["media"] = {f.name: getattr(self.media, f.name) for f in fields(self.media)}
        if self.launched:
            out["vllm"] = {f.name: getattr(self.vllm, f.name) for f in fields(self.vllm)}
            out["vllm"]["args"] = list(self.vllm.args)
        if self.remote and not self.launched:
            endpoint = {f.name: getattr(self.endpoint, f.name) for f in fields(self.endpoint)}
            out["endpoint"] = {**endpoint, "base_url": public_url(self.endpoint.base_url)}
        return out


def public_url(url: str | None) -> str | None:
    """`url` without what may hold a secret: user:password@ and the query string (some gateways take ?key=)."""
    if url is None:
        return None
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def engine_identity(options: EngineOptions) -> dict[str, Any]:
    """What makes a remote engine's answers comparable on resume: backend and endpoint (no credentials). A
    launched vLLM gets a new port each time: its identity is the model, checked like the in-process engine's, and
    the arguments passed through to it."""
    if options.launched:
        from .vllm_launcher import answer_args

        # --vllm-arg can change the answers (--quantization, --max-model-len, --tokenizer)
        return {"engine": options.engine, "base_url": None, "vllm_args": answer_args(options.vllm.args)}
    return {"engine": options.engine, "base_url": public_url(options.endpoint.base_url)}


_ENDPOINT_ONLY = {
    "--base-url": lambda e: e.base_url is not None,
    "--api-key-env": lambda e: e.api_key_env != DEFAULT_API_KEY_ENV,
    "--price-input/--price-output": lambda e: e.priced,
}
