"""Bad input: a clear error under --on-error fail, a precise report under skip, nothing valid lost."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from fixtures_data import docvqa_rows, features, image_bytes, struct, vitextvqa_rows, write_hf_parquet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlmkit.cli import main
from vlmkit.data.importers import import_dataset
from vlmkit.data.schema import read_samples
from vlmkit.errors import DataError


def report_of(folder: Path) -> dict:
    return json.loads((folder / "import_report.json").read_text())


def assert_accounted(report: dict) -> None:
    """The accounting rule every import keeps."""
    assert report["samples_written"] + report["samples_skipped"] == report["samples_expected"]
    assert report["samples_skipped"] == sum(entry["samples"] for entry in report["skipped"])


def llava_file(tmp_path: Path, records: list, name: str = "llava.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def qa(i: int) -> dict:
    return {
        "id": str(i),
        "conversations": [{"from": "human", "value": f"Question {i}?"}, {"from": "gpt", "value": f"Answer {i}"}],
    }


def test_malformed_json(tmp_path):
    text = json.dumps([qa(0), qa(1)])[:-1] + ', {"id": "2", "conversations": ['  # cut off mid-record
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(DataError) as err:
        import_dataset(path, tmp_path / "fail", format="llava", progress=False)
    assert str(path) in str(err.value) and "malformed JSON after record 1" in str(err.value)
    assert not (tmp_path / "fail" / "samples.jsonl").exists()
    assert report_of(tmp_path / "fail")["status"] == "failed"

    report = import_dataset(path, tmp_path / "skip", format="llava", on_error="skip", progress=False)
    assert [s.id for s in read_samples(tmp_path / "skip")] == ["llava-0", "llava-1"]
    assert report["skipped"][0]["location"] == "#2" and "malformed JSON" in report["skipped"][0]["reason"]
    assert_accounted(report)


def test_missing_column(tmp_path):
    rows = docvqa_rows(2)
    for row in rows:
        del row["question"]
    feats = features("docvqa")
    del feats["question"]
    write_hf_parquet(tmp_path / "src", rows, feats)
    with pytest.raises(
        DataError, match=r"record row 0: field 'question': missing 'question' \(keys present: .*answers"
    ):
        import_dataset(tmp_path / "src", tmp_path / "fail", format="docvqa", progress=False)
    with pytest.raises(DataError, match="no samples imported"):
        import_dataset(tmp_path / "src", tmp_path / "skip", format="docvqa", on_error="skip", progress=False)
    report = report_of(tmp_path / "skip")
    assert [e["location"] for e in report["skipped"]] == ["row 0", "row 1"]
    assert all(e["field"] == "question" for e in report["skipped"])


def test_record_without_question_and_undecodable_image(tmp_path):
    rows = docvqa_rows(5)
    rows[1]["question"] = "   "
    rows[3]["image"] = struct(b"\x89PNG\r\n\x1a\n this is not really a png", "broken.png")
    write_hf_parquet(tmp_path / "src", rows, features("docvqa"))
    with pytest.raises(DataError) as err:
        import_dataset(tmp_path / "src", tmp_path / "fail", format="docvqa", progress=False)
    assert "test-00000-of-00001.parquet: record row 1: field 'question': empty question" in str(err.value)

    report = import_dataset(tmp_path / "src", tmp_path / "skip", format="docvqa", on_error="skip", progress=False)
    assert [s.id for s in read_samples(tmp_path / "skip")] == ["docvqa-49150", "docvqa-49152", "docvqa-49154"]
    reasons = {e["location"]: e["reason"] for e in report["skipped"]}
    assert reasons["row 1"] == "empty question"
    assert "broken.png can't be decoded" in reasons["row 3"]
    assert_accounted(report)


def test_missing_image_file(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.jpg").write_bytes(image_bytes(0))
    records = [
        {"id": "a", "image": "a.jpg", "conversations": qa(0)["conversations"]},
        {"id": "b", "image": "nowhere.jpg", "conversations": qa(1)["conversations"]},
    ]
    path = llava_file(tmp_path, records)
    with pytest.raises(DataError, match=r"record #1: field 'image': image file not found: nowhere.jpg"):
        import_dataset(path, tmp_path / "fail", format="llava", media_root=tmp_path / "img", progress=False)
    report = import_dataset(
        path, tmp_path / "skip", format="llava", media_root=tmp_path / "img", on_error="skip", progress=False
    )
    assert report["samples_written"] == 1 and report["skipped"][0]["location"] == "#1"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_non_utf8_file(tmp_path, suffix):
    good = [qa(0), qa(1)]
    if suffix == ".jsonl":
        data = (
            json.dumps(good[0]).encode()
            + b"\n"
            + '{"id": "x", "q": "caf\xe9"}'.encode("latin-1")
            + b"\n"
            + json.dumps(good[1]).encode()
            + b"\n"
        )
        fmt, expect_written = "llava", 2
    elif suffix == ".csv":
        data = b"videoid,name\n" + "1,caf\xe9\n".encode("latin-1") + b"2,fine\n"
        fmt, expect_written = "video-captions", 0
    else:
        data = b'[{"id": "0", "conversations": [{"from": "human", "value": "caf\xe9?"}]}]'
        fmt, expect_written = "llava", 0
    path = tmp_path / f"latin1{suffix}"
    path.write_bytes(data)
    with pytest.raises(DataError, match="not valid UTF-8"):
        import_dataset(path, tmp_path / "fail", format=fmt, progress=False)
    if expect_written:
        report = import_dataset(path, tmp_path / "skip", format=fmt, on_error="skip", progress=False)
        assert report["samples_written"] == expect_written
        assert report["skipped"][0]["location"] == "line 2" and "not valid UTF-8" in report["skipped"][0]["reason"]
        assert_accounted(report)


@pytest.mark.parametrize("name", ["empty.json", "empty.jsonl", "empty.csv"])
def test_empty_file(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match=f"{name}: record file: file is empty"):
        import_dataset(tmp_path / name, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="file is empty"):
        import_dataset(tmp_path / name, tmp_path / "out2", format="llava", progress=False)


def test_empty_parquet_and_folder(tmp_path):
    write_hf_parquet(tmp_path / "src", [], features("docvqa"))
    with pytest.raises(DataError, match="no samples imported"):
        import_dataset(tmp_path / "src", tmp_path / "out", format="docvqa", progress=False)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no parquet shards"):
        import_dataset(tmp_path / "nothing", tmp_path / "out2", progress=False)


def test_odd_number_of_turns(tmp_path):
    rows = vitextvqa_rows()
    rows[0]["conversations"] = rows[0]["conversations"][:5]  # third question lost its answer
    write_hf_parquet(tmp_path / "src", rows, features("vitextvqa"), split="train")

    with pytest.raises(DataError, match=r"record row 0: field 'conversations': turn 5: question has no answer"):
        import_dataset(tmp_path / "src", tmp_path / "fail", progress=False)

    report = import_dataset(tmp_path / "src", tmp_path / "split", on_error="skip", progress=False)
    assert [s.id for s in read_samples(tmp_path / "split")] == ["vitextvqa-0-0", "vitextvqa-0-1", "vitextvqa-1-0"]
    assert report["samples_expected"] == 4 and report["samples_skipped"] == 1
    assert_accounted(report)

    report = import_dataset(tmp_path / "src", tmp_path / "keep", turns="keep", on_error="skip", progress=False)
    assert [s.id for s in read_samples(tmp_path / "keep")] == ["vitextvqa-1"]
    assert (
        "odd number of turns (5)" in report["skipped"][0]["reason"]
        and "--turns split" in report["skipped"][0]["reason"]
    )
    assert_accounted(report)


def test_bad_turn_structure(tmp_path):
    records = [
        {
            "id": "twice",
            "conversations": [
                {"from": "human", "value": "A?"},
                {"from": "human", "value": "B?"},
                {"from": "gpt", "value": "C"},
            ],
        },
        {"id": "robot", "conversations": [{"from": "robot", "value": "A?"}, {"from": "gpt", "value": "B"}]},
        {"id": "answer-first", "conversations": [{"from": "gpt", "value": "B"}, {"from": "human", "value": "A?"}]},
        {"id": "empty-answer", "conversations": [{"from": "human", "value": "A?"}, {"from": "gpt", "value": "  "}]},
        {"id": "not-a-list", "conversations": "hello"},
        qa(9),
    ]
    report = import_dataset(
        llava_file(tmp_path, records), tmp_path / "out", format="llava", on_error="skip", progress=False
    )
    reasons = [e["reason"] for e in report["skipped"]]
    assert "turn 2: two 'user' turns in a row" in reasons[0]
    assert "turn 1 has role 'robot'" in reasons[1]
    assert "must start with a question" in reasons[2]
    assert "turn 2: empty answer" in reasons[3]
    assert "must be a list of turns" in reasons[4]
    assert [s.id for s in read_samples(tmp_path / "out")] == ["llava-9"]


def test_sharegpt_placeholder_count_must_match(tmp_path):
    (tmp_path / "a.jpg").write_bytes(image_bytes(0))
    records = [
        {
            "messages": [
                {"role": "user", "content": "<image><image>Compare"},
                {"role": "assistant", "content": "Same"},
            ],
            "images": ["a.jpg"],
        },
        {
            "messages": [{"role": "user", "content": "No placeholder"}, {"role": "assistant", "content": "x"}],
            "images": ["a.jpg"],
        },
    ]
    path = llava_file(tmp_path, records, "sg.json")
    with pytest.raises(DataError, match=r"2 <image> placeholder\(s\) but 1 image\(s\)"):
        import_dataset(path, tmp_path / "out", format="sharegpt", progress=False)
    with pytest.raises(DataError, match="no samples imported"):
        import_dataset(path, tmp_path / "out2", format="sharegpt", on_error="skip", progress=False)
    report = report_of(tmp_path / "out2")
    assert "0 <image> placeholder(s) but 1 image(s)" in report["skipped"][1]["reason"]


def test_cli_exit_code_and_message(tmp_path, capsys):
    rows = docvqa_rows(3)
    rows[2]["question"] = ""
    write_hf_parquet(tmp_path / "src", rows, features("docvqa"))
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "import", str(tmp_path / "src"), "--format", "docvqa", "--out", str(tmp_path / "fail")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "record row 2: field 'question': empty question" in err

    main(["data", "import", str(tmp_path / "src"), "-f", "docvqa", "-o", str(tmp_path / "skip"), "--on-error", "skip"])
    out = capsys.readouterr().out
    assert "3 records -> 2 samples, 1 skipped" in out and "row 2: empty question" in out


# --- property: whatever mixture of good and bad records, every good one is written ---------------

GOOD = st.builds(lambda n, turns: {"kind": "good", "turns": turns, "n": n}, st.integers(0, 10**6), st.integers(1, 3))
BAD = st.sampled_from(["no-conversations", "odd", "empty-question", "bad-role", "not-object", "missing-image"])


def make_record(spec, index: int):
    if isinstance(spec, dict):
        convo = []
        for t in range(spec["turns"]):
            convo += [
                {"from": "human", "value": f"<image>\nQ{index}.{t}?" if t == 0 else f"Q{index}.{t}?"},
                {"from": "gpt", "value": f"A{spec['n']}"},
            ]
        return {"id": f"r{index}", "image": "ok.png", "conversations": convo}
    if spec == "not-object":
        return ["just", "a", "list"]
    record = {
        "id": f"r{index}",
        "image": "ok.png",
        "conversations": [{"from": "human", "value": "<image>\nQ?"}, {"from": "gpt", "value": "A"}],
    }
    if spec == "no-conversations":
        del record["conversations"]
    elif spec == "odd":
        record["conversations"].append({"from": "human", "value": "Dangling?"})
    elif spec == "empty-question":
        record["conversations"][0]["value"] = ""
    elif spec == "bad-role":
        record["conversations"][1]["from"] = "narrator"
    elif spec == "missing-image":
        record["image"] = "missing.png"
    return record


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(st.one_of(GOOD, BAD), min_size=1, max_size=12), turns=st.sampled_from(["split", "keep"]))
def test_property_nothing_valid_lost(specs, turns):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "ok.png").write_bytes(image_bytes(1, "PNG"))
        records = [make_record(spec, i) for i, spec in enumerate(specs)]
        (tmp / "data.json").write_text(json.dumps(records))
        good = [i for i, spec in enumerate(specs) if isinstance(spec, dict)]
        salvaged = turns == "split" and "odd" in specs  # the answered pair before a dangling question
        if not good and not salvaged:
            with pytest.raises(DataError, match="no samples imported"):
                import_dataset(
                    tmp / "data.json", tmp / "out", format="llava", turns=turns, on_error="skip", progress=False
                )
            report = report_of(tmp / "out")
        else:
            report = import_dataset(
                tmp / "data.json", tmp / "out", format="llava", turns=turns, on_error="skip", progress=False
            )
            written = read_samples(tmp / "out")
            if turns == "keep":
                expected_ids = {f"llava-r{i}" for i in good}
            else:
                expected_ids = {f"llava-r{i}-{t}" for i in good for t in range(specs[i]["turns"])}
            assert expected_ids <= {s.id for s in written}
            # every good record's answers made it, verbatim
            answers = [s.target() for s in written]
            for i in good:
                assert f"A{specs[i]['n']}" in answers
        assert report["records_read"] == len(specs)
        assert_accounted(report)
        bad_count = sum(1 for spec in specs if not isinstance(spec, dict))
        assert report["records_skipped"] == bad_count


def test_import_onto_a_full_disk_is_one_line_and_exit_2(tmp_path):
    import sys

    from full_disk import run_on_small_disk, run_with_file_size_limit, tmpfs_available

    images = tmp_path / "src" / "images"
    images.mkdir(parents=True)
    records = []
    for i in range(40):
        (images / f"{i}.png").write_bytes(image_bytes(i, fmt="PNG", size=(256, 256)))
        records.append({**qa(i), "image": f"images/{i}.png"})
    source = llava_file(tmp_path / "src", records)
    code = "import sys; from vlmkit.cli import main; main(sys.argv[1:])"
    disk = tmp_path / "disk"
    argv = [sys.executable, "-c", code, "data", "import", str(source), "-o", str(disk / "out"), "-f", "llava"]
    if tmpfs_available():
        out = run_on_small_disk(argv, disk, "96k", keep=tmp_path / "kept")
    else:
        out = run_with_file_size_limit(argv, limit=8_000)  # samples.jsonl outgrows it
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no space left on the device"), out.stderr[-2000:]
