"""The OpenAI-compatible engine (`--engine openai`): every request goes to an endpoint that speaks the chat
completions API (an API model, `vllm serve`, SGLang, `vlmkit serve`), through `openai_client.ChatClient`.

The messages are the ones the in-process engine would render: the sample's conversation up to its last user
turn (task prompt, system prompt and history included). Images go as base64 data URLs of the stored bytes,
unchanged unless min/max pixels are set; a video goes as its frames, sampled as the in-process engine samples
them (nframes / fps / max_frames). Greedy decoding is `temperature: 0`.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..data.media_settings import MediaSettings
from ..data.schema import ImagePart, Sample, TextPart, VideoPart
from ..errors import ConfigError
from .engine import GenerationParams, GenerationResult, TextStream, as_sample
from .openai_client import ChatClient, Completion
from .options import EndpointSettings, public_url
from .text import StreamText

_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp", "BMP": "image/bmp"}


@dataclass(frozen=True)
class EndpointFamily:
    """What callers ask of a model family, for a model that lives behind an endpoint."""

    name: str = "openai"
    supports_video: bool = True  # sent as frames; the endpoint refuses if its model takes no images


class OpenAIEngine:
    """Engine whose model runs behind an OpenAI-compatible endpoint."""

    backend = "openai"
    remote = True
    processor = None  # prompts are rendered by the endpoint's own chat template

    def __init__(self, model: str, endpoint: EndpointSettings, *, batch_size: int = 16, media: MediaSettings | None):
        self.model_id = model
        self.endpoint = endpoint
        self.batch_size = batch_size
        self.media = media or MediaSettings()
        self.family = EndpointFamily()
        self.client = ChatClient(endpoint, model=model)
        self.system_fingerprints: list[str] = []  # as the endpoint reports them, first seen first

    @classmethod
    def load(
        cls,
        model: str,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        batch_size: int = 16,
        media: MediaSettings | None = None,
        endpoint: EndpointSettings | None = None,
    ) -> OpenAIEngine:
        if adapter:
            raise ConfigError(
                "--adapter applies to a model loaded here; with --engine openai serve the adapter with the endpoint "
                "(e.g. vllm serve BASE --enable-lora --lora-modules NAME=ADAPTER, then --model NAME)"
            )
        return cls(model, endpoint or EndpointSettings(), batch_size=batch_size, media=media)

    def info(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "remote": True,
            "label": f"{self.backend}:{self.model_id}",
            "model": self.model_id,
            "adapter": None,
            "family": self.family.name,
            "base_url": public_url(self.endpoint.base_url) or "https://api.openai.com/v1",
            "system_fingerprint": self.system_fingerprints[-1] if self.system_fingerprints else None,
            "concurrency": self.endpoint.concurrency,
            "request_timeout": self.endpoint.request_timeout,
            "max_retries": self.endpoint.max_retries,
            "price_input": self.endpoint.price_input,
            "price_output": self.endpoint.price_output,
            "hardware": "remote endpoint",
            "media": asdict(self.media),
        }

    def request_media(self, media: MediaSettings | None) -> MediaSettings:
        """The media settings applied here, on the client side, before a request is sent."""
        return media or self.media

    def close(self) -> None:
        self.client.close()

    # --- generation --------------------------------------------------------------------------------
    def generate(
        self, samples: Sequence[Any], params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(samples)
        for index, result in self.iter_generate(samples, params, media=media):
            results[index] = result
        return results  # type: ignore[return-value]

    def iter_generate(
        self, samples: Sequence[Any], params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> Iterator[tuple[int, GenerationResult]]:
        params = params or GenerationParams()
        settings = self.request_media(media)
        options = request_options(params)
        requests = [as_sample(s, i) for i, s in enumerate(samples)]

        def body(sample: Sample) -> Any:
            return lambda: {"messages": chat_messages(sample, settings), **options}

        for index, completion in self.client.complete_many([body(s) for s in requests]):
            if completion.system_fingerprint and completion.system_fingerprint not in self.system_fingerprints:
                self.system_fingerprints.append(completion.system_fingerprint)
            yield index, to_result(completion)

    def stream(
        self, sample: Any, params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> TextStream:
        """The whole answer as one piece (a request is short next to a chat turn's reading time)."""
        request = as_sample(sample)
        messages = chat_messages(request, self.request_media(media))  # bad input raises here, before any piece
        options = request_options(params or GenerationParams())

        def pieces() -> Any:
            completion = self.client.complete({"messages": messages, **options})
            result = to_result(completion)
            if result.text:
                yield result.text
            return result

        return TextStream(pieces())

    # --- from a running event loop (`vlmkit serve` passing requests on) --------------------------------
    async def agenerate(
        self, sample: Any, params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> GenerationResult:
        """One answer, awaited; many may be in flight at once (the endpoint batches them)."""
        body = await self._abody(sample, params, media)
        return to_result(await self.client.acomplete(body))

    async def astream(
        self, sample: Any, params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> AsyncIterator[str | GenerationResult]:
        """Text pieces as the endpoint streams them, then the GenerationResult. Bad input raises before any."""
        body = await self._abody(sample, params, media)
        shown = StreamText(stop=())  # the pieces add up to the stripped answer, as the local engine's stream
        async for item in self.client.astream(body):
            if isinstance(item, Completion):
                result = to_result(item)
                rest = shown.finish(result.text)
                if rest:
                    yield rest
                yield result
            else:
                piece = shown.feed(item)
                if piece:
                    yield piece

    async def _abody(self, sample: Any, params: GenerationParams | None, media: MediaSettings | None) -> dict:
        import asyncio

        request = as_sample(sample)
        options = request_options(params or GenerationParams())
        # reading and encoding images takes milliseconds: off the event loop
        messages = await asyncio.to_thread(chat_messages, request, self.request_media(media))
        return {"messages": messages, **options}


def to_result(completion: Completion) -> GenerationResult:
    if completion.error is not None:
        return GenerationResult(text="", finish_reason="error", error=completion.error, latency_s=completion.latency_s)
    return GenerationResult(
        text=completion.text.strip(),  # as the in-process engine's answers (infer/text.py)
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
        latency_s=completion.latency_s,
        finish_reason="length" if completion.finish_reason == "length" else "stop",
        system_fingerprint=completion.system_fingerprint,
    )


def request_options(params: GenerationParams) -> dict[str, Any]:
    """GenerationParams as chat-completion fields. top_k and repetition_penalty are not OpenAI fields; they go
    along only when set (vLLM and SGLang read them), so a strict API is never sent what it refuses."""
    if params.num_beams > 1:
        raise ConfigError(
            "--engine openai decodes greedily or by sampling: beam search (num_beams > 1) is not available"
        )
    body: dict[str, Any] = {"max_tokens": params.max_new_tokens}
    if params.do_sample:
        body.update(temperature=params.temperature, top_p=params.top_p)
        if params.top_k:
            body["top_k"] = params.top_k
    else:
        body["temperature"] = 0
    if params.repetition_penalty != 1.0:
        body["repetition_penalty"] = params.repetition_penalty
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    return body


def chat_messages(sample: Sample, media: MediaSettings) -> list[dict[str, Any]]:
    """The conversation up to the last user turn, in the chat-completions format."""
    messages = []
    for message in sample.prompt_messages():
        parts: list[dict[str, Any]] = []
        for part in message.content:
            if isinstance(part, TextPart):
                parts.append({"type": "text", "text": part.text})
            elif isinstance(part, ImagePart):
                parts.append({"type": "image_url", "image_url": {"url": image_url(part.image, media)}})
            elif isinstance(part, VideoPart):
                parts += [
                    {"type": "image_url", "image_url": {"url": url}} for url in video_frame_urls(part.video, media)
                ]
        if len(parts) == 1 and parts[0]["type"] == "text":
            messages.append({"role": message.role, "content": parts[0]["text"]})
        else:
            messages.append({"role": message.role, "content": parts})
    return messages


def image_url(source: str, media: MediaSettings) -> str:
    """A data URL of the image's stored bytes; re-encoded only when min/max pixels ask for another size.
    Remote URLs pass through untouched when no resizing is asked (the endpoint fetches them)."""
    from PIL import Image

    from ..data.media import load_image
    from ..data.media.images import read_image_source

    resize = media.min_pixels is not None or media.max_pixels is not None
    if not resize and source.startswith(("http://", "https://", "data:")):
        return source
    if not resize:
        data, name = read_image_source(source)
        with Image.open(io.BytesIO(data)) as probe:
            mime = _MIME.get(probe.format or "")
        if mime is not None:
            return _data_url(data, mime)
    image = fit_area(load_image(source), media.min_pixels, media.max_pixels)
    return _data_url(_encode(image, "PNG"), "image/png")


def video_frame_urls(source: str, media: MediaSettings) -> list[str]:
    """The video's frames as JPEG data URLs, sampled as the in-process engine samples them."""
    from PIL import Image

    from ..data.media.video import load_video

    video = load_video(source, nframes=media.nframes, fps=media.fps, max_frames=media.max_frames)
    urls = []
    for frame in video.frames:
        image = fit_area(Image.fromarray(frame), media.min_pixels, media.max_pixels)
        urls.append(_data_url(_encode(image, "JPEG"), "image/jpeg"))
    return urls


def fit_area(image: Any, min_pixels: int | None, max_pixels: int | None) -> Any:
    """Scale (aspect kept) so that width x height lies within [min_pixels, max_pixels]."""
    from PIL import Image

    area = image.width * image.height
    scale = 1.0
    if max_pixels is not None and area > max_pixels:
        scale = math.sqrt(max_pixels / area)
    elif min_pixels is not None and area < min_pixels:
        scale = math.sqrt(min_pixels / area)
    if scale == 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def _encode(image: Any, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
