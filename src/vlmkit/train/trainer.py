"""HF Trainer set up for vision-language fine-tuning: our optimiser groups, our resumable length-grouped order,
and TrainingArguments derived from the run config."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments

from ..config import RunConfig
from ..data.packing import PackPlan
from ..models.base import FamilyAdapter
from . import checkpoints
from .data import EpochKeys, EpochTagged, GroupedByLengthSampler, Lengths, SeededShuffle
from .loss import answer_only_loss, report_true_mean, supports_answer_only_logits
from .params import build_optimizer
from .prefetch import BackgroundBatches, prefetch_depth

SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


class VlmTrainer(Trainer):
    """Trainer with per-group learning rates, a resumable length-grouped order, and a loss computed from the
    labelled positions only, normalised so that length grouping does not re-weight answers (train/loss.py)."""

    def __init__(
        self,
        *args: Any,
        run_config: RunConfig,
        family: FamilyAdapter,
        lengths: Lengths,
        packing: PackPlan | None = None,
        **kwargs: Any,
    ):
        self.run_config = run_config
        self.family = family
        self.lengths = lengths
        self.packing = packing  # items are packed rows: each step's loss is its plain token mean
        self.grouped = run_config.train.group_by_length and packing is None
        self.tokens_per_sample = lengths.mean_answer_tokens() if self.grouped else None
        if packing is not None:  # rows differ in labels as grouped batches do: normalise by a row's expected count
            self.tokens_per_sample = sum(lengths.answer) / max(1, len(packing.rows))
        self._actual_items: Any = None
        self._staging = False
        self._flop_parameters: int | None = None
        self._prefetch: tuple[Any, BackgroundBatches] | None = None
        self._prefetch_depth = 0  # set by train()
        super().__init__(*args, **kwargs)
        self.answer_only_logits = supports_answer_only_logits(self.model)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        t = self.run_config.train  # decided once per run, not on every step
        self._prefetch_depth = prefetch_depth(
            t.prefetch_batches, self.args.dataloader_num_workers, self.args.device.type
        )
        try:
            return super().train(*args, **kwargs)
        finally:
            self._stop_prefetch()

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: torch.device) -> Any:
        """The Trainer pulls each step's micro-batches from the epoch's iterator here; with train.prefetch_batches
        a background thread runs that iterator ahead, where that pays (train/prefetch.py)."""
        if self._prefetch_depth:
            if self._prefetch is None or self._prefetch[0] is not epoch_iterator:  # a new epoch: a new iterator
                self._stop_prefetch()
                self._prefetch = (epoch_iterator, BackgroundBatches(epoch_iterator, self._prefetch_depth))
            epoch_iterator = self._prefetch[1]
        return super().get_batch_samples(epoch_iterator, num_batches, device)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluation (also mid-training, eval.every) builds its batches with the same collator and tokenizer as the
        prefetch thread: the thread waits meanwhile."""
        paused = self._prefetch[1].paused() if self._prefetch is not None else contextlib.nullcontext()
        with paused:
            return super().evaluate(*args, **kwargs)

    def _stop_prefetch(self) -> None:
        if self._prefetch is not None:
            self._prefetch[1].close()
            self._prefetch = None

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """Trainer's count (6 x non-embedding parameters x input tokens, for `total_flos`) with the parameter count
        taken once: counting walks every module and parameter of the model, on every step."""
        main_input = getattr(self.model, "main_input_name", "input_ids")
        if main_input not in inputs or not hasattr(self.model, "num_parameters"):
            return 0
        if self._flop_parameters is None:
            self._flop_parameters = self.model.num_parameters(exclude_embeddings=True)
        return 6 * inputs[main_input].numel() * self._flop_parameters

    def create_accelerator_and_postprocess(self) -> None:
        super().create_accelerator_and_postprocess()
        if self.args.fsdp_plugin_args and not self.is_fsdp_enabled:
            self.is_fsdp_enabled = fsdp_on_cpu(self.accelerator, self.args.fsdp_plugin_args)

    def _get_num_items_in_batch(self, batch_samples: list, device: torch.device) -> Any:
        """The label count a step's summed loss is divided by: its own count, or under length grouping the
        expected count of a step (see train/loss.py). The real count is kept for the logged loss."""
        actual = super()._get_num_items_in_batch(batch_samples, device)
        self._actual_items = actual
        if actual is None or not self.tokens_per_sample:
            return actual
        sequences = sum(len(batch["labels"]) for batch in batch_samples)
        if self.packing is not None and getattr(self.data_collator, "flatten", False):
            sequences = len(batch_samples) * self.args.per_device_train_batch_size  # one tensor row, several rows
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            sequences *= self.args.world_size
        return torch.tensor(self.tokens_per_sample * sequences, device=device)

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        if model.training:
            # no KV cache while training: FSDP's activation checkpointing re-runs each layer, and a cache would
            # grow twice (the model-level switch turns it off itself; this covers FSDP's checkpoint wrapper)
            inputs = {**inputs, "use_cache": False}
        if not (
            self.answer_only_logits
            and "labels" in inputs
            and self.label_smoother is None
            and self.compute_loss_func is None
        ):
            loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        else:
            loss, outputs = answer_only_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                # as Trainer.compute_loss does: the count is global and DDP averages gradients over processes
                tp_size = self.get_tp_size() if hasattr(self, "get_tp_size") else 1
                loss = loss * (self.accelerator.num_processes // tp_size)
        if self.tokens_per_sample and model.training and num_items_in_batch is not None and self._actual_items:
            loss = report_true_mean(loss, expected=num_items_in_batch, actual=self._actual_items)
        return (loss, outputs) if return_outputs else loss

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = build_optimizer(
                model if model is not None else self.model, self.family, self.run_config.optim
            )
        return self.optimizer

    def _get_output_dir(self, trial: Any) -> str:
        root = super()._get_output_dir(trial)
        return os.path.join(root, checkpoints.STAGING_DIR) if self._staging else root

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """Save into checkpoints/.incomplete/ and rename into place once every file is written (checkpoints.py),
        so a full disk or a kill mid-save never leaves a checkpoint that --resume would pick."""
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        root = Path(super()._get_output_dir(trial))
        self._staging = True
        try:
            super()._save_checkpoint(model, trial)
        except BaseException:
            if self.args.should_save:
                checkpoints.discard_staging(root)
            raise
        finally:
            self._staging = False
        self.accelerator.wait_for_everyone()  # every rank has written its RNG state before the rename
        if self.args.should_save:
            checkpoints.publish(root, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            rotate_checkpoints(
                output_dir=str(root),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if isinstance(dataset, EpochTagged):  # data.augment: each index travels with the epoch that drew it
            return EpochKeys(self._train_order(dataset.inner, seeded=True))
        return self._train_order(dataset)

    def _train_order(self, dataset: Any, seeded: bool = False) -> Any:
        group = self.args.train_batch_size * self.args.gradient_accumulation_steps
        seed = self.args.data_seed or self.args.seed
        if self.packing is not None:  # rows in a seeded order per epoch, rows of like length batched together
            return GroupedByLengthSampler(self.packing.row_tokens(), group, seed=seed)
        if self.grouped:
            return GroupedByLengthSampler(self.lengths.prompt(), group, seed=seed)
        if seeded:  # accelerate seeds a bare RandomSampler per epoch itself, but not one wrapped in EpochKeys
            return SeededShuffle(len(dataset), seed)
        return super()._get_train_sampler(dataset)


def fsdp_on_cpu(accelerator: Any, plugin_args: dict[str, Any]) -> bool:
    """Accelerate turns its FSDP plugin on for accelerator devices only and on the CPU silently runs plain DDP;
    torch's FSDP2 shards over gloo as well, so a CPU-only job (the tests, a CPU cluster) gets what it asked for."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    state = accelerator.state
    if state.distributed_type != DistributedType.MULTI_CPU:
        return False
    # AcceleratorState re-reads PartialState's fields whenever it is instantiated: set the type on both
    PartialState().distributed_type = state.distributed_type = DistributedType.FSDP
    state.fsdp_plugin = FullyShardedDataParallelPlugin(**plugin_args)
    return True


def deepspeed_comm_on_cpu() -> None:
    """ZeRO-3 builds the model inside `deepspeed.zero.Init`, which takes the world size from DeepSpeed's own comm
    layer; accelerate sets that layer up on accelerators only, so on the CPU every rank would see a world of one and
    fail DeepSpeed's batch-size check. Attach it to the process group the TrainingArguments started (a no-op when
    accelerate already did)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return
    import deepspeed

    deepspeed.init_distributed(dist_backend=dist.get_backend())


def training_arguments(config: RunConfig, run_dir: Path, has_eval: bool) -> TrainingArguments:
    t, optim, dist = config.train, config.optim, config.distributed
    on_cpu = not torch.cuda.is_available()
    kwargs: dict[str, Any] = dict(
        output_dir=str(run_dir / "checkpoints"),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=config.eval.batch_size or t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        learning_rate=optim.lr,
        weight_decay=optim.weight_decay,
        adam_beta1=optim.betas[0],
        adam_beta2=optim.betas[1],
        adam_epsilon=optim.eps,
        max_grad_norm=optim.max_grad_norm or 0.0,
        lr_scheduler_type=SCHEDULERS[optim.scheduler],
        warmup_steps=optim.warmup_steps if optim.warmup_steps else optim.warmup_ratio,
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if config.eval.every and has_eval else "no",
        eval_steps=config.eval.every,
        prediction_loss_only=True,
        save_strategy="steps",
        save_steps=config.save.every,
        save_total_limit=config.save.keep_last,
        report_to=[b for b in config.tracking.backends if b != "tensorboard"] or "none",
        run_name=config.tracking.run_name or config.run_name(),
        remove_unused_columns=False,  # items are Sample objects for our collator, not tokenized columns
        dataloader_num_workers=t.num_workers,
        dataloader_persistent_workers=t.num_workers > 0,
        use_cpu=on_cpu,
        ddp_backend=dist.ddp_backend,
        ddp_find_unused_parameters=dist.find_unused_parameters,
        deepspeed=dist.deepspeed,
        disable_tqdm=False,
    )
    kwargs.update(fsdp_arguments(config))
    # transformers renamed gradient_checkpointing to activation_checkpointing in 5.x; use whichever exists.
    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
        else "gradient_checkpointing"
    )
    # Under FSDP too the checkpointing is the model's own: FSDP's checkpoint wrapper renames the modules, and PEFT
    # then finds no adapter weights in the gathered state dict (an empty adapter is saved).
    checkpointing = t.gradient_checkpointing
    kwargs[name] = checkpointing
    # Non-reentrant checkpointing needs no input-grad hooks when the embeddings are frozen (LoRA).
    kwargs[f"{name}_kwargs"] = {"use_reentrant": False} if checkpointing else None
    if config.tracking.project:
        kwargs["project"] = config.tracking.project
    return TrainingArguments(**kwargs)


def fsdp_arguments(config: RunConfig) -> dict[str, Any]:
    """`fsdp` / `fsdp_config` for TrainingArguments: FSDP2 unless the config asks for version 1, with decoder and
    vision blocks as the sharded units (the model's `_no_split_modules`, accelerate's default wrap policy)."""
    dist = config.distributed
    if not dist.fsdp:
        return {}
    options = dict(dist.fsdp_config or {})
    options.setdefault("version", 2)
    return {"fsdp": True, "fsdp_config": options}
