"""The managed vLLM engine (`--engine vllm`): vlmkit starts vLLM's OpenAI server from vLLM's own environment
(`vllm_launcher`), then sends every request through the OpenAI-compatible engine, so resume, faults,
concurrency, token counts and reports behave as with `--engine openai`.

What differs from pointing `--engine openai` at a vLLM you run yourself: vLLM gets the run's facts (adapter
as a LoRA module with a rank it accepts, image resolution bounds as processor kwargs, images per prompt,
dtype, context length), images go as their stored bytes (vLLM's processor resizes them exactly as training's
did), the model's local files are fingerprinted like the in-process engine's, and the server is stopped when
vlmkit ends, however it ends.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..data.media_settings import MediaSettings
from .engine import GenerationParams, GenerationResult
from .openai_engine import EndpointFamily, OpenAIEngine
from .options import EndpointSettings, VllmSettings
from .vllm_launcher import VllmServer, answer_args, launch, resizes_by_pixels

DEFAULT_SERVED_NAME = "vlmkit-model"


def _announce(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class VllmEngine(OpenAIEngine):
    """OpenAIEngine whose endpoint is a vLLM server this process started and stops."""

    backend = "vllm"

    def __init__(
        self,
        model: str,
        server: VllmServer,
        served_name: str,
        *,
        adapter: str | None,
        dtype: str,
        endpoint: EndpointSettings,
        batch_size: int,
        media: MediaSettings | None,
    ):
        endpoint = dataclasses.replace(endpoint, base_url=f"{server.url}/v1")
        super().__init__(served_name, endpoint, batch_size=batch_size, media=media)
        self.server = server
        self.model_path = model
        self.adapter = adapter
        self.dtype = dtype
        self.family = EndpointFamily(name="vllm")
        # the processor resizes by min/max pixels where it can; elsewhere the client does it (as --engine openai)
        self._server_resizes = resizes_by_pixels(model) is not False

    @classmethod
    def load(  # type: ignore[override]
        cls,
        model: str,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        batch_size: int = 16,
        media: MediaSettings | None = None,
        endpoint: EndpointSettings | None = None,
        vllm: VllmSettings | None = None,
        served_name: str | None = None,
        announce: Any = _announce,
    ) -> VllmEngine:
        settings = vllm or VllmSettings()
        name = served_name or (Path(model).name if Path(model).exists() else model.rsplit("/", 1)[-1])
        name = name or DEFAULT_SERVED_NAME
        server = launch(
            model,
            served_name=name,
            adapter=adapter,
            dtype=dtype,
            media=media,
            settings=settings,
            announce=announce,
        )
        try:
            return cls(
                model,
                server,
                name,
                adapter=adapter,
                dtype=dtype,
                endpoint=endpoint or EndpointSettings(),
                batch_size=batch_size,
                media=media,
            )
        except BaseException:
            server.stop()
            raise

    def iter_generate(
        self, samples: Sequence[Any], params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> Iterator[tuple[int, GenerationResult]]:
        """As OpenAIEngine's; a failed request whose cause is that vLLM has exited raises EngineGone with vLLM's
        log, so a run stops instead of recording every remaining sample as failed (resume finishes it)."""
        for index, result in super().iter_generate(samples, params, media=media):
            if result.error and not self.server.running:
                raise self.server.exited_error("while answering")
            yield index, result

    @property
    def alive(self) -> bool:
        """Whether vLLM's server is still running (`vlmkit serve`'s /health reports it)."""
        return self.server.running

    def request_media(self, media: MediaSettings | None) -> MediaSettings:
        """Frames are sampled here; images go as stored and vLLM's processor applies the pixel bounds."""
        settings = media or self.media
        if self._server_resizes:
            return dataclasses.replace(settings, min_pixels=None, max_pixels=None)
        return settings

    def close(self) -> None:
        super().close()
        self.server.stop()

    def info(self) -> dict[str, Any]:
        info = super().info()
        info.update(
            backend=self.backend,
            remote=False,  # the weights are local files: fingerprinted, and compared on resume
            label=f"{self.backend}:{Path(self.model_path).name or self.model_path}",
            model=self.model_path,
            adapter=self.adapter,
            served_model_name=self.model_id,
            base_url=None,  # a new port each launch: not part of the run's identity
            dtype=self.dtype,
            hardware="vLLM server",
            vllm={
                "version": self.server.version,
                "python": self.server.python,
                "args": list(self.server.args),
                "env": dict(self.server.env),
                "log": str(self.server.log_file),
                "url": self.server.url,
            },
        )
        # the pass-through arguments that can change the answers (--quantization, --max-model-len): compared on resume
        info["vllm_args"] = answer_args(self.server.extra_args)
        for key in ("price_input", "price_output"):
            info.pop(key, None)
        return info
