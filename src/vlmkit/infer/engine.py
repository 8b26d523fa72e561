"""The inference interface every backend implements: generation parameters, results, the Engine protocol.

Callers (the CLI, the evaluator, the server, the quickstart) only speak these types, so a backend is one new
module plus one line in `BACKENDS` (and its settings in `options.EngineOptions`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import ConfigError

if TYPE_CHECKING:  # keep `import vlmkit.infer` free of torch for a fast CLI
    from ..data.collate import MediaSettings
    from ..data.schema import Sample
    from ..models.base import FamilyAdapter

FINISH_REASONS = ("stop", "length", "error")


@dataclass(frozen=True)
class GenerationParams:
    """How to decode. Greedy by default; `do_sample` switches on temperature / top_p / top_k.

    Frozen and hashable, so a server can group concurrent requests by their parameters.
    `top_k=0` means no top-k cut. `stop` strings end the answer and are not part of it (OpenAI semantics).
    `seed` makes sampling reproducible for the same batch composition.
    """

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_beams: int = 1
    repetition_penalty: float = 1.0
    stop: Sequence[str] = field(default_factory=tuple)
    seed: int | None = None

    def __post_init__(self) -> None:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        object.__setattr__(self, "stop", stop)
        problems = []
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be a positive integer, not {self.max_new_tokens!r}")
        temperature = self.temperature
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
            problems.append(f"temperature must be > 0, not {self.temperature!r} (use do_sample=False for greedy)")
        if not (isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1):
            problems.append(f"top_p must be in (0, 1], not {self.top_p!r}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            problems.append(f"top_k must be an integer >= 0 (0 = off), not {self.top_k!r}")
        if not isinstance(self.num_beams, int) or self.num_beams < 1:
            problems.append(f"num_beams must be an integer >= 1, not {self.num_beams!r}")
        if self.num_beams > 1 and self.do_sample:
            problems.append("beam search with sampling is not supported: use num_beams > 1 or do_sample, not both")
        if not (isinstance(self.repetition_penalty, (int, float)) and self.repetition_penalty > 0):
            problems.append(f"repetition_penalty must be > 0, not {self.repetition_penalty!r}")
        if any(not isinstance(s, str) or not s for s in stop):
            problems.append(f"stop strings must be non-empty strings, not {list(stop)!r}")
        if self.seed is not None and not isinstance(self.seed, int):
            problems.append(f"seed must be an integer, not {self.seed!r}")
        if problems:
            raise ConfigError("generation parameters: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


@dataclass
class GenerationResult:
    """One answer. `error` is set (and `finish_reason` is "error") when the request could not be run;
    `error_code` names the kind of refusal when a caller may branch on it (e.g. "context_length_exceeded")."""

    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    finish_reason: str = "stop"
    error: str | None = None
    system_fingerprint: str | None = None  # a remote endpoint's backend configuration, when it reports one
    error_code: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: str, latency_s: float = 0.0, code: str | None = None) -> GenerationResult:
        return cls(text="", finish_reason="error", error=error, latency_s=latency_s, error_code=code)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TextStream(Iterator[str]):
    """Text pieces of one answer as they are generated; `result` holds the GenerationResult once exhausted.

    Wraps a backend generator that yields pieces and returns the final GenerationResult. `close()` stops
    generation early (a client hung up, the user pressed Ctrl-C); `result` is then None unless it finished.
    """

    def __init__(self, pieces: Generator[str, None, GenerationResult], cancel: Callable[[], None] | None = None):
        self._pieces = pieces
        self._cancel = cancel
        self.result: GenerationResult | None = None

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration as stop:
            self.result = stop.value
            raise

    def text(self) -> str:
        """Consume the rest of the stream and return it."""
        return "".join(self)

    def close(self) -> None:
        if self._cancel is not None:
            self._cancel()
        self._pieces.close()

    def __enter__(self) -> TextStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_sample(request: Any, index: int = 0) -> Sample:
    """A request as a Sample: Samples pass through, sample-shaped dicts are validated (DataError if not)."""
    from ..data.schema import Sample, parse_sample

    if isinstance(request, Sample):
        return request
    return parse_sample(request, record=f"request {index}")


@runtime_checkable
class Engine(Protocol):
    """What every backend offers. Requests are Samples (or dicts in the sample schema): the prompt is the
    conversation up to the last user turn."""

    family: FamilyAdapter
    processor: Any
    model_id: str

    def generate(
        self, samples: Sequence[Sample], params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> list[GenerationResult]:
        """Answers in request order; a request that fails gets a result with `error` set, the rest still run."""
        ...

    def iter_generate(
        self, samples: Sequence[Sample], params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> Iterator[tuple[int, GenerationResult]]:
        """(request index, result) pairs as each batch finishes (for progress bars and crash-safe writing)."""
        ...

    def stream(
        self, sample: Sample, params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> TextStream:
        """Text pieces of one answer; their concatenation equals `generate([sample])[0].text`.
        Bad input (unreadable image, empty question) raises a VlmkitError before anything is yielded."""
        ...

    def info(self) -> dict[str, Any]:
        """Settings for run manifests: backend, model, adapter, family, dtype, device, media settings."""
        ...


# Backend name -> "module:Class"; imported only when chosen, so vLLM never loads for the HF backend.
BACKENDS: dict[str, str] = {
    "hf": "vlmkit.infer.hf_engine:HFEngine",
    "openai": "vlmkit.infer.openai_engine:OpenAIEngine",
    "vllm": "vlmkit.infer.vllm_engine:VllmEngine",
}


def load_engine(
    model: str,
    adapter: str | None = None,
    backend: str = "hf",
    dtype: str = "auto",
    batch_size: int = 16,
    media: MediaSettings | None = None,
    **options: Any,
) -> Engine:
    """Load a model (a hub id, a local folder, or a merged export) with an optional LoRA adapter.

    `options` go to the backend (HF: device, attn_implementation, quantization).
    """
    import importlib

    if backend not in BACKENDS:
        raise ConfigError(f"unknown inference backend '{backend}'; available: {', '.join(BACKENDS)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, not {batch_size!r}")
    module_name, class_name = BACKENDS[backend].split(":")
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class.load(model, adapter=adapter, dtype=dtype, batch_size=batch_size, media=media, **options)
