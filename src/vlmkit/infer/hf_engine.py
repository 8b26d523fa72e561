"""The transformers backend: batched `model.generate` with left padding, length buckets and per-request errors.

Prompts are built by the shared VlmCollator (chat template + processor, left padded), so inference sees
exactly what training saw. Greedy batched output equals one-at-a-time output: left padding comes with the
attention mask, from which transformers derives position ids (and Qwen's M-RoPE indices).

A request that cannot run (unreadable image, empty question, media that can't be aligned) gets a result
with `error` set and the rest of its batch still runs: a batch that fails to encode is checked request by
request, and a batch that fails in `generate` is split in halves until the failing request is alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, astuple
from functools import partial
from typing import Any

from ..data.collate import MediaSettings, VlmCollator
from ..data.schema import Sample
from ..errors import VlmkitError
from ..models.loading import LoadedModel, load_model
from ..provenance import hardware_name
from .batch_stream import BatchTextStreamer
from .batching import plan_batches
from .engine import GenerationParams, GenerationResult, TextStream, as_sample
from .media_check import check_media_tokens
from .prompt_limits import PromptLimits, PromptTooLong
from .stopping import cancel_criterion, stop_strings_criterion
from .text import StreamText, final_text


class HFEngine:
    """Engine over a transformers model (optionally with a LoRA adapter attached through peft)."""

    backend = "hf"

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        batch_size: int = 16,
        media: MediaSettings | None = None,
        max_prompt_tokens: int | None = None,
    ):
        self.model = loaded.model
        self.processor = loaded.processor
        self.tokenizer = loaded.processor.tokenizer
        self.family = loaded.family
        self.model_id = loaded.source
        self.adapter = loaded.adapter
        self.batch_size = batch_size
        self.media = media or MediaSettings()
        self.prompt_limits = PromptLimits.for_model(self.model.config, max_prompt_tokens)
        self._collators: dict[tuple, VlmCollator] = {}
        self._lock = threading.RLock()  # one generate at a time: the model and tokenizer are not thread-safe
        self._eos_ids = self._stop_token_ids()
        self._eos_set = set(self._eos_ids)
        pad = self.model.generation_config.pad_token_id
        self._pad_id = (
            pad
            if pad is not None
            else (self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self._eos_ids[0])
        )

    @classmethod
    def load(
        cls,
        model: str,
        *,
        adapter: str | None = None,
        dtype: str = "auto",
        batch_size: int = 16,
        media: MediaSettings | None = None,
        device: str | None = None,
        attn_implementation: str | None = None,
        quantization: str | None = None,
        max_prompt_tokens: int | None = None,
    ) -> HFEngine:
        import torch

        if device is None and quantization is None and torch.cuda.is_available():
            device = "cuda"
        loaded = load_model(
            model,
            adapter=adapter,
            dtype=dtype,
            attn_implementation=attn_implementation,
            quantization=quantization,
            device=device,
        )
        return cls(loaded, batch_size=batch_size, media=media, max_prompt_tokens=max_prompt_tokens)

    # --- settings ----------------------------------------------------------------------------
    def _collator(self, media: MediaSettings | None) -> VlmCollator:
        settings = media if media is not None else self.media
        key = astuple(settings)
        if key not in self._collators:
            self._collators[key] = VlmCollator(self.processor, self.family, media=settings)
        return self._collators[key]

    def _stop_token_ids(self) -> list[int]:
        """The family's end-of-turn tokens plus the checkpoint's own eos ids (real checkpoints may list fewer)."""
        ids: list[int] = []
        configured = self.model.generation_config.eos_token_id
        configured = configured if isinstance(configured, list) else [configured] if configured is not None else []
        unk = self.tokenizer.unk_token_id
        for token in self.family.stop_tokens:
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if token_id is not None and token_id != unk and token_id not in ids:
                ids.append(token_id)
        ids += [i for i in configured if i not in ids]
        if not ids and self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def info(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            "backend": self.backend,
            "model": self.model_id,
            "adapter": self.adapter,
            "family": self.family.name,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),
            "device": str(self.device),
            "hardware": hardware_name(self.device),
            "quantization": self._quantization(),
            "batch_size": self.batch_size,
            "prompt_limits": self.prompt_limits.as_dict(),
            "media": asdict(self.media),
            "stop_token_ids": self._eos_ids,
            "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        }

    def _quantization(self) -> str | None:
        """'4bit' / '8bit' when bitsandbytes holds the weights (from the config transformers wrote on load)."""
        config = getattr(self.model.config, "quantization_config", None)
        if config is None:
            return None
        values = config if isinstance(config, dict) else config.to_dict()
        if values.get("load_in_4bit"):
            return "4bit"
        if values.get("load_in_8bit"):
            return "8bit"
        method = values.get("quant_method")
        return str(method) if method else None

    # --- batch generation ----------------------------------------------------------------------
    def generate(
        self,
        samples: Sequence[Sample],
        params: GenerationParams | None = None,
        *,
        media: MediaSettings | None = None,
        cancel: Any = None,
        on_text: Callable[[int, str], None] | None = None,
    ) -> list[GenerationResult]:
        """`cancel`: an object with `is_set()` (a threading.Event); once set, generation stops at the next token
        and the answers are what was generated so far (a server sets it when every client of a batch left).
        `on_text(index, text)`: called with each request's new answer text as it is generated, from the batch's
        one `generate` call (a server streams a whole batch this way); the texts add up to the result's text."""
        results: list[GenerationResult | None] = [None] * len(samples)
        for index, result in self.iter_generate(samples, params, media=media, cancel=cancel, on_text=on_text):
            results[index] = result
        return results  # type: ignore[return-value]

    def iter_generate(
        self,
        samples: Sequence[Sample],
        params: GenerationParams | None = None,
        *,
        media: MediaSettings | None = None,
        cancel: Any = None,
        on_text: Callable[[int, str], None] | None = None,
    ) -> Iterator[tuple[int, GenerationResult]]:
        params = params or GenerationParams()
        samples = [as_sample(s, k) for k, s in enumerate(samples)]
        collator = self._collator(media)
        for indices in plan_batches(samples, self.batch_size):
            started = time.perf_counter()
            batch = [samples[i] for i in indices]
            results = [self._refusal(s) for s in batch]
            runnable = [k for k, r in enumerate(results) if r is None]
            outs = None
            if on_text is not None:  # per request: what was shown so far, and where new text goes
                outs = {id(batch[k]): (StreamText(params.stop), partial(on_text, indices[k])) for k in runnable}
            if runnable:
                for k, result in zip(runnable, self._run([batch[k] for k in runnable], params, collator, cancel, outs)):
                    results[k] = result
            elapsed = time.perf_counter() - started
            for index, result in zip(indices, results):
                result.latency_s = elapsed  # the wall time its batch took, i.e. what this request waited
                yield index, result

    def _refusal(self, sample: Sample) -> GenerationResult | None:
        try:
            self.prompt_limits.check_chars(sample)
        except PromptTooLong as exc:
            return GenerationResult.failed(str(exc), code=exc.code)
        problem = self.request_problem(sample)
        return GenerationResult.failed(problem) if problem else None

    def request_problem(self, sample: Sample) -> str | None:
        """Why a request can't run, found without loading anything; None if it looks fine."""
        try:
            self.prompt_limits.check_chars(sample)  # first: the checks below read the text
        except PromptTooLong as exc:
            return str(exc)
        question = next((m for m in reversed(sample.prompt_messages()) if m.role == "user"), None)
        if question is None or not question.text().strip():
            return "empty question: the last user message has no text"
        reserved = [t for t in (self.family.image_token, self.family.video_token) if t]
        for message in sample.prompt_messages():
            for token in reserved:
                if token in message.text():
                    return f"the text contains '{token}', which is reserved for the model's media placeholders"
        if sample.media("video") and not self.family.supports_video:
            return f"{self.family.name} models do not take video input"
        return None

    def _run(
        self,
        samples: list[Sample],
        params: GenerationParams,
        collator: VlmCollator,
        cancel: Any = None,
        outs: Any = None,
    ) -> list[GenerationResult]:
        """Encode and generate one batch; a failure is narrowed down to the requests that cause it."""
        try:
            encoded = self._encode(samples, collator)
        except Exception as exc:
            if len(samples) == 1:
                return [GenerationResult.failed(_describe(exc), code=getattr(exc, "code", None))]
            return self._run_without_unencodable(samples, params, collator, cancel, outs)
        streamer = None
        if outs is not None:
            quiet = (StreamText(()), _ignore)
            rows = [outs.get(id(s), quiet) for s in samples]
            streamer = BatchTextStreamer(self.tokenizer, [r[0] for r in rows], [r[1] for r in rows], self._eos_set)
        try:
            with self._lock:
                # transformers streams greedy and sampling only; beam search answers arrive whole (finish below)
                live = streamer if params.num_beams == 1 else None
                output = self._call_generate(encoded, params, cancel=cancel, streamer=live)
        except Exception as exc:
            if len(samples) == 1:
                return [GenerationResult.failed(_describe(exc))]
            middle = len(samples) // 2
            return self._run(samples[:middle], params, collator, cancel, outs) + self._run(
                samples[middle:], params, collator, cancel
            )
        results = self._results(encoded, output, params)
        if streamer is not None:
            streamer.finish([r.text for r in results])
        return results

    def _run_without_unencodable(
        self,
        samples: list[Sample],
        params: GenerationParams,
        collator: VlmCollator,
        cancel: Any = None,
        outs: Any = None,
    ) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(samples)
        for k, sample in enumerate(samples):
            try:
                self._encode([sample], collator)
            except Exception as exc:
                results[k] = GenerationResult.failed(_describe(exc), code=getattr(exc, "code", None))
        good = [k for k, r in enumerate(results) if r is None]
        if len(good) == len(samples):  # each encodes alone but not together: split instead
            middle = len(samples) // 2
            return self._run(samples[:middle], params, collator, cancel, outs) + self._run(
                samples[middle:], params, collator, cancel
            )
        if good:
            for k, result in zip(good, self._run([samples[k] for k in good], params, collator, cancel, outs)):
                results[k] = result
        return results  # type: ignore[return-value]

    def _encode(self, samples: Sequence[Sample], collator: VlmCollator) -> Any:
        batch = collator.generation_batch(samples)
        for tokens in batch["attention_mask"].sum(-1).tolist():  # before any compute is spent on the batch
            self.prompt_limits.check_tokens(int(tokens))
        check_media_tokens(batch, samples, self.family, self.processor)
        batch = batch.to(self.device)
        dtype = next(self.model.parameters()).dtype
        return batch.to(dtype) if dtype.is_floating_point else batch

    def _generate_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        # Sampling knobs are passed only when sampling: unset, they don't override the checkpoint's config
        # and transformers doesn't warn that they are unused.
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": params.do_sample,
            "num_beams": params.num_beams,
            "repetition_penalty": params.repetition_penalty,
            "eos_token_id": self._eos_ids,
            "pad_token_id": self._pad_id,
        }
        if params.do_sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
        return kwargs

    def _call_generate(
        self, encoded: Any, params: GenerationParams, *, streamer: Any = None, cancel: Any = None
    ) -> Any:
        import torch
        from transformers import StoppingCriteriaList

        criteria = StoppingCriteriaList()
        if params.stop:
            criteria.append(stop_strings_criterion(self.tokenizer, params.stop, encoded["input_ids"].shape[1]))
        if cancel is not None:
            criteria.append(cancel_criterion(cancel))
        if params.seed is not None and params.do_sample:
            torch.manual_seed(params.seed)  # seeds every device; sampling draws from torch's generator only
        with torch.inference_mode():
            return self.model.generate(
                **encoded, **self._generate_kwargs(params), stopping_criteria=criteria, streamer=streamer
            )

    def _results(self, encoded: Any, sequences: Any, params: GenerationParams) -> list[GenerationResult]:
        prompt_width = encoded["input_ids"].shape[1]
        prompt_tokens = encoded["attention_mask"].sum(-1).tolist()
        results = []
        for row, n_prompt in enumerate(prompt_tokens):
            new = sequences[row, prompt_width:].tolist()
            end = next((k for k, token in enumerate(new) if token in self._eos_set), None)
            ids = new if end is None else new[:end]
            if end is None:
                while ids and ids[-1] == self._pad_id:  # rows that stopped on a stop string are padded
                    ids.pop()
            text, hit_stop = final_text(self.tokenizer.decode(ids, skip_special_tokens=True), params.stop)
            results.append(
                GenerationResult(
                    text=text,
                    prompt_tokens=int(n_prompt),
                    completion_tokens=len(ids) + (end is not None),
                    finish_reason="stop" if end is not None or hit_stop else "length",
                )
            )
        return results

    # --- streaming -----------------------------------------------------------------------------
    def stream(
        self, sample: Sample, params: GenerationParams | None = None, *, media: MediaSettings | None = None
    ) -> TextStream:
        params = params or GenerationParams()
        sample = as_sample(sample)
        self.prompt_limits.check_chars(sample)
        problem = self.request_problem(sample)
        if problem:
            raise VlmkitError(problem)
        started = time.perf_counter()
        try:
            encoded = self._encode([sample], self._collator(media))
        except VlmkitError:
            raise
        except Exception as exc:
            raise VlmkitError(_describe(exc)) from exc
        cancel = threading.Event()
        return TextStream(self._stream_pieces(encoded, params, cancel, started), cancel.set)

    def _stream_pieces(
        self, encoded: Any, params: GenerationParams, cancel: threading.Event, started: float
    ) -> Generator[str, None, GenerationResult]:
        from transformers import TextIteratorStreamer

        if params.num_beams > 1:  # transformers streams greedy and sampling only: answer in one piece
            with self._lock:
                result = self._results(encoded, self._call_generate(encoded, params), params)[0]
            result.latency_s = time.perf_counter() - started
            if result.text:
                yield result.text
            return result

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        outcome: dict[str, Any] = {}

        def work() -> None:
            try:
                with self._lock:
                    outcome["sequences"] = self._call_generate(encoded, params, streamer=streamer, cancel=cancel)
            except BaseException as exc:  # re-raised in the consumer's thread below
                outcome["error"] = exc
                streamer.end()

        worker = threading.Thread(target=work, name="vlmkit-stream", daemon=True)
        worker.start()
        shown = StreamText(params.stop)
        try:
            for piece in streamer:
                new = shown.feed(piece)
                if new:
                    yield new
        finally:
            if "sequences" not in outcome:
                cancel.set()  # closed early: stop generating at the next token
            worker.join()
        if "error" in outcome:
            raise VlmkitError(f"generation failed: {_describe(outcome['error'])}") from outcome["error"]
        result = self._results(encoded, outcome["sequences"], params)[0]
        rest = shown.finish(result.text)
        if rest:
            yield rest
        result.latency_s = time.perf_counter() - started
        return result


def _ignore(text: str) -> None:
    pass


def _describe(exc: BaseException) -> str:
    """A one-line reason for a failed request: our errors as they are, others with their type."""
    if isinstance(exc, VlmkitError):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
