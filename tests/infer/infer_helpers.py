"""Request and dataset builders shared by the inference tests."""

from __future__ import annotations

from pathlib import Path

from vlmkit.data.schema import Sample

IMAGE_SIZES = [(64, 48), (32, 96), (120, 80), (50, 50), (200, 60)]


def request(sample_id: str, text: str = "What is in the picture?", *, images=(), videos=()) -> Sample:
    content = [{"type": "image", "image": str(i)} for i in images]
    content += [{"type": "video", "video": str(v)} for v in videos]
    content.append({"type": "text", "text": text})
    return Sample(id=sample_id, messages=[{"role": "user", "content": content}])


def mixed_batch(images) -> list[Sample]:
    """Questions of different lengths over images of different sizes, plus a text-only one: left padding varies."""
    return [
        request("a", "What is this?", images=[images[0]]),
        request("b", "Describe the colours of the picture in a few words please.", images=[images[1]]),
        request("c", "Text only: what is two plus two?"),
        request("d", "Where?", images=[images[2]]),
        request("e", "Is there a square in this image, and what colour is it?", images=[images[3]]),
        request("f", "Two images: which is wider?", images=[images[4], images[0]]),
    ]


def write_dataset(root: Path, images, n: int = 12, bad_ids=()) -> Path:
    """A vlmkit dataset folder with n image questions; ids in bad_ids point at a missing image."""
    from vlmkit.data.schema import DatasetWriter

    with DatasetWriter(root) as writer:
        stored = [writer.add_media_file(p) for p in images]
        for k in range(n):
            sample_id = f"q{k}"
            image = "media/missing.png" if sample_id in bad_ids else stored[k % len(stored)]
            question = "What colour?" + " Be brief." * (k % 3)
            writer.write(
                {
                    "id": sample_id,
                    "messages": [
                        {
                            "role": "user",
                            "content": [{"type": "image", "image": image}, {"type": "text", "text": question}],
                        },
                        {"role": "assistant", "content": "red"},
                    ],
                    "answers": ["red", "dark red"],
                    "meta": {"k": k},
                }
            )
    return root
