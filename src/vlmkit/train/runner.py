"""`train()`: one run from a validated config to a run directory.

RUN_DIR/
  config.yaml          the resolved config (absolute input paths)
  manifest.json        versions, data hashes, git commit, parameter counts per group, world size, outcome
  log_history.json     every logged step (loss, learning rate, eval loss), kept current at each save
  logs/                metrics.jsonl (live), train.log, tensorboard/, rank-<k>.json
  checkpoints/         checkpoint-<step>/ (the last `save.keep_last`), what --resume continues from
  adapter/ or model/   the final LoRA adapter (lora, qlora) or full weights (full), with the processor files
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, config_from_dict, dotted_items, load_config
from ..distributed import current_world, job_group
from ..errors import ConfigError, as_disk_full
from ..io import atomic_write_text, exclusive_lock, write_json
from .preflight import clear_run_dir, preflight

log = logging.getLogger("vlmkit.train")
LOCK_FILE = ".train.lock"  # held by the main process while it writes the run directory (io.exclusive_lock)


@dataclass
class RunResult:
    run_dir: Path
    final_loss: float | None  # training loss of the last logged step
    log_history: list[dict[str, Any]]
    global_step: int
    eval_loss: float | None = None
    adapter_dir: Path | None = None  # lora / qlora
    model_dir: Path | None = None  # full
    parameters: dict[str, dict[str, int]] = field(default_factory=dict)
    samples_per_second: float | None = None
    world_size: int = 1

    @property
    def final_dir(self) -> Path:
        return self.adapter_dir or self.model_dir  # type: ignore[return-value]

    def losses(self) -> list[float]:
        return [row["loss"] for row in self.log_history if "loss" in row]


def train(
    config: RunConfig | str | os.PathLike,
    overrides: Sequence[str] = (),
    *,
    resume: bool = False,
    overwrite: bool = False,
    out: str | os.PathLike | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
) -> RunResult:
    """Fine-tune per `config` (a RunConfig or a YAML path); `callbacks` are extra TrainerCallbacks; `progress`
    False runs without the step bar (logs, metrics and checkpoints are unchanged). `overwrite` discards a
    previous run in the run directory (see preflight.RUN_ENTRIES) instead of refusing it."""
    config = resolve_run_config(config, overrides, out)
    checked = preflight(config, resume=resume, overwrite=overwrite)  # no model is loaded before this passes
    run_dir = checked.run_dir

    import transformers
    from transformers.trainer_callback import ProgressCallback

    from ..progress import quiet_library_bars

    if progress:
        quiet_library_bars()

    from ..data.image_augment import describe as describe_augment
    from ..data.image_augment import settings_record
    from ..progress import on_terminal
    from .callbacks import PlainProgressLines, ProgressBar, RankRecord, RunLogger, SamplesPerSecond
    from .data import EpochTagged, SampleDataset, estimate_lengths, without_over_length
    from .guards import TrainingGuard
    from .manifest import base_manifest, now
    from .params import count_parameters
    from .prepare import load_for_training, make_trainable
    from .tracking import Trackers
    from .trainer import VlmTrainer, deepspeed_comm_on_cpu, training_arguments

    args = training_arguments(config, run_dir, has_eval=bool(checked.eval_samples))  # starts the process group
    if config.distributed.deepspeed:
        deepspeed_comm_on_cpu()
    main = args.process_index == 0
    lock = contextlib.ExitStack()
    refusal = None
    if main:  # before --overwrite clears anything: a second train on a running run directory is refused untouched
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            lock.enter_context(exclusive_lock(run_dir / LOCK_FILE, "`vlmkit train`"))
        except ConfigError as exc:
            refusal = str(exc)
    group = job_group(current_world())
    if group is not None:  # every rank stops, not rank 0 alone (the others would wait for it)
        refusal = group.broadcast(
            refusal, "checking the run directory", advice="Nothing was trained; rerun the command"
        )
    if refusal:
        raise ConfigError(refusal)
    try:
        handler = _start_run_dir(config, run_dir, resume, overwrite) if main else None
    except BaseException:
        lock.close()
        raise
    bar = None
    trackers = None
    try:
        transformers.set_seed(config.train.seed)  # before LoRA init, so equal seeds give equal runs
        loaded = load_for_training(config)
        family = loaded.family
        model = make_trainable(config, loaded.model, family)
        parameters = count_parameters(model, family)
        log.info("trainable parameters per group: %s", parameters)
        collator = _collator(config, loaded)
        train_samples = checked.train_samples
        lengths = estimate_lengths(train_samples, collator)
        _check_lengths(config, train_samples, lengths.total)
        dropped: list[str] = []
        if config.data.max_length and config.data.on_overflow == "drop":
            train_samples, lengths, dropped = without_over_length(train_samples, lengths, config.data.max_length)
            if not train_samples:
                raise ConfigError(
                    f"data.max_length: every training sample is over max_length={config.data.max_length} tokens "
                    "(media included); raise it, or lower max_pixels / nframes"
                )
            if dropped:
                log.warning(
                    "dropped %d sample(s) over data.max_length=%d (data.on_overflow: drop): %s",
                    len(dropped),
                    config.data.max_length,
                    ", ".join(dropped[:10]) + (", ..." if len(dropped) > 10 else ""),
                )
        manifest = base_manifest(
            config=config,
            family=family.name,
            model_source=loaded.source,
            train_samples=len(checked.train_samples),  # the data folder's count (what was dropped is listed at the end)
            eval_samples=len(checked.eval_samples),
            world_size=args.world_size,
            parameters=parameters,
            config_dir=config.source.parent if config.source else None,
        )
        manifest["resumed_from"] = checked.resume_from
        train_dataset, data_collator, plan = SampleDataset(train_samples), collator, None
        if config.data.packing:  # rows are a pure function of (data, seed): a resumed run sees the same rows
            from ..data.packing import PackedRows, rows_per_batch
            from ..models.segment_attention import NAME as SEGMENT_ATTENTION
            from ..models.segment_attention import use_segment_attention
            from .packed import describe, packing_collator, plan_for_run

            plan = plan_for_run(config, train_samples, collator)
            log.info(describe(plan, config.train.batch_size))
            manifest["packing"] = {**plan.summary(), "rows_per_batch": rows_per_batch(plan, config.train.batch_size)}
            args.per_device_train_batch_size = manifest["packing"]["rows_per_batch"]  # an item is now a row
            train_dataset, data_collator = (
                PackedRows(train_samples, plan),
                packing_collator(collator, loaded.model),
            )
            if use_segment_attention(loaded.model):  # SDPA per sample instead of one masked call per row
                manifest["packing"]["attention"] = SEGMENT_ATTENTION
        manifest["augment"] = settings_record(config.data.augment, config.train.seed)
        if collator.augment is not None:  # items carry their epoch to the collator, which seeds each image by it
            log.info(describe_augment(config.data.augment))
            train_dataset = EpochTagged(train_dataset)
        if main:
            write_json(run_dir / "manifest.json", manifest)
        log.info(
            "%s %s run on %s: %d training samples, %d eval samples, %d process(es)%s",
            config.method,
            family.name,
            loaded.source,
            len(train_samples),
            len(checked.eval_samples),
            args.world_size,
            f", resuming from {checked.resume_from}" if checked.resume_from else "",
        )

        per_item = plan.samples / len(plan.rows) if plan else 1  # an item is a packed row under packing
        throughput = SamplesPerSecond(
            args.per_device_train_batch_size * config.train.grad_accum * args.world_size * per_item
        )
        trackers = Trackers(config, run_dir, main)
        trainer = VlmTrainer(
            model=model,
            args=args,
            data_collator=data_collator,
            processing_class=loaded.processor,
            train_dataset=train_dataset,
            eval_dataset=SampleDataset(checked.eval_samples) if checked.eval_samples else None,
            callbacks=[
                RunLogger(run_dir, throughput),
                RankRecord(run_dir),
                *trackers.callbacks(),
                *callbacks,
            ],
            run_config=config,
            family=family,
            lengths=lengths,
            packing=plan,
        )
        # the guard sees each log first, before the report_to integrations (W&B, MLflow) could record a NaN
        trainer.callback_handler.callbacks.insert(0, TrainingGuard(Path(args.output_dir), config.train.stall_steps))
        trainer.remove_callback(ProgressCallback)
        if progress and on_terminal():
            bar = ProgressBar(throughput)
            trainer.add_callback(bar)
        elif progress:  # a log file or CI: plain lines, no bars
            trainer.add_callback(PlainProgressLines(throughput))

        trainer.train(resume_from_checkpoint=checked.resume_from)
        trackers.finish_training()
        eval_loss = None
        if checked.eval_samples:
            eval_loss = trainer.evaluate().get("eval_loss")

        final_dir = run_dir / ("model" if config.method == "full" else "adapter")
        trainer.save_model(str(final_dir))  # gathers sharded weights; writes on the main process only
        history = trainer.state.log_history
        result = RunResult(
            run_dir=run_dir,
            final_loss=_last(history, "loss"),
            log_history=history,
            global_step=trainer.state.global_step,
            eval_loss=eval_loss,
            adapter_dir=final_dir if config.method != "full" else None,
            model_dir=final_dir if config.method == "full" else None,
            parameters=parameters,
            samples_per_second=throughput.rate(trainer.state.global_step),
            world_size=args.world_size,
        )
        if main:  # save_model wrote the processor and chat template next to the weights
            write_json(run_dir / "log_history.json", history)
            manifest.update(
                status="finished",
                finished=now(),
                global_step=result.global_step,
                final_loss=result.final_loss,
                eval_loss=eval_loss,
                samples_per_second=result.samples_per_second,
                dropped_for_length=dropped + list(collator.dropped) + (plan.dropped if plan else []),
                final_dir=final_dir.name,
            )
            write_json(run_dir / "manifest.json", manifest)
            log.info("finished: step %d, loss %s, saved to %s", result.global_step, result.final_loss, final_dir)
        trackers.publish(final_dir)
        return result
    except BaseException as exc:
        if bar is not None and bar.training_bar is not None:
            bar.training_bar.close()  # before the error line, not after it
        if main:
            _mark_failed(run_dir, exc)
        if trackers is not None:
            trackers.fail()
        full = as_disk_full(exc)
        if full is not None:
            raise full from exc
        raise
    finally:
        if handler is not None:
            logging.getLogger("vlmkit").removeHandler(handler)
            handler.close()
        lock.close()


def _check_lengths(config: RunConfig, samples: Sequence[Any], totals: Sequence[int]) -> None:
    """With on_overflow=error, a sample over max_length fails the run here, before the first step, not mid-epoch."""
    from .data import first_over_length

    limit = config.data.max_length
    over = first_over_length(samples, totals, limit) if limit and config.data.on_overflow == "error" else None
    if over is not None:
        sample, total = over
        raise ConfigError(
            f"data.max_length: sample '{sample.id}' is {total} tokens (media included), over max_length={limit}; "
            "it cannot be truncated without cutting media tokens. Raise max_length, lower max_pixels / nframes, "
            "or drop over-long samples (data.on_overflow: drop)"
        )


def _collator(config: RunConfig, loaded: Any) -> Any:
    from ..data.collate import VlmCollator
    from ..data.image_augment import Augmenter

    data = config.data
    return VlmCollator(
        loaded.processor,
        loaded.family,
        max_length=data.max_length,
        on_overflow=data.on_overflow,
        media=media_settings(config),
        augment=Augmenter.from_config(config),
    )


def media_settings(config: RunConfig) -> Any:
    """The run's image/video settings from its data section (the collator's and the packer's)."""
    from ..data.media_settings import MediaSettings

    return MediaSettings.from_config(config)


def resolve_run_config(
    config: RunConfig | str | os.PathLike, overrides: Sequence[str] = (), out: str | os.PathLike | None = None
) -> RunConfig:
    """The run's final config: a YAML path or a RunConfig, with dotted overrides and `--out` applied (made
    absolute, the config's source file kept). The one place `--out` is applied, for `train` and `train --check`."""
    if not isinstance(config, RunConfig):
        config = load_config(config, list(overrides))
    elif overrides:
        source = config.source
        config = config_from_dict(
            config.model_dump(mode="json"), list(overrides), source=str(source) if source else "config"
        )
    if out is not None:
        source = config._source
        config = config.model_copy(update={"output_dir": str(Path(out).resolve())})
        config._source = source
    return config


def _start_run_dir(config: RunConfig, run_dir: Path, resume: bool, overwrite: bool = False) -> logging.Handler:
    if overwrite:
        clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    previous = run_dir / "config.yaml"
    if resume and previous.exists():
        _warn_changes(previous, config)
    atomic_write_text(previous, config.to_yaml())
    handler = logging.FileHandler(run_dir / "logs" / "train.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("vlmkit")
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def _warn_changes(previous: Path, config: RunConfig) -> None:
    import yaml

    old = dotted_items(yaml.safe_load(previous.read_text(encoding="utf-8")) or {})
    new = dotted_items(config.model_dump(mode="json"))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        log.warning(
            "resuming with a changed config (%s); the result will differ from an uninterrupted run", ", ".join(changed)
        )


def _last(history: list[dict[str, Any]], key: str) -> float | None:
    return next((row[key] for row in reversed(history) if key in row), None)


def _mark_failed(run_dir: Path, exc: BaseException) -> None:
    """status failed (or interrupted) with a one-line reason. On a full disk the usual temp-file-and-rename may
    itself fail, so the manifest is then rewritten in place (it is small, and its blocks are already allocated)."""
    import json

    from .checkpoints import discard_staging
    from .guards import describe

    discard_staging(run_dir / "checkpoints")  # a half-written checkpoint only takes space
    path = run_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        manifest = {}
    if not manifest:
        return
    from .manifest import now

    manifest.update(
        status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
        ended=now(),
        error=describe(exc),
    )
    try:
        write_json(path, manifest)
    except OSError:
        try:
            with open(path, "r+", encoding="utf-8") as handle:
                text = json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n"
                handle.write(text)
                handle.truncate()
        except OSError as again:
            log.error("could not mark %s failed: %s", path, again)
