"""`vlmkit data augment`: new wordings of a dataset's questions from an OpenAI-compatible endpoint.

For every sample with a question, every method and every variant index k < n, one job:
- paraphrase: one request (the `paraphrase` prompt) gives the variant;
- backtranslate: two requests, source language -> `via` (the pivot) -> source language (the `translate` prompt).
Requests go through `vlmkit.infer.openai_client.ChatClient` (concurrency, retries, Retry-After); each finished one
is appended to the request log at once (log.py), so a killed run loses at most the requests in flight. The
variants then pass the filters (filters.py), optionally the answer check (the endpoint is shown the images and the
variant and must give back the source's answer), and the dataset is written: each source sample (unless
`include_sources` is off), followed by its kept variants. A variant keeps the source's images, answers, assistant
turn and meta, gets the id `<source id>~<method>-<k>` and records its provenance in `meta.source_id` and
`meta.augment`, which `data split` and `data check-leakage` read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError, DataError
from ...io import check_output_dir, exclusive_lock, write_json
from ..schema import SAMPLES_FILE, DatasetWriter, Sample, read_samples
from .filters import Limits, answer_matches, clean_output, first_failure, normalize_question
from .language import checkable, dataset_language, language_name, question_language
from .log import LOG_FILE, Key, RequestLog, question_hash
from .prompts import Template, fingerprint, load_prompts
from .report import REPORT_FILE, Tally, build_report

LOCK_FILE = ".augment.lock"  # held while a run writes OUT (io.exclusive_lock)

METHODS = ("paraphrase", "backtranslate")
DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class AugmentSettings:
    """What to generate and what to keep (the endpoint and model are given separately)."""

    methods: tuple[str, ...] = ("paraphrase",)
    n: int = 1  # variants per question and method
    lang: str = "auto"  # the questions' language; auto: detected per question from its script
    via: str = "en"  # back-translation's pivot language
    include_sources: bool = True  # OUT holds the sources too (a training set as is), or only the variants
    check_answer: bool = False
    answer_threshold: float = 1.0  # ANLS at or above which the check's answer agrees (1.0: exact match)
    limits: Limits = field(default_factory=Limits)
    max_new_tokens: int = 256
    temperature: float = 1.0
    seed: int = 0
    prompt_file: Path | None = None

    def __post_init__(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {', '.join(unknown) or 'none'}")
        if self.n < 1:
            raise ConfigError(f"--n must be at least 1, got {self.n}")
        if "backtranslate" in self.methods and self.lang == self.via:
            raise ConfigError(f"--via {self.via} is the questions' language (--lang); pick another pivot")
        if self.limits.max_ratio <= 0 or (self.limits.max_chars is not None and self.limits.max_chars < 1):
            raise ConfigError("--max-ratio and --max-chars must be positive")
        if not 0 < self.answer_threshold <= 1:
            raise ConfigError(f"--answer-threshold must be in (0, 1], got {self.answer_threshold}")


@dataclass
class _Job:
    sample: Sample
    method: str
    k: int
    lang: str | None  # None: no letters to tell the language by

    def key(self, stage: str) -> Key:
        return (self.sample.id, question_hash(self.sample.question()), self.method, self.k, stage)


def augment_dataset(
    dataset: str | os.PathLike,
    out: str | os.PathLike,
    *,
    endpoint: Any,
    model: str,
    settings: AugmentSettings | None = None,
    overwrite: bool = False,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Write OUT (samples.jsonl, media/, augment_report.json, augment_requests.jsonl); returns the report."""
    from ...infer.openai_client import ChatClient
    from ...infer.options import public_url

    settings = settings or AugmentSettings()
    root, out = Path(dataset), Path(out)
    check_output_dir(out, {"DATASET": root})
    prompts = load_prompts(settings.prompt_file)
    samples = read_samples(root, resolve_media=False)
    if not samples:
        raise DataError("has no samples to augment", path=root / SAMPLES_FILE)
    if (out / SAMPLES_FILE).exists() and not (out / LOG_FILE).exists() and not overwrite:
        raise DataError("already holds a dataset (pass --overwrite to replace it)", path=out / SAMPLES_FILE)
    base_url = public_url(endpoint.base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
    header = {
        "model": model,
        "base_url": base_url,
        "prompts": fingerprint(prompts),
        "lang": settings.lang,
        "via": settings.via,
        "max_new_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "seed": settings.seed,
    }
    out.mkdir(parents=True, exist_ok=True)
    # one run at a time: two appending to one request log would each build the dataset from a log the other changes
    with exclusive_lock(out / LOCK_FILE, "`vlmkit data augment`"):
        log = RequestLog(out, header, overwrite=overwrite)
        tally = Tally()
        jobs = _jobs(samples, settings, tally, root)
        client = ChatClient(endpoint, model=model)
        try:
            generator = _Generator(client, log, tally, progress)
            generator.run(
                "augment",
                [
                    (j.key("variant"), _body(prompts["paraphrase"], j, settings))
                    for j in jobs
                    if j.method == "paraphrase"
                ]
                + [
                    (j.key("pivot"), _body(prompts["translate"], j, settings, leg=0))
                    for j in jobs
                    if j.method != "paraphrase"
                ],
            )
            generator.run(
                "back-translate",
                [
                    (j.key("variant"), _body(prompts["translate"], j, settings, leg=1, pivot=pivot["text"]))
                    for j in jobs
                    if j.method == "backtranslate" and (pivot := log.done(j.key("pivot")))
                ],
            )
            kept = _filter(jobs, log, settings, tally)
            if settings.check_answer:
                generator.run(
                    "check",
                    [(j.key("check"), _check_body(prompts["check"], j, text, root, settings)) for j, text in kept],
                )
                kept = _checked(kept, log, settings, tally)
        finally:
            client.close()
            log.close()
        if tally.requests_sent and not any(not e.get("error") for e in log.entries.values()):
            raise ConfigError(
                f"every request to {base_url} failed ({tally.requests_sent}), e.g. {tally.first_error}; "
                f"nothing written to {out} but the request log (rerun to try again)"
            )
        provenance = {"base_url": base_url, "model": model}
        written = _write(root, out, samples, kept, settings, provenance, log, prompts)
        report = build_report(
            dataset=root,
            out=out,
            settings=settings,
            endpoint=endpoint,
            provenance=provenance,
            sources=len(samples),
            jobs=len(jobs),
            kept=len(kept),
            written=written,
            tally=tally,
            log=log,
        )
        write_json(out / REPORT_FILE, report)
        return report


def _jobs(samples: list[Sample], settings: AugmentSettings, tally: Tally, root: Path) -> list[_Job]:
    jobs = []
    dataset_lang = dataset_language([s.question() for s in samples]) if settings.lang == "auto" else None
    tally.dataset_lang = dataset_lang or settings.lang
    for sample in samples:
        question = sample.question()
        if not question.strip():
            tally.skip("no_question", sample.id)
            continue
        lang = question_language(question, dataset_lang) if settings.lang == "auto" else settings.lang
        for method in settings.methods:
            if method == "backtranslate" and lang == settings.via:
                tally.skip("already_in_via_language", sample.id)
                continue
            jobs += [_Job(sample, method, k, lang) for k in range(settings.n)]
    ids = {sample.id for sample in samples}
    clash = next((j for j in jobs if variant_id(j.sample.id, j.method, j.k, settings.via) in ids), None)
    if clash is not None:  # found before any request is paid for
        name = variant_id(clash.sample.id, clash.method, clash.k, settings.via)
        raise DataError(
            f"sample id '{name}' is taken; it is the id a variant of '{clash.sample.id}' would get",
            path=root / SAMPLES_FILE,
        )
    return jobs


def _values(job: _Job, settings: AugmentSettings, question: str, *, leg: int | None = None) -> dict[str, Any]:
    lang = job.lang or "und"
    own = {"lang": lang, "language": language_name(lang) if job.lang else "the question's language"}
    via = {"lang": settings.via, "language": language_name(settings.via)}
    target, source = (via, own) if leg == 0 else (own, via) if leg == 1 else (own, own)
    return {
        "question": question,
        "language": target["language"],
        "lang": target["lang"],
        "source_language": source["language"],
        "source_lang": source["lang"],
        "variant": job.k + 1,
        "n": settings.n,
    }


def _body(
    template: Template, job: _Job, settings: AugmentSettings, *, leg: int | None = None, pivot: str | None = None
) -> dict[str, Any]:
    question = pivot if leg == 1 else job.sample.question()
    return {
        "messages": template.messages(**_values(job, settings, question or "", leg=leg)),
        "max_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "seed": settings.seed + job.k,  # variants of one question differ by their seed where the endpoint samples
    }


def _check_body(
    template: Template, job: _Job, text: str, root: Path, settings: AugmentSettings
) -> Callable[[], dict[str, Any]]:
    """Built when sent (it carries the images as data URLs): the variant asked about the sample's images."""

    def build() -> dict[str, Any]:
        from ...infer.openai_engine import chat_messages
        from ..media_settings import MediaSettings

        values = _values(job, settings, text)
        prompt = template.user.format(**values)
        variant = Sample.model_validate(with_question(job.sample.to_json(), prompt)).resolved(root)
        system = [{"role": "system", "content": template.system.format(**values)}] if template.system else []
        return {"messages": system + chat_messages(variant, MediaSettings()), "max_tokens": 32, "temperature": 0}

    return build


class _Generator:
    """Sends the bodies whose key has no successful log entry, logging each answer as it arrives."""

    def __init__(self, client: Any, log: RequestLog, tally: Tally, progress: bool | None):
        self.client, self.log, self.tally, self.progress = client, log, tally, progress

    def run(self, desc: str, requests: Iterable[tuple[Key, Any]]) -> None:
        from ...progress import progress

        pending = [(key, body) for key, body in requests if self.log.done(key) is None]
        if not pending:
            return
        bar = progress(len(pending), desc, "req", enabled=self.progress)
        failed = 0
        try:
            for index, completion in self.client.complete_many([body for _, body in pending]):
                entry = {
                    "text": completion.text,
                    "finish_reason": completion.finish_reason,
                    "prompt_tokens": completion.prompt_tokens,
                    "completion_tokens": completion.completion_tokens,
                    "error": completion.error,
                }
                self.log.add(pending[index][0], entry)
                self.tally.requests_sent += 1
                if completion.error:
                    failed += 1
                    self.tally.requests_failed += 1
                    self.tally.first_error = self.tally.first_error or completion.error
                bar.update(1)
                if failed:
                    bar.set_postfix(failed=failed)
        finally:
            bar.close()


def _filter(jobs: list[_Job], log: RequestLog, settings: AugmentSettings, tally: Tally) -> list[tuple[_Job, str]]:
    """The variants that pass every filter, in job order; each rejected one counted under its first filter."""
    kept: list[tuple[_Job, str]] = []
    earlier: dict[str, list[str]] = {}
    for job in jobs:
        source = job.sample.question()
        entry = log.done(job.key("variant"))
        if entry is None:
            failed = log.entries.get(job.key("variant")) or log.entries.get(job.key("pivot")) or {}
            tally.reject("failed", job, failed.get("error") or "not answered")
            continue
        text = clean_output(entry.get("text") or "")
        lang = job.lang if job.lang and checkable(job.lang) else None
        seen = earlier.setdefault(job.sample.id, [])
        reason = first_failure(
            text,
            source=source,
            lang=lang,
            earlier=seen,
            limits=settings.limits,
            truncated=entry.get("finish_reason") == "length",
        )
        if reason:
            tally.reject(reason, job, text)
            continue
        seen.append(normalize_question(text))
        kept.append((job, text))
    return kept


def _checked(
    kept: list[tuple[_Job, str]], log: RequestLog, settings: AugmentSettings, tally: Tally
) -> list[tuple[_Job, str]]:
    out = []
    for job, text in kept:
        entry = log.done(job.key("check"))
        if entry is None:
            failed = log.entries.get(job.key("check")) or {}
            tally.reject("failed", job, failed.get("error") or "not answered")
        elif not answer_matches(entry.get("text") or "", job.sample.answers, threshold=settings.answer_threshold):
            tally.reject("answer_mismatch", job, text, answer=entry.get("text") or "")
        else:
            out.append((job, text))
    return out


def with_question(data: dict[str, Any], text: str) -> dict[str, Any]:
    """The sample (as JSON) with the text of its last user message replaced by `text`; images stay in place."""
    for message in reversed(data["messages"]):
        if message["role"] != "user":
            continue
        parts, replaced = [], False
        for part in message["content"]:
            if part["type"] != "text":
                parts.append(part)
            elif not replaced:
                parts.append({"type": "text", "text": text})
                replaced = True
        message["content"] = parts
        break
    return data


def variant_id(source_id: str, method: str, k: int, via: str) -> str:
    tag = method if method == "paraphrase" else f"{method}-{via}"
    return f"{source_id}~{tag}-{k + 1}"


def _write(
    root: Path,
    out: Path,
    samples: list[Sample],
    kept: list[tuple[_Job, str]],
    settings: AugmentSettings,
    provenance: dict[str, Any],
    log: RequestLog,
    prompts: dict[str, Template],
) -> int:
    by_source: dict[str, list[tuple[_Job, str]]] = {}
    for job, text in kept:
        by_source.setdefault(job.sample.id, []).append((job, text))
    stored: dict[str, str] = {}  # source media path -> path in OUT (each file hashed and linked once)
    with DatasetWriter(out, overwrite=True) as writer:  # OUT holds this run's own earlier output, or nothing
        for sample in samples:
            source = _relinked(sample.to_json(), root, writer, stored)
            if settings.include_sources:
                writer.write(source)
            for job, text in by_source.get(sample.id, []):
                data = with_question(_copy(source), text)
                data["id"] = variant_id(sample.id, job.method, job.k, settings.via)
                augment = {"method": job.method, "variant": job.k + 1, "lang": job.lang}
                if job.method == "backtranslate":
                    augment |= {"via": settings.via, "pivot": (log.done(job.key("pivot")) or {}).get("text")}
                if settings.check_answer:
                    augment["check_answer"] = (log.done(job.key("check")) or {}).get("text")
                augment |= {"prompts": fingerprint(prompts), "endpoint": provenance}
                data["meta"] = {
                    **sample.meta,
                    "source_id": sample.meta.get("source_id") or sample.id,
                    "augment": augment,
                }
                writer.write(data)
        written = writer.samples_written
    return written


def _copy(data: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(data)


def _relinked(data: dict[str, Any], root: Path, writer: DatasetWriter, stored: dict[str, str]) -> dict[str, Any]:
    """The sample with its dataset-relative media stored in OUT (hard links where the filesystem allows)."""
    for message in data["messages"]:
        for part in message["content"]:
            kind = part.get("type")
            if kind not in ("image", "video"):
                continue
            ref = part[kind]
            if os.path.isabs(ref) or "://" in ref or ref.startswith("data:"):
                continue
            if ref not in stored:
                if not (root / ref).is_file():
                    raise DataError(f"media file {ref} is missing", path=root, record=data["id"])
                stored[ref] = writer.add_media_file(root / ref, link=True)
            part[kind] = stored[ref]
    return data
