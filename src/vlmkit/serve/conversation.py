"""An OpenAI chat request -> the `Sample` and `GenerationParams` the engine takes.

Media parts are fetched and checked by `media_fetch` and written into a per-request folder, so the engine only
ever opens files the server itself wrote. Consecutive messages of the same role are merged (OpenAI allows them;
our chat templates want alternating turns) and `developer` is the newer name of `system`.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..data.schema import ImagePart, Sample, TextPart, VideoPart
from .errors import ApiError
from .media_fetch import MediaPolicy, check_video_file, read_image, read_video
from .openai_schema import ChatCompletionRequest, ImageContent, TextContent, VideoContent


def request_to_sample(
    request: ChatCompletionRequest,
    workdir: Path,
    policy: MediaPolicy,
    *,
    supports_video: bool,
    sample_id: str | None = None,
) -> Sample:
    """Validate roles and media and build the Sample; every refusal is an ApiError naming the message/part."""
    media_parts = sum(
        1 for m in request.messages if isinstance(m.content, list) for p in m.content if not isinstance(p, TextContent)
    )
    if media_parts > policy.max_media_per_request:
        raise ApiError(
            f"{media_parts} images/videos in one request, over this server's limit of {policy.max_media_per_request}",
            status=413,
            code="too_many_media",
        )
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(request.messages):
        role = "system" if message.role == "developer" else message.role
        parts = _parts(message.content, index, workdir, policy, supports_video)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(parts)
        else:
            turns.append({"role": role, "content": parts})
    if turns[-1]["role"] != "user":
        raise ApiError(
            "the last message must be from the user (the question to answer)", code="invalid_messages", param="messages"
        )
    try:
        return Sample(id=sample_id or uuid.uuid4().hex, messages=turns)
    except ValidationError as exc:
        raise ApiError(
            exc.errors()[0]["msg"].removeprefix("Value error, "), code="invalid_messages", param="messages"
        ) from None


def _parts(content: Any, index: int, workdir: Path, policy: MediaPolicy, supports_video: bool) -> list[Any]:
    if content is None:
        return [TextPart(text="")]
    if isinstance(content, str):
        return [TextPart(text=content)]
    parts: list[Any] = []
    for number, part in enumerate(content):
        where = f"messages[{index}].content[{number}]"
        if isinstance(part, TextContent):
            parts.append(TextPart(text=part.text))
        elif isinstance(part, ImageContent):
            data, suffix = _located(read_image, part.image_url.url, policy, where)
            parts.append(ImagePart(image=str(_write(workdir, data, suffix))))
        elif isinstance(part, VideoContent):
            if not supports_video:
                raise ApiError(f"{where}: this model does not take video input", code="video_unsupported", param=where)
            data, suffix = _located(read_video, part.video_url.url, policy, where)
            path = _write(workdir, data, suffix)
            try:
                check_video_file(path, part.video_url.url, policy)
            except ApiError as exc:
                raise ApiError(f"{where}: {exc.message}", status=exc.status, code=exc.code, param=where) from None
            parts.append(VideoPart(video=str(path)))
    return parts


def _located(read: Any, url: str, policy: MediaPolicy, where: str) -> tuple[bytes, str]:
    """Run a media reader, prefixing any refusal with the message/part it came from."""
    try:
        return read(url, policy)
    except ApiError as exc:
        raise ApiError(f"{where}: {exc.message}", status=exc.status, code=exc.code, param=where) from None


def _write(workdir: Path, data: bytes, suffix: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"media-{len(list(workdir.iterdir())):03d}{suffix}"
    path.write_bytes(data)
    return path


def request_to_params(request: ChatCompletionRequest, *, default_max_tokens: int, max_tokens_cap: int) -> Any:
    """OpenAI sampling fields -> GenerationParams; temperature 0 means greedy, as in OpenAI's API."""
    from ..infer import GenerationParams

    max_tokens = request.requested_max_tokens()
    if max_tokens is not None and max_tokens > max_tokens_cap:
        raise ApiError(
            f"max_tokens is {max_tokens:,}, over this server's limit of {max_tokens_cap:,}",
            code="max_tokens_too_large",
            param="max_tokens",
        )
    temperature = 1.0 if request.temperature is None else request.temperature
    top_p = 1.0 if request.top_p is None else request.top_p
    sampling = temperature > 0
    return GenerationParams(
        max_new_tokens=min(max_tokens or default_max_tokens, max_tokens_cap),
        do_sample=sampling,
        temperature=temperature if sampling else 1.0,
        top_p=top_p if sampling else 1.0,
        stop=list(request.stop or []),
        seed=request.seed,
    )
