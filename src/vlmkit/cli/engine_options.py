"""Typer options shared by the verbs that load an inference engine (`infer`, `chat`, `eval`): model, precision,
device and media settings, and the two helpers that turn them into engine arguments. Only typer is imported
here; torch loads inside the commands."""

from __future__ import annotations

from typing import Any

import typer

MODEL = typer.Option(..., "--model", "-m", help="Hub id, local checkpoint folder, or a merged export.")
ADAPTER = typer.Option(None, "--adapter", "-a", help="LoRA adapter folder to apply on top of --model.")
DTYPE = typer.Option("auto", "--dtype", help="auto (float32 on CPU), float32, bfloat16 or float16.")
DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1, ... (default: cuda when available).")
QUANTIZATION = typer.Option(
    None,
    "--quantization",
    help="Load the language model's weights in 4bit (NF4) or "
    "8bit with bitsandbytes (pip install 'vlmkit[qlora]'); the vision tower stays as is.",
)
MIN_PIXELS = typer.Option(None, "--min-pixels", help="Smallest image area in pixels after resizing (Qwen families).")
MAX_PIXELS = typer.Option(None, "--max-pixels", help="Largest image area in pixels after resizing (Qwen families).")
NFRAMES = typer.Option(None, "--nframes", help="Video: this many evenly spaced frames.")
FPS = typer.Option(None, "--fps", help="Video: frames per second to sample (default 2, when --nframes is unset).")
MAX_FRAMES = typer.Option(None, "--max-frames", help="Video: at most this many frames with --fps (default 64).")
CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="Run config (e.g. RUN_DIR/config.yaml) whose data section sets "
    "min/max_pixels and frame sampling, so inference matches training; flags override it.",
)


def media_settings(
    config: Any,
    min_pixels: int | None,
    max_pixels: int | None,
    nframes: int | None,
    fps: float | None,
    max_frames: int | None,
) -> Any:
    """MediaSettings from a run config's data section (when given), overridden by the explicit flags."""
    from ..infer import MediaSettings
    from ..infer.settings import media_from_config, override_media

    base = media_from_config(config) if config is not None else MediaSettings()
    return override_media(
        base, min_pixels=min_pixels, max_pixels=max_pixels, nframes=nframes, fps=fps, max_frames=max_frames
    )


def engine_kwargs(dtype: str, device: str | None, media: Any, quantization: str | None = None) -> dict[str, Any]:
    """The keyword arguments `load_engine` takes from these options."""
    return {"dtype": dtype, "device": device, "media": media, "quantization": quantization}
