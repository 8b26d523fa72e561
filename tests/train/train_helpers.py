"""Small fixed datasets and config helpers for the training tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
from pathlib import Path

import yaml
from synthetic_media import make_image, write_video

from vlmkit.data.schema import DatasetWriter

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220), "yellow": (230, 220, 40)}


def write_image_dataset(folder: Path, n: int = 8, sizes: tuple[tuple[int, int], ...] = ((56, 56), (84, 56))) -> Path:
    """n single-turn samples: a coloured image, 'What colour is it?', answer = the colour name."""
    with DatasetWriter(folder, overwrite=True) as writer:
        for i in range(n):
            name, rgb = list(COLOURS.items())[i % len(COLOURS)]
            w, h = sizes[i % len(sizes)]
            buf = io.BytesIO()
            make_image(w, h, color=rgb, seed=i).save(buf, format="PNG")
            rel = writer.add_media_bytes(buf.getvalue(), ".png")
            writer.write(
                {
                    "id": f"img-{i}",
                    "answers": [name],
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "image", "image": rel},
                                {"type": "text", "text": "What colour is it?"},
                            ],
                        },
                        {"role": "assistant", "content": [{"type": "text", "text": name}]},
                    ],
                }
            )
    return folder


def write_video_dataset(folder: Path, n: int = 4) -> Path:
    with DatasetWriter(folder, overwrite=True) as writer:
        for i in range(n):
            clip = write_video(folder.parent / f"clip-{folder.name}-{i}.mp4", n_frames=4 + 2 * i, size=(56, 56))
            rel = writer.add_media_file(clip)
            answer = "a moving square" if i % 2 == 0 else "colours change"
            writer.write(
                {
                    "id": f"vid-{i}",
                    "answers": [answer],
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "video", "video": rel}, {"type": "text", "text": "What happens?"}],
                        },
                        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
                    ],
                }
            )
    return folder


def base_config(model_path: Path, data_dir: Path, out: Path, **sections) -> dict:
    """A small, fast run config as a dict; keyword args replace or extend sections."""
    config = {
        "name": "test",
        "output_dir": str(out),
        "model": {"path": str(model_path)},
        "data": {"train": str(data_dir)},
        "method": "lora",
        "lora": {"rank": 4, "alpha": 8, "dropout": 0.0},
        "optim": {"lr": 5e-3, "scheduler": "constant"},
        "train": {"batch_size": 2, "max_steps": 4, "seed": 0},
        "save": {"every": 1000},
        "tracking": {"backends": []},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path
