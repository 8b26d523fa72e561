"""The seam between the evaluation runner and the inference engine (vlmkit.infer).

`engine_predict_fn(engine)` turns an Engine (anything with `generate(samples, params) -> [GenerationResult]`)
into the runner's predict callable: each EvalRequest becomes a Sample whose last user turn carries the task
prompt, and the task's generation settings become GenerationParams. `load_predict_fn` loads the engine and
returns the facts the run manifest records (model, adapter, pixel settings, dtype, device, versions).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..data.schema import Sample


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
            out.append(row)
        return out

    return predict


def load_predict_fn(
    model: str, *, adapter: str | Path | None = None, batch_size: int = 8, **engine_options: Any
) -> tuple[Callable, dict[str, Any]]:
    from ..infer import load_engine

    engine = load_engine(model, adapter=str(adapter) if adapter else None, batch_size=batch_size, **engine_options)
    facts = {
        **engine_facts(engine),
        "model": model,
        "adapter": str(adapter) if adapter else None,
        # absolute, so `compare` finds the adapter's training facts from any working directory
        "adapter_dir": str(Path(adapter).resolve()) if adapter and Path(adapter).is_dir() else None,
    }
    return engine_predict_fn(engine), facts


def engine_facts(engine: Any) -> dict[str, Any]:
    """What the manifest records about an engine (from its `info()`)."""
    info = engine.info() if hasattr(engine, "info") else {}
    return {"model": info.get("model"), "adapter": info.get("adapter"), "pixels": info.get("media"), "engine": info}
