"""The augment report: `OUT/augment_report.json` and the few lines the terminal shows.

Counts per filter with up to five examples each (source id, method, variant, the rejected text), the samples
kept and written, and the token cost as the endpoint reported it (`usage.prompt_tokens` and
`completion_tokens` of every successful request in the log, earlier runs of the same OUT included), priced when
`--price-input` / `--price-output` are given.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .filters import FILTERS

REPORT_FILE = "augment_report.json"
EXAMPLES = 5


@dataclass
class Tally:
    """What happened in this run, filled in by the runner."""

    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    requests_sent: int = 0
    requests_failed: int = 0
    first_error: str | None = None
    dataset_lang: str | None = None  # --lang, or the language most questions are in (--lang auto)

    def reject(self, reason: str, job: Any, text: str, **extra: Any) -> None:
        self.rejected[reason] += 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES:
            shown.append(
                {
                    "source_id": job.sample.id,
                    "method": job.method,
                    "variant": job.k + 1,
                    "source": job.sample.question(),
                    "text": text,
                    **extra,
                }
            )

    def skip(self, reason: str, sample_id: str) -> None:
        self.skipped[reason] += 1
        shown = self.skipped_examples.setdefault(reason, [])
        if len(shown) < EXAMPLES:
            shown.append(sample_id)


def build_report(
    *,
    dataset: Path,
    out: Path,
    settings: Any,
    endpoint: Any,
    provenance: dict[str, Any],
    sources: int,
    jobs: int,
    kept: int,
    written: int,
    tally: Tally,
    log: Any,
) -> dict[str, Any]:
    entries = [e for e in log.entries.values() if not e.get("error")]
    prompt = sum(int(e.get("prompt_tokens") or 0) for e in entries)
    completion = sum(int(e.get("completion_tokens") or 0) for e in entries)
    cost: dict[str, Any] = {
        "requests": len(entries),
        "requests_sent_this_run": tally.requests_sent,
        "requests_failed_this_run": tally.requests_failed,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }
    if endpoint.priced:
        cost["usd"] = round(((endpoint.price_input or 0) * prompt + (endpoint.price_output or 0) * completion) / 1e6, 6)
    used = [f for f in FILTERS if f != "answer_mismatch" or settings.check_answer]
    return {
        "dataset": str(dataset),
        "out": str(out),
        "methods": list(settings.methods),
        "n": settings.n,
        "lang": settings.lang,
        "dataset_lang": tally.dataset_lang,
        "via": settings.via if "backtranslate" in settings.methods else None,
        "include_sources": settings.include_sources,
        "check_answer": settings.check_answer,
        "limits": {"max_ratio": settings.limits.max_ratio, "max_chars": settings.limits.max_chars},
        "endpoint": provenance,
        "sources": sources,
        "skipped_sources": {
            reason: {"count": count, "examples": tally.skipped_examples[reason]}
            for reason, count in tally.skipped.items()
        },
        "variants_requested": jobs,
        "filters": {name: {"count": tally.rejected[name], "examples": tally.examples.get(name, [])} for name in used},
        "variants_kept": kept,
        "samples_written": written,
        "tokens": cost,
        "resumed": log.resumed,
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The short terminal summary: what was asked, what each filter removed (first example), what was kept."""
    endpoint = report["endpoint"]
    lines = [
        f"{report['sources']:,} source samples x {report['n']} x {'+'.join(report['methods'])} -> "
        f"{report['variants_requested']:,} variants asked of {endpoint['model']} at {endpoint['base_url']}"
        + (f" (questions in {report['dataset_lang']}, detected)" if report["lang"] == "auto" else "")
    ]
    for name, entry in report["filters"].items():
        if entry["count"]:
            example = entry["examples"][0]
            shown = (example.get("text") or "")[:60]
            lines.append(f"  {name}: {entry['count']:,} (e.g. {example['source_id']}: {shown!r})")
    for reason, entry in report["skipped_sources"].items():
        lines.append(f"  skipped sources, {reason.replace('_', ' ')}: {entry['count']:,}")
    tokens = report["tokens"]
    cost = f", ${tokens['usd']:.4f}" if "usd" in tokens else ""
    lines.append(
        f"kept {report['variants_kept']:,} variants; {report['samples_written']:,} samples written"
        f"{' (sources included)' if report['include_sources'] else ' (variants only)'}; "
        f"tokens {tokens['prompt_tokens']:,} prompt + {tokens['completion_tokens']:,} completion{cost} "
        f"({tokens['requests_sent_this_run']:,} requests sent now, {tokens['requests']:,} in the log)"
    )
    return lines
