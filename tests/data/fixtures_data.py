"""Test fixtures in each real distributed schema, generated on the fly (nothing downloaded).

Parquet files are written by `datasets` itself (`Dataset.to_parquet`), so the image column is the real
`{bytes, path}` struct with the Hugging Face schema metadata, sharded as `test-00000-of-00002.parquet`.
Images are small but distinct: each has its own colour, so a test can check which one landed where.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from PIL import Image
from synthetic_media import make_image

COLORS = [(200, 40, 40), (40, 200, 40), (40, 40, 200), (200, 200, 40), (40, 200, 200), (200, 40, 200), (120, 120, 120)]


def image_bytes(
    index: int, fmt: str = "JPEG", size: tuple[int, int] = (48, 32), orientation: int | None = None
) -> bytes:
    """A small distinct image (colour by index); with `orientation`, an EXIF Orientation tag is written."""
    image = make_image(size[0], size[1], color=COLORS[index % len(COLORS)], seed=index)
    buffer = io.BytesIO()
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(buffer, format=fmt, exif=exif, quality=95)
    else:
        image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def half_red_left(size: tuple[int, int] = (40, 20), orientation: int | None = None) -> bytes:
    """Left half red, right half blue: orientation mistakes show up as swapped or rotated halves."""
    width, height = size
    image = Image.new("RGB", size, (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    buffer = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(buffer, format="JPEG", exif=exif, quality=98)
    return buffer.getvalue()


def struct(data: bytes, name: str) -> dict[str, Any]:
    return {"bytes": data, "path": name}


def write_hf_parquet(
    folder: Path, rows: list[dict[str, Any]], features: Any, *, split: str = "test", shards: int = 1
) -> list[Path]:
    """Write rows the way the hub distributes them: data/<split>-0000i-of-0000n.parquet."""
    import datasets

    datasets.disable_progress_bars()
    folder.mkdir(parents=True, exist_ok=True)
    ds = datasets.Dataset.from_dict({name: [row[name] for row in rows] for name in features}, features=features)
    paths = []
    for index in range(shards):
        path = folder / f"{split}-{index:05d}-of-{shards:05d}.parquet"
        ds.shard(num_shards=shards, index=index, contiguous=True).to_parquet(str(path))
        paths.append(path)
    return paths


# --- the schemas, as the dataset cards declare them ------------------------------------------------


def features(kind: str) -> Any:
    from datasets import ClassLabel, Features, List, Value
    from datasets import Image as HFImage

    s = Value("string")
    table = {
        "docvqa": {
            "questionId": s,
            "question": s,
            "question_types": List(s),
            "image": HFImage(),
            "docId": Value("int64"),
            "ucsf_document_id": s,
            "ucsf_document_page_no": s,
            "answers": List(s),
            "data_split": s,
        },
        "infovqa": {
            "questionId": s,
            "question": s,
            "answers": List(s),
            "answer_type": List(s),
            "image": HFImage(),
            "image_url": s,
            "operation/reasoning": List(s),
            "ocr": s,
            "data_split": s,
        },
        "chartqa_m4": {
            "image": HFImage(),
            "query": s,
            "label": List(s),
            "human_or_machine": ClassLabel(names=["human", "machine"]),
        },
        "chartqa_lmms": {"type": s, "question": s, "answer": s, "image": HFImage()},
        "vizwiz_lmms": {"question_id": s, "image": HFImage(), "question": s, "answers": List(s), "category": s},
        "textvqa": {
            "image_id": s,
            "question_id": Value("int32"),
            "question": s,
            "question_tokens": List(s),
            "image": HFImage(),
            "image_width": Value("int32"),
            "image_height": Value("int32"),
            "flickr_original_url": s,
            "flickr_300k_url": s,
            "answers": List(s),
            "image_classes": List(s),
            "set_name": s,
            "ocr_tokens": List(s),
        },
        "vitextvqa": {
            "id": Value("int32"),
            "image": HFImage(),
            "description": s,
            "conversations": List({"role": s, "content": s}),
        },
    }
    return Features(table[kind])


def docvqa_rows(n: int = 4) -> list[dict[str, Any]]:
    """Two questions per document: rows 2k and 2k+1 share one page image (as in DocVQA)."""
    rows = []
    for i in range(n):
        doc = i // 2
        rows.append(
            {
                "questionId": str(49150 + i),
                "question": f"What is the total on page {doc}, item {i}?",
                "question_types": ["table/list", "layout"] if i % 2 else ["form"],
                "image": struct(image_bytes(doc, "PNG"), f"doc{doc}.png"),
                "docId": 1000 + doc,
                "ucsf_document_id": f"ucsf{doc}",
                "ucsf_document_page_no": "1",
                "answers": [f"${i},000.00", f"{i},000"],
                "data_split": "validation",
            }
        )
    return rows


def vitextvqa_rows() -> list[dict[str, Any]]:
    return [
        {
            "id": 0,
            "image": struct(image_bytes(0), "0.jpg"),
            "description": "Bức ảnh chụp một khu chợ.",
            "conversations": [
                {"role": "user", "content": "Đây là đâu?"},
                {"role": "assistant", "content": "Đây là khu chợ."},
                {"role": "user", "content": "Có bao nhiêu người?"},
                {"role": "assistant", "content": "Có ba người."},
                {"role": "user", "content": "Biển hiệu màu gì?"},
                {"role": "assistant", "content": "Biển hiệu màu đỏ."},
            ],
        },
        {
            "id": 1,
            "image": struct(image_bytes(1), "1.jpg"),
            "description": "Siêu thị VinMart.",
            "conversations": [
                {"role": "user", "content": "Đây là siêu thị nào?"},
                {"role": "assistant", "content": "Đây là siêu thị VinMart."},
            ],
        },
    ]


def vizwiz_answers(main: str, other: str, n_main: int = 7) -> list[dict[str, str]]:
    return [{"answer": main, "answer_confidence": "yes"}] * n_main + [
        {"answer": other, "answer_confidence": "maybe"}
    ] * (10 - n_main)


def write_vizwiz_json(root: Path, n: int = 3, split: str = "train") -> Path:
    """The original layout: Annotations-style train.json next to a train/ image folder."""
    (root / split).mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        name = f"VizWiz_{split}_{i:08d}.jpg"
        (root / split / name).write_bytes(image_bytes(i))
        records.append(
            {
                "image": name,
                "question": f"What is this thing number {i}?",
                "answers": vizwiz_answers(f"thing {i}", "unanswerable"),
                "answer_type": "other",
                "answerable": 1,
            }
        )
    path = root / f"{split}.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def write_llava(root: Path) -> Path:
    (root / "images" / "coco").mkdir(parents=True, exist_ok=True)
    (root / "images" / "coco" / "a.jpg").write_bytes(image_bytes(0))
    (root / "images" / "coco" / "b.png").write_bytes(image_bytes(1, "PNG"))
    records = [
        {
            "id": "000001",
            "image": "coco/a.jpg",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is the bus?"},
                {"from": "gpt", "value": "Red."},
                {"from": "human", "value": "Is it moving?"},
                {"from": "gpt", "value": "No."},
            ],
        },
        {
            "id": "000002",
            "image": "coco/b.png",
            "conversations": [
                {"from": "human", "value": "Describe <image> briefly."},
                {"from": "gpt", "value": "A green square."},
            ],
        },
        {"id": "text-1", "conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}]},
    ]
    path = root / "llava.json"
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")
    return path


def write_sharegpt(root: Path, video: Path | None = None) -> Path:
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "img" / "1.jpg").write_bytes(image_bytes(2))
    (root / "img" / "2.jpg").write_bytes(image_bytes(3))
    records = [
        {
            "messages": [
                {"role": "user", "content": "<image>Who are they?"},
                {"role": "assistant", "content": "Two players."},
                {"role": "user", "content": "Compare with <image>"},
                {"role": "assistant", "content": "Same team."},
            ],
            "images": ["img/1.jpg", "img/2.jpg"],
        },
    ]
    if video is not None:
        records.append(
            {
                "messages": [
                    {"role": "user", "content": "<video>What happens?"},
                    {"role": "assistant", "content": "A square moves."},
                ],
                "videos": [str(video)],
            }
        )
    path = root / "mllm_demo.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path
