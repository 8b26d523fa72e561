"""The seam between the evaluation runner and the inference engine (vlmkit.infer).

`engine_predict_fn(engine)` turns an Engine (anything with `generate(samples, params) -> [GenerationResult]`)
into the runner's predict callable: each EvalRequest becomes a Sample whose last user turn carries the task
prompt, and the task's generation settings become GenerationParams. `load_predict_fn` loads the engine and
returns the facts the run manifest records (model, adapter, pixel settings, dtype, device, versions).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.schema import Sample

if TYPE_CHECKING:
    from ..infer.options import EngineOptions


def generation_params(settings: Any) -> Any:
    """The task's GenerationSettings as the engine's GenerationParams (greedy unless the task samples)."""
    from ..infer import GenerationParams

    if settings.greedy:
        return GenerationParams(max_new_tokens=settings.max_new_tokens, num_beams=settings.num_beams)
    return GenerationParams(
        max_new_tokens=settings.max_new_tokens,
        do_sample=True,
        num_beams=settings.num_beams,
        temperature=settings.temperature or 1.0,
        top_p=settings.top_p,
    )


def engine_predict_fn(engine: Any) -> Callable[[list[Any]], list[dict[str, Any]]]:
    """Wrap an engine into the runner's predict callable (one engine.generate call per runner batch)."""
    params_cache: dict[Any, Any] = {}
    remote = getattr(engine, "remote", False)

    def predict(requests: list[Any]) -> list[dict[str, Any]]:
        settings = requests[0].generation
        if settings not in params_cache:
            params_cache[settings] = generation_params(settings)
        samples = [
            Sample.model_validate(
                {"id": r.id, "messages": r.messages, "answers": r.sample.answers, "meta": r.sample.meta}
            )
            for r in requests
        ]
        out = []
        for result in engine.generate(samples, params_cache[settings]):
            row = {"prediction": result.text, "latency_s": result.latency_s}
            if result.error:
                row["error"] = result.error
            elif remote:  # the endpoint's own token counts: what an API bills, so cost survives a resume
                row.update(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
                if result.system_fingerprint:
                    row["system_fingerprint"] = result.system_fingerprint
            out.append(row)
        return out

    predict.engine = engine  # type: ignore[attr-defined]  # so a suite can record what the engine learnt
    return predict


def load_predict_fn(
    model: str,
    *,
    adapter: str | Path | None = None,
    batch_size: int = 8,
    engine_options: EngineOptions | None = None,
    **legacy_options: Any,
) -> tuple[Callable, dict[str, Any]]:
    """Load the engine `engine_options` describe (default: in-process, auto dtype) and return the runner's
    predict callable with the facts the manifest records. `legacy_options` (dtype, device, media,
    quantization as keywords) build the EngineOptions for older callers."""
    from ..infer.options import EngineOptions

    if engine_options is None:
        engine_options = EngineOptions(**{k: v for k, v in legacy_options.items() if v is not None})
    elif legacy_options:
        raise TypeError("give engine_options or its fields as keywords, not both")
    engine = engine_options.load(model, adapter, batch_size=batch_size)
    local_weights = not engine_options.remote or engine_options.launched
    facts = {**engine_facts(engine), **model_facts(model, adapter, remote=not local_weights)}
    return engine_predict_fn(engine), facts


def model_facts(model: str, adapter: str | Path | None = None, *, remote: bool = False) -> dict[str, Any]:
    """Which weights a run used: the names as given, resolved local paths, and their fingerprints (a remote
    engine's model is an endpoint's model id: the endpoint answers for its weights)."""
    from .fingerprint import local_path, model_fingerprint

    return {
        "model": model,
        "model_path": None if remote else local_path(model),
        "adapter": str(adapter) if adapter else None,
        # absolute, so `compare` finds the adapter's training facts from any working directory
        "adapter_dir": local_path(adapter) if adapter and Path(adapter).is_dir() else None,
        "fingerprint": None if remote else model_fingerprint(model, adapter),
    }


def engine_facts(engine: Any) -> dict[str, Any]:
    """What the manifest records about an engine (from its `info()`)."""
    info = engine.info() if hasattr(engine, "info") else {}
    facts = {"pixels": info.get("media"), "engine": info}
    if info.get("model"):
        facts.update(model_facts(info["model"], info.get("adapter"), remote=bool(info.get("remote"))))
    return facts
