"""Turn samples into model inputs with the processor's own chat template and processor.

Labels cover assistant tokens only (every assistant turn), found from the template itself: the text of
assistant turn k is what rendering messages[:k+1] adds to rendering messages[:k] with the generation
prompt. Those character spans are mapped to tokens of the unexpanded text and then onto the processor's
expanded ids (where each media placeholder became a run of media tokens) by aligning the text segments
between placeholders. No token id is hard-coded and no media run is ever cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError, VlmkitError
from .media_settings import MediaSettings
from .schema import ImagePart, Sample, VideoPart

IGNORE_INDEX = -100
DEFAULT_MEDIA_SIZE = (448, 448)  # counted for media that are not local files (URLs): only estimates need it
DEFAULT_VIDEO_FRAMES = 16


@dataclass
class Rendered:
    sample_id: str
    text: str
    spans: list[tuple[int, int]]  # character spans of assistant turns in `text`
    images: list[Any] = field(default_factory=list)
    videos: list[Any] = field(default_factory=list)


class VlmCollator:
    """Batch builder for training (labels) and generation (prompts), shared by train/, infer/ and eval/."""

    def __init__(
        self,
        processor: Any,
        family: Any,
        *,
        max_length: int | None = None,
        on_overflow: str = "error",
        media: MediaSettings | None = None,
        augment: Any = None,
    ):
        if on_overflow not in ("error", "drop"):
            raise VlmkitError(f"on_overflow must be 'error' or 'drop', not '{on_overflow}'")
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.family = family
        self.max_length = max_length
        self.on_overflow = on_overflow
        self.media = media or MediaSettings()
        self.augment = augment  # data/augment.Augmenter: applied to training items tagged with their epoch
        self.dropped: list[str] = []
        self._placeholder_ids = {
            self.tokenizer.convert_tokens_to_ids(t) for t in (family.image_token, family.video_token) if t
        }
        # Special tokens that wrap a placeholder (<|vision_start|> ... <|vision_end|>) may be rewritten
        # along with it (Qwen3-VL puts a timestamp before each frame), so alignment skips them too.
        self._special_ids = set(self.tokenizer.all_special_ids) | {
            i for i, tok in self.tokenizer.added_tokens_decoder.items() if tok.special
        }

    # --- rendering ---------------------------------------------------------------------------
    def _messages(self, sample: Sample, upto: int | None = None) -> list[dict[str, Any]]:
        messages = sample.messages if upto is None else sample.messages[:upto]
        out = []
        for m in messages:
            content = [p.model_dump() for p in m.content]
            if m.role == "assistant" and self.family.append_eos_to_answers:
                # The template leaves the turn open; the answer must end in EOS so the model learns to stop.
                content = [*content, {"type": "text", "text": self.tokenizer.eos_token}]
                content = [{"type": "text", "text": "".join(p["text"] for p in content if p["type"] == "text")}]
            out.append({"role": m.role, "content": content})
        return out

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def render_training(self, sample: Sample) -> Rendered:
        full = self.render(self._messages(sample), add_generation_prompt=False)
        spans = []
        for k, message in enumerate(sample.messages):
            if message.role != "assistant":
                continue
            prefix = self.render(self._messages(sample, k), add_generation_prompt=True)
            last = k + 1 == len(sample.messages)  # the conversation so far is the whole one: no second rendering
            upto = full if last else self.render(self._messages(sample, k + 1), add_generation_prompt=False)
            if not (upto.startswith(prefix) and full.startswith(upto)):
                raise VlmkitError(
                    f"sample '{sample.id}': the chat template of {self.family.name} does not render "
                    f"turn {k} as a prefix of the conversation; cannot locate the answer tokens"
                )
            spans.append((len(prefix), len(upto)))
        if not spans:
            raise DataError("no assistant turn to learn from", record=sample.id, field="messages")
        return Rendered(sample.id, full, spans)

    def render_prompt(self, sample: Sample) -> str:
        """The inference prompt: the conversation up to the last question plus the generation prompt."""
        prompt_messages = Sample(id=sample.id, messages=sample.prompt_messages())
        return self.render(self._messages(prompt_messages), add_generation_prompt=True)

    # --- media -------------------------------------------------------------------------------
    def _load_media(self, sample: Sample, messages: Sequence[Any]) -> tuple[list[Any], list[Any]]:
        from . import media

        images, videos = [], []
        for message in messages:
            for part in message.content:
                if isinstance(part, ImagePart):
                    images.append(media.load_image(part.image))
                elif isinstance(part, VideoPart):
                    if not self.family.supports_video:
                        raise VlmkitError(f"sample '{sample.id}': {self.family.name} does not take video input")
                    videos.append(
                        media.load_video(
                            part.video, nframes=self.media.nframes, fps=self.media.fps, max_frames=self.media.max_frames
                        )
                    )
        return images, videos

    def _process(self, texts: list[str], images: list[list[Any]], videos: list[list[Any]], padding_side: str):
        kwargs: dict[str, Any] = {"text": texts, "return_tensors": "pt", "padding": True}
        kwargs.update(self.family.processor_kwargs(self.media.min_pixels, self.media.max_pixels, self.processor))
        if any(images):
            kwargs["images"] = self.family.processor_images(images)
        flat_videos = [v for row in videos for v in row]
        if flat_videos:
            from .media import video_processor_kwargs

            # Frames were sampled by media.load_video, per config; the processor must not sample again.
            kwargs.update(video_processor_kwargs(flat_videos))
            kwargs.update(self.family.video_call_kwargs(self.processor))
        # Passed with the call too: a processor's own defaults (InternVL's pad left) override the tokenizer's side.
        self.tokenizer.padding_side = padding_side
        kwargs["padding_side"] = padding_side
        try:
            return self.processor(**kwargs)
        except ValueError as exc:
            raise VlmkitError(f"the {self.family.name} processor rejected the batch: {exc}") from None

    # --- exact lengths without loading pixels -------------------------------------------------
    def media_tokens(self, sample: Sample, messages: Sequence[Any] | None = None) -> list[Any]:
        """The family's `MediaTokens` for each image / video of the sample (or of `messages`), in order, from
        file headers only (image size, video frame count and rate): no pixel is decoded. A medium that is
        not a local file (a URL) is counted at DEFAULT_MEDIA_SIZE."""
        from .media import image_size, plan_video

        costs = []
        for message in sample.messages if messages is None else messages:
            for part in message.content:
                if isinstance(part, ImagePart):
                    width, height = _header(image_size, part.image) or DEFAULT_MEDIA_SIZE
                    costs.append(self.family.image_tokens(self.processor, width, height, self.media))
                elif isinstance(part, VideoPart) and self.family.supports_video:
                    plan = _header(plan_video, part.video, **self._frame_sampling())
                    if plan is None:
                        indices, fps, (width, height) = list(range(DEFAULT_VIDEO_FRAMES)), 1.0, DEFAULT_MEDIA_SIZE
                    else:
                        indices, fps, width, height = plan.frame_indices, plan.fps, plan.width, plan.height
                    costs.append(self.family.video_tokens(self.processor, indices, fps, width, height))
        return costs

    def sequence_length(self, sample: Sample, rendered: Rendered | None = None) -> int:
        """The exact length of the sample's training sequence (what `training_batch` makes of it, before
        padding), from one rendering and the family's media token rule: rendered tokens + sum(tokens - 1)."""
        rendered = rendered or self.render_training(sample)
        text_tokens = len(self.tokenizer(rendered.text, add_special_tokens=False)["input_ids"])
        return text_tokens + sum(cost.tokens - 1 for cost in self.media_tokens(sample))

    def _frame_sampling(self) -> dict[str, Any]:
        return {"nframes": self.media.nframes, "fps": self.media.fps, "max_frames": self.media.max_frames}

    # --- training batches --------------------------------------------------------------------
    def __call__(self, samples: Sequence[Any]) -> Any:
        from .image_augment import untag

        plain, epoch = untag(samples)  # training items come tagged with their epoch (train/data.py)
        return self.training_batch(plain, epoch=epoch)

    def training_batch(self, samples: Sequence[Sample], epoch: int | None = None) -> Any:
        """Labelled, right-padded batch. With `augment` set and an `epoch` given, images and video frames are
        augmented (data/augment.py) before the processor sees them; otherwise they go in as loaded."""
        import torch

        rendered = [self.render_training(s) for s in samples]
        for r, s in zip(rendered, samples):
            r.images, r.videos = self._load_media(s, s.messages)
            if self.augment is not None and epoch is not None:
                r.images, r.videos = self._augmented(s.id, r.images, r.videos, epoch)
        batch = self._process(
            [r.text for r in rendered], [r.images for r in rendered], [r.videos for r in rendered], padding_side="right"
        )
        labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        keep = []
        for row, r in enumerate(rendered):
            length = int(batch["attention_mask"][row].sum())
            if self.max_length is not None and length > self.max_length:
                if self.on_overflow == "error":
                    raise VlmkitError(self._overflow_message(r.sample_id, batch["input_ids"][row, :length]))
                self.dropped.append(r.sample_id)
                continue
            keep.append(row)
            ids = batch["input_ids"][row, :length].tolist()
            mask = self._label_mask(r, ids)
            labels[row, :length] = torch.where(
                torch.tensor(mask), batch["input_ids"][row, :length], torch.tensor(IGNORE_INDEX)
            )
        if len(keep) < len(rendered):
            kept = [s for s, r in zip(samples, rendered) if r.sample_id not in self.dropped]
            if not kept:
                raise VlmkitError(
                    f"every sample in the batch is longer than max_length={self.max_length}: "
                    f"{', '.join(r.sample_id for r in rendered)}"
                )
            return self.training_batch(kept, epoch=epoch)
        batch["labels"] = labels
        return batch

    def _augmented(self, sample_id: str, images: list[Any], videos: list[Any], epoch: int) -> tuple[list, list]:
        """Each medium keyed by its position in the sample (images first, then videos), so its random state does
        not depend on the batch it landed in."""
        images = [self.augment.image(img, epoch, sample_id, k) for k, img in enumerate(images)]
        videos = [self.augment.video(v, epoch, sample_id, len(images) + k) for k, v in enumerate(videos)]
        return images, videos

    def _overflow_message(self, sample_id: str, ids: Any) -> str:
        media = sum(int((ids == i).sum()) for i in self._media_token_ids())
        return (
            f"sample '{sample_id}' is {len(ids)} tokens ({media} of them image/video tokens), over "
            f"max_length={self.max_length}; it cannot be truncated without cutting media tokens. Raise "
            f"max_length, lower max_pixels / nframes, or drop over-long samples (on_overflow='drop')"
        )

    def _media_token_ids(self) -> list[int]:
        return sorted(self._placeholder_ids)

    def _label_mask(self, r: Rendered, expanded: list[int]) -> list[bool]:
        enc = self.tokenizer(r.text, add_special_tokens=False, return_offsets_mapping=True)
        unexpanded, offsets = enc["input_ids"], enc["offset_mapping"]
        # A token is an answer token only if it lies wholly inside an assistant span: a token that starts in
        # the answer's trailing space but runs into the next turn (" USER" in LLaVA) is template, not answer.
        token_mask = [any(a <= start and end <= b for a, b in r.spans) for start, end in offsets]
        return _map_mask(unexpanded, token_mask, expanded, self._placeholder_ids, self._special_ids, r.sample_id)

    # --- generation prompts ------------------------------------------------------------------
    def generation_batch(self, samples: Sequence[Sample]) -> Any:
        """Left-padded prompts (conversation up to the last question + generation prompt) with media."""
        texts, images, videos = [], [], []
        for s in samples:
            texts.append(self.render_prompt(s))
            imgs, vids = self._load_media(s, s.prompt_messages())
            images.append(imgs)
            videos.append(vids)
        return self._process(texts, images, videos, padding_side="left")


def _header(read: Any, source: str, **kwargs: Any) -> Any:
    """`read(source)` for a local file; None for URLs and unreadable files (the batch reports those)."""
    if "://" in source or source.startswith("data:"):
        return None
    try:
        return read(source, **kwargs)
    except Exception:
        return None


def _map_mask(
    unexpanded: list[int],
    mask: list[bool],
    expanded: list[int],
    placeholders: set[int],
    specials: set[int],
    sample_id: str,
) -> list[bool]:
    """Carry a per-token mask from unexpanded ids onto the processor's expanded ids.

    The processor only replaces media placeholders by runs of special tokens, so the text between
    placeholders appears unchanged, in order, in the expanded ids; each such segment is located by search.
    """
    out = [False] * len(expanded)
    cursor = 0
    start = 0
    for bound, resume in _media_regions(unexpanded, placeholders, specials):
        segment = unexpanded[start:bound]
        if segment:
            at = _find(expanded, segment, cursor)
            if at < 0:
                raise VlmkitError(
                    f"sample '{sample_id}': could not align the processor's tokens with the rendered "
                    "prompt (the processor changed text outside the media placeholders)"
                )
            for offset, flag in enumerate(mask[start:bound]):
                out[at + offset] = flag
            cursor = at + len(segment)
        start = resume
    return out


def _media_regions(ids: list[int], placeholders: set[int], specials: set[int]) -> list[tuple[int, int]]:
    """(start, end) of each placeholder with its adjacent special wrapper tokens, then the end sentinel."""
    regions = []
    for i, token in enumerate(ids):
        if token not in placeholders:
            continue
        left, right = i, i + 1
        if left > 0 and ids[left - 1] in specials and ids[left - 1] not in placeholders:
            left -= 1
        if right < len(ids) and ids[right] in specials and ids[right] not in placeholders:
            right += 1
        if regions and left < regions[-1][1]:
            left = regions[-1][1]
        regions.append((left, right))
    regions.append((len(ids), len(ids)))
    return regions


def _find(haystack: list[int], needle: list[int], start: int) -> int:
    first, n = needle[0], len(needle)
    for i in range(start, len(haystack) - n + 1):
        if haystack[i] == first and haystack[i : i + n] == needle:
            return i
    return -1
