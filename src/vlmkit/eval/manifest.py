"""The run manifest (manifest.json): everything needed to know what produced a run and to refuse mixing
runs on resume: model, adapter, task prompt and generation settings, pixel settings, data hash, versions."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import sys
from collections.abc import Iterable
from typing import Any

from ..provenance import package_versions

MANIFEST_FILE = "manifest.json"
PACKAGES = ("vlmkit", "torch", "transformers", "peft", "accelerate", "pycocoevalcap", "numpy", "pillow")
# Keys that must match for a run directory to be resumed (anything else may differ between invocations).
RESUME_KEYS = (
    "task.name",
    "task.prompt",
    "task.system_prompt",
    "task.generation",
    "data_hash",
    "model",
    "adapter",
    "fingerprint",
    "pixels",
    "engine.quantization",
    "engine.backend",
    "engine.base_url",
    "engine.vllm_args",
)
# Keys compared by what they name rather than how: a local folder by its resolved path.
IDENTITY_KEYS = {"model": "model_path", "adapter": "adapter_dir"}


def data_hash(samples: Iterable[Any]) -> str:
    """sha256 over the evaluated samples (canonical JSON, in order): equal hash, equal evaluation data."""
    digest = hashlib.sha256()
    for sample in samples:
        obj = sample.to_json() if hasattr(sample, "to_json") else sample
        digest.update(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


def build_manifest(task_info: dict[str, Any], samples: list[Any], **run: Any) -> dict[str, Any]:
    manifest = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "task": task_info,
        "generation": task_info.get("generation"),
        "prompt": task_info.get("prompt"),
        "data_hash": data_hash(samples),
        "samples": len(samples),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(PACKAGES),
    }
    manifest.update({k: v for k, v in run.items() if v is not None})
    return manifest


def _get(obj: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def resume_mismatch(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first key whose value differs between an existing run's manifest and this one, or None."""
    for key in RESUME_KEYS:
        resolved = IDENTITY_KEYS.get(key)
        if resolved and old.get(resolved) and new.get(resolved):
            if old[resolved] != new[resolved]:
                return key
            continue
        if key == "fingerprint" and "fingerprint" not in old:  # a run from before fingerprints were recorded
            continue
        if key in ("engine.backend", "engine.base_url", "engine.vllm_args") and _get(old, key) is None:
            continue  # older manifests: the in-process engine's info had no such keys, nor vLLM's its arguments
        if _get(old, key) != _get(new, key):
            return key
    return None
