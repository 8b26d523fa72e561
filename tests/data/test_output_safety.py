"""Output folders are safe and honest: no --out that could destroy an input, no writing through planted
symlinks, one --overwrite convention, media counts that mean what they say."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from synthetic_media import make_image

from vlmkit.cli import main
from vlmkit.data.export import export_dataset
from vlmkit.data.importers import import_dataset
from vlmkit.data.merge import merge_datasets
from vlmkit.data.schema import DatasetWriter, read_samples
from vlmkit.data.split import split_dataset
from vlmkit.errors import ConfigError, DataError, VlmkitError
from vlmkit.io import JsonlAppender
from vlmkit.train.export import export_merged


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    make_image(24, 24, seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


def qa(i: int, image: str | None = None) -> dict:
    record = {
        "id": str(i),
        "conversations": [{"from": "human", "value": f"<image>\nQuestion {i}?"}, {"from": "gpt", "value": f"A{i}"}],
    }
    if image:
        record["image"] = image
    return record


def llava_source(root: Path, n: int, *, shared: bool = False, bad_last: bool = False) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n):
        (root / "images" / f"{i}.png").write_bytes(png(0 if shared else i))
        records.append(qa(i, f"images/{i}.png"))
    if bad_last:
        records.append({"id": "bad", "conversations": "not a list"})
    (root / "llava.json").write_text(json.dumps(records))
    return root / "llava.json"


def dataset(root: Path, seeds: list[int], prefix: str = "s") -> Path:
    with DatasetWriter(root, overwrite=True) as writer:
        for i, seed in enumerate(seeds):
            image = writer.add_media_bytes(png(seed), ".png")
            content = [{"type": "image", "image": image}, {"type": "text", "text": "q?"}]
            writer.write(
                {
                    "id": f"{prefix}-{i}",
                    "messages": [
                        {"role": "user", "content": content},
                        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
                    ],
                    "answers": ["a"],
                }
            )
    return root


def media_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "media").rglob("*") if p.is_file())


# --- symlinks ------------------------------------------------------------------------------------


def test_import_never_writes_through_a_planted_partial_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / ".samples.jsonl.partial").symlink_to(victim)
    report = import_dataset(llava_source(tmp_path / "src", 2), out, format="llava", progress=False)
    assert report["samples_written"] == 2
    assert victim.read_text() == "precious"
    assert not (out / "samples.jsonl").is_symlink()


def test_planted_media_symlink_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"not the image")
    import hashlib

    digest = hashlib.sha256(png(7)).hexdigest()
    planted = tmp_path / "ds" / "media" / digest[:2] / f"{digest}.png"
    planted.parent.mkdir(parents=True)
    planted.symlink_to(victim)
    dataset(tmp_path / "ds", [7])
    assert victim.read_bytes() == b"not the image"
    assert not planted.is_symlink() and planted.read_bytes() == png(7)


def test_jsonl_appender_refuses_a_symlink(tmp_path):
    victim = tmp_path / "victim.jsonl"
    victim.write_text('{"keep": 1}\n')
    link = tmp_path / "run" / "predictions.jsonl"
    link.parent.mkdir()
    link.symlink_to(victim)
    with pytest.raises(DataError, match="symbolic link"):
        JsonlAppender(link)
    assert victim.read_text() == '{"keep": 1}\n'


# --- outputs that would destroy an input ---------------------------------------------------------


def fake_run(run_dir: Path, base: Path) -> Path:
    (run_dir / "adapter").mkdir(parents=True)
    (run_dir / "adapter" / "adapter_config.json").write_text("{}")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"method": "lora", "model": {"path": str(base)}}))
    return run_dir


@pytest.mark.parametrize("where", ["run", "parent", "inside"])
def test_export_refuses_an_out_that_is_contains_or_is_inside_the_run(tmp_path, where):
    run = fake_run(tmp_path / "runs" / "r1", tmp_path / "base")
    out = {"run": run, "parent": run.parent, "inside": run / "merged"}[where]
    with pytest.raises(ConfigError, match="an input of this command"):
        export_merged(run, out, overwrite=True)
    assert (run / "adapter" / "adapter_config.json").is_file() and (run / "config.yaml").is_file()


def test_export_cli_refuses_run_as_out_with_exit_2(tmp_path, capsys):
    run = fake_run(tmp_path / "r1", tmp_path / "base")
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(run), "--out", str(run), "--overwrite"])
    assert exit_.value.code == 2 and "RUN_DIR" in capsys.readouterr().err
    assert (run / "adapter").is_dir()


def test_import_merge_and_split_refuse_outputs_over_their_inputs(tmp_path):
    source = llava_source(tmp_path / "src", 2)
    with pytest.raises(ConfigError, match="is inside SOURCE"):
        import_dataset(source.parent, source.parent / "out", format="llava", progress=False)
    with pytest.raises(ConfigError, match="contains SOURCE"):
        import_dataset(source, tmp_path, format="llava", progress=False)
    a, b = dataset(tmp_path / "a", [1]), dataset(tmp_path / "b", [2], prefix="b")
    with pytest.raises(ConfigError, match="an input of this command"):
        merge_datasets([a, b], a, overwrite=True, progress=False)
    with pytest.raises(ConfigError, match="contains DATASET"):
        split_dataset(a, val=0.5, test=0.0, out=tmp_path, overwrite=True)
    assert len(read_samples(a)) == 1


# --- one --overwrite convention ------------------------------------------------------------------


def test_data_export_and_stats_need_overwrite_to_replace(tmp_path):
    ds = dataset(tmp_path / "ds", [1, 2])
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(DataError, match=r"out.json: already exists \(pass --overwrite to replace it\)"):
        export_dataset(ds, target, format="llava")
    assert target.read_text() == "old"
    export_dataset(ds, target, format="llava", overwrite=True)
    assert len(json.loads(target.read_text())) == 2
    with pytest.raises(DataError, match="own samples.jsonl"):
        export_dataset(ds, ds / "samples.jsonl", format="llava", overwrite=True)

    report = tmp_path / "report"
    main(["data", "stats", str(ds), "--out", str(report), "--tokenizer", "none"])
    with pytest.raises(SystemExit) as exit_:
        main(["data", "stats", str(ds), "--out", str(report), "--tokenizer", "none"])
    assert exit_.value.code == 2
    main(["data", "stats", str(ds), "--out", str(report), "--tokenizer", "none", "--overwrite"])


def test_merge_into_an_existing_dataset_names_the_overwrite_option(tmp_path):
    a, b = dataset(tmp_path / "a", [1]), dataset(tmp_path / "b", [2], prefix="b")
    merge_datasets([a, b], tmp_path / "mix", progress=False)
    with pytest.raises(VlmkitError, match="pass --overwrite"):
        merge_datasets([a, b], tmp_path / "mix", progress=False)


# --- counts that mean what they say --------------------------------------------------------------


def test_import_rerun_after_a_failed_run_does_not_count_its_media_as_repeats(tmp_path):
    source = llava_source(tmp_path / "src", 4, bad_last=True)
    out = tmp_path / "out"
    with pytest.raises(DataError):
        import_dataset(source, out, format="llava", progress=False)
    assert len(media_files(out)) == 4  # left behind by the failed run
    report = import_dataset(source, out, format="llava", on_error="skip", progress=False)
    assert report["images_stored"] == 4 and report["duplicates"]["images"] == 0


def test_overwrite_removes_media_the_new_dataset_does_not_use(tmp_path):
    ds = dataset(tmp_path / "ds", [1, 2, 3])
    assert len(media_files(ds)) == 3
    dataset(ds, [4])
    assert [p.read_bytes() for p in media_files(ds)] == [png(4)]
    assert [Path(p).read_bytes() for s in read_samples(ds) for p in s.media("image")] == [png(4)]


def test_merge_counts_media_shared_between_sources_not_within_one(tmp_path):
    a = dataset(tmp_path / "a", [5, 5, 5, 5, 5, 5])  # one image used by six samples of one source
    b = dataset(tmp_path / "b", [6], prefix="b")
    assert merge_datasets([a, b], tmp_path / "mix", progress=False)["media_shared"] == 0
    c = dataset(tmp_path / "c", [5, 7], prefix="c")
    assert merge_datasets([a, b, c], tmp_path / "mix2", progress=False)["media_shared"] == 1
