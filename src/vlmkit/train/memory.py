"""Per-GPU memory for model states (weights, gradients, optimiser state) under DDP, FSDP / ZeRO-2 / ZeRO-3, computed
from the parameter count, the ZeRO paper's accounting: bf16 weights (2 bytes), bf16 gradients (2), and for AdamW
fp32 master weights, momentum and variance (12). Activations come on top and depend on batch and sequence length
(gradient checkpointing keeps them to one layer's worth plus a checkpoint per layer).

    per_gpu_gib(7e9, gpus=8, strategy="zero3", trainable=7e9)  # full fine-tune of a 7B model on 8 GPUs
"""

from __future__ import annotations

from typing import Literal

Strategy = Literal["ddp", "zero2", "zero3", "fsdp"]
WEIGHT_BYTES, GRAD_BYTES, ADAM_BYTES = 2, 2, 12
GIB = 1024**3


def per_gpu_bytes(parameters: float, *, gpus: int, strategy: Strategy, trainable: float) -> float:
    """Bytes each GPU holds for the model states. DDP replicates everything; ZeRO-2 (FSDP with
    reshard_after_forward: false) shards gradients and optimiser state; ZeRO-3 / FSDP full shard also shards the
    weights. Frozen weights need no gradient or optimiser state (LoRA: `trainable` is the adapter's size)."""
    if gpus < 1 or parameters <= 0 or trainable < 0:
        raise ValueError("gpus >= 1, parameters > 0 and 0 <= trainable are needed")
    adapter = trainable if trainable < parameters else 0  # LoRA's weights come beside the base's
    weights = WEIGHT_BYTES * (parameters + adapter)
    grads, optim = GRAD_BYTES * trainable, ADAM_BYTES * trainable
    if strategy == "ddp":
        return weights + grads + optim
    if strategy == "zero2":
        return weights + (grads + optim) / gpus
    if strategy in ("zero3", "fsdp"):
        return (weights + grads + optim) / gpus
    raise ValueError(f"unknown strategy '{strategy}'")


def per_gpu_gib(parameters: float, *, gpus: int, strategy: Strategy, trainable: float) -> float:
    return per_gpu_bytes(parameters, gpus=gpus, strategy=strategy, trainable=trainable) / GIB


def lora_parameters(hidden: int, layers: int, rank: int, intermediate: int | None = None) -> int:
    """LoRA parameters on the default targets (q, k, v, o and the MLP's gate, up, down) of a decoder: each adapted
    linear d_in x d_out adds rank x (d_in + d_out); k/v are taken as full width (an upper bound under GQA)."""
    intermediate = intermediate or 4 * hidden
    attention = 4 * rank * (hidden + hidden)
    mlp = 3 * rank * (hidden + intermediate)
    return layers * (attention + mlp)


def table(models: dict[str, tuple[float, int, int, int]], gpus: int = 8, rank: int = 16) -> str:
    """The docs' Markdown table: GiB per GPU for model states, per model (parameters, hidden, layers,
    intermediate), method and strategy."""
    lines = [
        f"| model | method ({gpus} GPUs, LoRA rank {rank}) | DDP | ZeRO-2 | ZeRO-3 / FSDP |",
        "|---|---|---:|---:|---:|",
    ]
    for name, (params, hidden, layers, intermediate) in models.items():
        for method, trainable in (
            ("LoRA", lora_parameters(hidden, layers, rank, intermediate)),
            ("full", params),
        ):
            cells = [
                f"{per_gpu_gib(params, gpus=gpus, strategy=s, trainable=trainable):.1f}"
                for s in ("ddp", "zero2", "zero3")
            ]
            lines.append(f"| {name} | {method} | {' | '.join(cells)} |")
    return "\n".join(lines)


# Qwen2-VL-2B, Qwen2.5-VL-7B, Qwen2.5-VL-32B: parameters (vision tower included), hidden size, layers, MLP width
DOC_MODELS = {
    "2B": (2.2e9, 1536, 28, 8960),
    "7B": (8.3e9, 3584, 28, 18944),
    "32B": (33.5e9, 5120, 64, 27648),
}

if __name__ == "__main__":
    print(table(DOC_MODELS))
