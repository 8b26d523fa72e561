"""Predictions for a dataset: one JSON line per sample, crash-safe and resumable, with a run manifest.

Line format (shared with `vlmkit eval` and `vlmkit score`):
    {"id", "question", "prediction", "answers", "meta", "latency_s"}  plus "error" when the sample failed.
The run's settings (model, adapter, pixel bounds, generation parameters) go to `<out>.manifest.json`.

Lines are appended (and flushed) as each batch finishes, in the order batches run (longest prompts first),
so a crash loses at most the batch in flight. Re-running with the same `--out` skips every id that already
has a prediction; with --retry-errors ids whose line holds an error are tried again (their old lines are dropped).

Under torchrun / accelerate launch the processes split the samples still to do (vlmkit.distributed, the scheme
`vlmkit eval` uses): each appends to its own part file beside `<out>`, and rank 0 merges the parts into `<out>`
in dataset order; a killed job resumes with any number of processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..data.collate import MediaSettings
from ..data.schema import Sample, read_samples
from ..data.slicing import select_slice
from ..distributed import DataParallel, fold_parts, part_files
from ..errors import ConfigError, VlmkitError
from ..io import JsonlAppender, atomic_write_bytes, exclusive_lock, iter_jsonl, write_json, write_jsonl
from .engine import Engine, GenerationParams, GenerationResult
from .options import EngineOptions, engine_identity

# Settings that must match for a resumed run to continue the same predictions.
RESUME_KEYS = ("model", "adapter", "quantization", "generation", "media", "endpoint")


def manifest_path(out: str | os.PathLike) -> Path:
    """`predictions.jsonl` -> `predictions.jsonl.manifest.json`, beside it."""
    return Path(f"{out}.manifest.json")


def lock_path(out: str | os.PathLike) -> Path:
    """The lock a run holds while it writes `out` (io.exclusive_lock): a hidden file beside it."""
    out = Path(out)
    return out.with_name(f".{out.name}.lock")


def parse_slice(spec: str | None, total: int) -> slice:
    """'START:STOP' (either side may be empty) checked against the dataset size: the rule eval shares."""
    return select_slice(spec, total)


def prediction_line(sample: Sample, result: GenerationResult, *, usage: bool = False) -> dict[str, Any]:
    """One output line; `usage` adds the engine's token counts (a remote engine's, which an API bills)."""
    line: dict[str, Any] = {
        "id": sample.id,
        "question": sample.question(),
        "prediction": result.text,
        "answers": list(sample.answers),
        "meta": sample.meta,
        "latency_s": round(result.latency_s, 4),
    }
    if result.error is not None:
        line["error"] = result.error
    elif usage:
        line.update(prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
    return line


@dataclass
class PredictionSummary:
    out: Path
    manifest: Path
    selected: int = 0
    already_done: int = 0
    predicted: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def processed(self) -> int:
        return self.predicted + len(self.errors)

    @property
    def samples_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0


class PredictionRun:
    """A dataset prediction run, checked before any model loads: the selection, what is left to do, and
    whether `out` was made with the same settings (a resumed run must not mix two models' answers)."""

    def __init__(
        self,
        data: str | os.PathLike,
        out: str | os.PathLike,
        params: GenerationParams,
        *,
        model: str,
        adapter: str | None = None,
        media: MediaSettings | None = None,
        slice_spec: str | None = None,
        quantization: str | None = None,
        engine_options: EngineOptions | None = None,
        retry_errors: bool = False,
    ):
        """`engine_options` (how the engine will load) stands for `media` and `quantization` when given."""
        self.data, self.out, self.params, self.slice_spec = Path(data), Path(out), params, slice_spec
        samples = read_samples(data)
        if not samples:
            raise VlmkitError(f"{data}: the dataset has no samples")
        self.selected = samples[parse_slice(slice_spec, len(samples))]
        if engine_options is not None:
            media, quantization = engine_options.media, engine_options.quantization
        self.settings = {
            "model": str(model),
            "adapter": str(adapter) if adapter else None,
            "quantization": quantization,
            "generation": params.to_dict(),
            "media": asdict(media or MediaSettings()),
        }
        if engine_options is not None and engine_options.remote:  # another endpoint is another model
            self.settings["endpoint"] = engine_identity(engine_options)
        self.order = {s.id: i for i, s in enumerate(samples)}
        # under torchrun rank 0 alone reads (and may rewrite) `out`; every rank learns what is left. Rank 0 holds a
        # lock beside `out` until the run ends: a second infer writing the same file would answer samples twice.
        self.parallel = DataParallel(self.out)
        self._lock = contextlib.ExitStack()

        def resume() -> set[str]:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._lock.enter_context(exclusive_lock(lock_path(self.out), "`vlmkit infer`", target=self.out))
            try:
                return _resume(self.out, self.settings, retry_errors, self.order)
            except BaseException:
                self.close()
                raise

        done = self.parallel.on_main(f"reading {self.out}", resume)
        self.todo = [s for s in self.selected if s.id not in done]

    def close(self) -> None:
        """Let go of `out` (the lock); `execute` does it when it ends."""
        self._lock.close()

    def execute(
        self, engine: Engine, *, save_samples: str | os.PathLike | None = None, progress: bool = True
    ) -> PredictionSummary:
        try:
            return self._execute(engine, save_samples, progress)
        finally:
            self.close()

    def _execute(self, engine: Engine, save_samples: str | os.PathLike | None, progress: bool) -> PredictionSummary:
        from ..progress import progress as progress_bar

        parallel = self.parallel
        mine = parallel.share(self.todo)  # all of it in one process; this rank's share in a job
        summary = PredictionSummary(
            self.out,
            manifest_path(self.out),
            selected=len(self.selected),
            already_done=len(self.selected) - len(self.todo),
        )
        manifest = {
            "kind": "predictions",
            **self.settings,
            "family": engine.family.name,
            "engine": engine.info(),
            "data": str(self.data),
            "slice": self.slice_spec,
            "predictions": str(self.out),
            "world_size": parallel.world.size,
            "status": "running",
            "started_at": _now(),
        }
        if parallel.main:
            write_json(summary.manifest, manifest)
        started = time.perf_counter()
        shown = progress and parallel.main  # rank 0's share stands for the job's progress
        bar = progress_bar(len(mine), "infer", "sample", enabled=shown)  # plain lines off a terminal
        try:
            with JsonlAppender(parallel.output) as writer:
                for index, result in engine.iter_generate(mine, self.params):
                    sample = mine[index]
                    line = prediction_line(sample, result, usage=getattr(engine, "remote", False))
                    writer.write(line)
                    if save_samples is not None:
                        save_sample_files(save_samples, sample, line, result)
                    if result.error is not None:  # counted as failed, not as predicted
                        summary.errors.append((sample.id, result.error))
                        bar.set_postfix(errors=len(summary.errors))
                    else:
                        summary.predicted += 1
                    bar.update(1)
            if parallel.gather(self.order) and parallel.distributed:
                self._count_job(summary)
                manifest["merge_s"] = round(parallel.merged_s, 4)  # rank 0 merging the parts, in elapsed_s
        finally:
            bar.close()
            summary.elapsed_s = time.perf_counter() - started
            if parallel.main:
                manifest.update(
                    engine=engine.info(),  # now with what only the answers tell (an endpoint's system_fingerprint)
                    status="done" if summary.processed == len(self.todo) else "interrupted",
                    finished_at=_now(),
                    elapsed_s=round(summary.elapsed_s, 3),
                    samples_per_s=round(summary.samples_per_s, 3),
                    counts={
                        "selected": summary.selected,
                        "already_done": summary.already_done,
                        "predicted": summary.predicted,
                        "errors": len(summary.errors),
                    },
                )
                write_json(summary.manifest, manifest)
        return summary

    def _count_job(self, summary: PredictionSummary) -> None:
        """Rank 0, after the merge: the whole job's counts (every rank's share) from the merged file."""
        todo = {s.id for s in self.todo}
        summary.predicted, summary.errors = 0, []
        for _, row in iter_jsonl(self.out, skip_torn_tail=True):
            if row.get("id") not in todo:
                continue
            if row.get("error") is not None:
                summary.errors.append((row["id"], row["error"]))
            else:
                summary.predicted += 1


def predict_dataset(
    engine: Engine,
    data: str | os.PathLike,
    out: str | os.PathLike,
    params: GenerationParams | None = None,
    *,
    media: MediaSettings | None = None,
    slice_spec: str | None = None,
    save_samples: str | os.PathLike | None = None,
    progress: bool = True,
    retry_errors: bool = False,
) -> PredictionSummary:
    """Predict every selected sample of the dataset at `data` into the JSONL file `out` (resuming it).

    `media`: the settings the engine was loaded with, for the manifest (default: what the engine reports).
    `retry_errors`: predict again the samples whose earlier line holds an error (else they count as done).
    """
    info = engine.info()
    if media is None and isinstance(info.get("media"), dict):
        media = MediaSettings(**info["media"])
    run = PredictionRun(
        data,
        out,
        params or GenerationParams(),
        model=engine.model_id,
        adapter=info.get("adapter"),
        media=media,
        slice_spec=slice_spec,
        retry_errors=retry_errors,
    )
    return run.execute(engine, save_samples=save_samples, progress=progress)


def _resume(
    out: Path, settings: dict[str, Any], retry_errors: bool = False, order: dict[str, int] | None = None
) -> set[str]:
    """Ids already predicted in `out`, with the part files an interrupted data-parallel job left beside it folded
    in first (`order`: the dataset's id -> position, the merged file's order); with `retry_errors` (as
    `vlmkit eval --retry-errors`) error lines are removed so those samples run again, else they count as done."""
    parts = part_files(out)
    if not out.exists() and not parts:
        return set()
    previous = manifest_path(out)
    if previous.exists():
        try:
            old = json.loads(previous.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            old = {}
        changed = _differences(old, settings)
        if changed:
            raise ConfigError(
                f"{out} holds predictions made with other settings ({'; '.join(changed)}); resume "
                f"with the same settings, or write to a new --out"
            )
    rows = [row for _, row in iter_jsonl(out, skip_torn_tail=True)] if out.exists() else []
    foreign = next((row for row in rows if not (isinstance(row, dict) and "id" in row and "prediction" in row)), None)
    if foreign is not None:
        raise ConfigError(
            f"{out} exists and is not a predictions file (a line without 'id' and 'prediction'); "
            f"refusing to append to it"
        )
    if parts:
        fold_parts(out, order or {})
        rows = [row for _, row in iter_jsonl(out, skip_torn_tail=True)]
    if not retry_errors:
        return {str(row["id"]) for row in rows}
    kept = [row for row in rows if row.get("error") is None]
    if len(kept) < len(rows):
        write_jsonl(out, kept)  # atomic: the failed lines go, every good prediction stays
    return {str(row["id"]) for row in kept}


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    changed = []
    for key in RESUME_KEYS:
        if key not in old or old[key] == new.get(key):
            continue
        if isinstance(old[key], dict) and isinstance(new.get(key), dict):
            changed += [  # a key the old manifest lacks was added by a later version: not known then, not compared
                f"{key}.{k}: {old[key].get(k)!r} then, {new[key].get(k)!r} now"
                for k in sorted(old[key])
                if old[key].get(k) != new[key].get(k)
            ]
        else:
            changed.append(f"{key}: {old[key]!r} then, {new.get(key)!r} now")
    return changed


def save_sample_files(
    folder: str | os.PathLike, sample: Sample, line: dict[str, Any], result: GenerationResult
) -> None:
    """`{id}_in.json` (the request), `{id}_img.jpg` (its image; `_img2.jpg`, ... for more), `{id}_out.json`."""
    from ..data import media

    folder = Path(folder)
    stem = safe_file_stem(sample.id)
    write_json(folder / f"{stem}_in.json", sample.to_json())
    for k, source in enumerate(sample.media("image"), start=1):
        try:
            image = media.load_image(source)
        except VlmkitError:
            continue  # the failure is already in the output line
        atomic_write_bytes(folder / f"{stem}_img{'' if k == 1 else k}.jpg", media.encode_image(image, "JPEG"))
    write_json(folder / f"{stem}_out.json", {**line, "result": asdict(result)})


def safe_file_stem(sample_id: str) -> str:
    """A file name for an id; ids that need changing get a short hash so two ids never share files."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)[:100]
    if stem != sample_id:
        stem += "-" + hashlib.sha1(sample_id.encode("utf-8")).hexdigest()[:8]
    return stem


def single_question(image: Sequence[str] = (), video: Sequence[str] = (), question: str = "") -> Sample:
    """A one-turn request from CLI arguments; the empty question is refused before any model loads."""
    if not question or not question.strip():
        raise ConfigError("--question is empty: ask something")
    content: list[dict[str, str]] = [{"type": "image", "image": str(i)} for i in image]
    content += [{"type": "video", "video": str(v)} for v in video]
    content.append({"type": "text", "text": question})
    return Sample(id="question", messages=[{"role": "user", "content": content}])


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
