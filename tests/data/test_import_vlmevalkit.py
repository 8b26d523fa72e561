"""`vlmkit data import --format vlmevalkit` (VLMEvalKit's benchmark TSV) and the lmms-eval parquet layouts
of the multiple-choice / yes-no suites, on generated files."""

import json
import string

import pytest
from fixtures_choice import CIRCULAR, b64, mmbench_rows, mmmu_rows, write_tsv
from fixtures_data import image_bytes, struct, write_hf_parquet

from vlmkit.data.importers import import_dataset
from vlmkit.errors import DataError


def samples(folder):
    return {row["id"]: row for row in map(json.loads, (folder / "samples.jsonl").read_text().splitlines())}


def images_of(sample):
    return [p["image"] for m in sample["messages"] for p in m["content"] if p["type"] == "image"]


def test_mmbench_tsv_ids_options_meta_and_references(tmp_path):
    tsv = write_tsv(tmp_path / "MMBench_DEV_EN.tsv", mmbench_rows(3))
    report = import_dataset(tsv, tmp_path / "out", format="vlmevalkit")
    assert report["status"] == "ok" and report["samples_written"] == 9  # 3 + 4 + 2 rotations
    got = samples(tmp_path / "out")
    assert sorted(got, key=int) == ["0", "1", "2", "1000000", "1000001", "1000002", "2000000", "2000001", "3000001"]
    first, rotated = got["0"], got[str(2 * CIRCULAR)]
    assert first["meta"]["options"] == {"A": "cat", "B": "dog", "C": "bird"} and first["answers"] == ["A"]
    assert rotated["meta"]["options"] == {"A": "bird", "B": "cat", "C": "dog"} and rotated["answers"] == ["B"]
    assert first["meta"]["hint"] == "Look closely." and "hint" not in got["1"]["meta"]  # empty cell = no hint
    assert first["meta"]["category"] == "animal" and first["meta"]["l2-category"] == "perception"
    assert first["meta"]["index"] == 0 and rotated["meta"]["index"] == 2 * CIRCULAR
    assert "D" not in got["0"]["meta"]["options"] and len(got["1"]["meta"]["options"]) == 4
    # the reference resolves to the same stored file as the original row's image; stored once
    assert images_of(rotated) == images_of(first) and images_of(got["1"]) != images_of(first)
    assert rotated["meta"]["image_key"] == "0"
    assert len(list((tmp_path / "out" / "media").iterdir())) == 3


def test_auto_detects_the_vlmevalkit_columns(tmp_path):
    tsv = write_tsv(tmp_path / "bench.tsv", mmbench_rows(1))
    assert import_dataset(tsv, tmp_path / "out")["format"] == "vlmevalkit"
    pope = [
        {"index": 0, "question": "Is there a dog?", "answer": "Yes", "category": "adversarial", "image": b64(0)},
        {"index": 1, "question": "Is there a cat?", "answer": "No", "category": "adversarial,random", "image": "0"},
    ]
    report = import_dataset(write_tsv(tmp_path / "POPE.tsv", pope), tmp_path / "pope")
    got = samples(tmp_path / "pope")
    assert (
        report["format"] == "vlmevalkit" and got["1"]["meta"]["image_key"] == "0" and "options" not in got["1"]["meta"]
    )


def test_multi_image_json_list_and_open_question(tmp_path):
    tsv = write_tsv(tmp_path / "MMMU_DEV_VAL.tsv", mmmu_rows())
    import_dataset(tsv, tmp_path / "out", format="vlmevalkit")
    got = samples(tmp_path / "out")
    assert len(images_of(got["1"])) == 2 and images_of(got["1"])[0] != images_of(got["1"])[1]
    assert "<image 1>" in got["1"]["messages"][0]["content"][-1]["text"]
    assert "options" not in got["2"]["meta"] and got["2"]["answers"] == ["4"]


def test_forward_reference_is_resolved_by_a_second_look(tmp_path):
    rows = mmbench_rows(1)
    rows.reverse()  # the rotations (references) now come before the row that carries the image
    tsv = write_tsv(tmp_path / "b.tsv", rows)
    report = import_dataset(tsv, tmp_path / "out", format="vlmevalkit")
    got = samples(tmp_path / "out")
    assert report["samples_written"] == 3 and images_of(got["0"]) == images_of(got[str(CIRCULAR)])


def test_reference_to_a_missing_row_names_the_row_and_index(tmp_path):
    rows = mmbench_rows(1)
    rows[1]["image"] = "77"
    tsv = write_tsv(tmp_path / "b.tsv", rows)
    with pytest.raises(DataError) as err:
        import_dataset(tsv, tmp_path / "out", format="vlmevalkit")
    assert "index 77" in str(err.value) and "b.tsv" in str(err.value)


def test_image_path_rows(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.png").write_bytes(image_bytes(4, fmt="PNG"))
    tsv = write_tsv(
        tmp_path / "MME.tsv",
        [
            {
                "index": 5,
                "question": "Is it red? Please answer yes or no.",
                "answer": "Yes",
                "category": "color",
                "image_path": "x.png",
            }
        ],
    )
    import_dataset(tsv, tmp_path / "out", format="vlmevalkit", media_root=tmp_path / "imgs")
    got = samples(tmp_path / "out")["5"]
    assert len(images_of(got)) == 1 and got["meta"]["image_key"] == "x.png" and got["answers"] == ["Yes"]


def test_bad_base64_is_reported_with_its_line(tmp_path):
    rows = mmbench_rows(2)
    rows[0]["image"] = "!" * 100
    tsv = write_tsv(tmp_path / "b.tsv", rows)
    report = import_dataset(tsv, tmp_path / "out", format="vlmevalkit", on_error="skip")
    assert report["samples_written"] == 4 and report["samples_skipped"] == 3  # question 0 and its 2 rotations
    problems = json.dumps(report)
    assert "line 2" in problems and ("base64" in problems or "decoded" in problems)


# --- lmms-eval parquet layouts ---------------------------------------------------------------------


def _features(kind):
    from datasets import Features, List, Value
    from datasets import Image as HFImage

    s = Value("string")
    return Features(
        {
            "ai2d": {"question": s, "options": List(s), "answer": s, "image": HFImage()},
            "pope": {
                "id": s,
                "question_id": s,
                "question": s,
                "answer": s,
                "image_source": s,
                "image": HFImage(),
                "category": s,
            },
            "mme": {"question_id": s, "question": s, "answer": s, "category": s, "image": HFImage()},
            "mmmu": {
                "id": s,
                "question": s,
                "options": s,
                "answer": s,
                "question_type": s,
                "subfield": s,
                **{f"image_{n}": HFImage() for n in range(1, 8)},
            },
            "seedbench": {
                "question_id": s,
                "question": s,
                "choice_a": s,
                "choice_b": s,
                "choice_c": s,
                "choice_d": s,
                "answer": s,
                "question_type_id": Value("int16"),
                "data_type": s,
                "image": List(HFImage()),
            },
            "mmbench": {
                "index": Value("int64"),
                "question": s,
                "hint": s,
                "A": s,
                "B": s,
                "C": s,
                "D": s,
                "answer": s,
                "category": s,
                "image": HFImage(),
                "L2-category": s,
                "split": s,
            },
            "scienceqa": {
                "question": s,
                "choices": List(s),
                "answer": Value("int8"),
                "hint": s,
                "image": HFImage(),
                "subject": s,
                "category": s,
            },
        }[kind]
    )


def test_lmms_ai2d_scienceqa_pope_mme_mmmu_layouts(tmp_path):
    img = struct(image_bytes(1), "a.jpg")
    cases = {
        "ai2d": [{"question": "Which stage?", "options": ["egg", "larva", "adult"], "answer": "2", "image": img}],
        "scienceqa": [
            {
                "question": "Which is a mammal?",
                "choices": ["frog", "whale"],
                "answer": 1,
                "hint": "Ocean.",
                "image": img,
                "subject": "natural science",
                "category": "Classify",
            }
        ],
        "pope": [
            {
                "id": "1",
                "question_id": "q1",
                "question": "Is there a dog in the image?",
                "answer": "yes",
                "image_source": "COCO_1",
                "image": img,
                "category": "adversarial",
            }
        ],
        "mme": [
            {
                "question_id": "code_reasoning/0020.png",
                "question": "Is the output 3?",
                "answer": "Yes",
                "category": "code_reasoning",
                "image": img,
            }
        ],
        "mmmu": [
            {
                "id": "validation_Art_Theory_3",
                "question": "<image 1> vs <image 2>?",
                "options": "['x', 'y']",
                "answer": "B",
                "question_type": "multiple-choice",
                "subfield": "Painting",
                **{f"image_{n}": (struct(image_bytes(n), f"{n}.jpg") if n <= 2 else None) for n in range(1, 8)},
            },
            {
                "id": "validation_Math_7",
                "question": "2+2?",
                "options": "[]",
                "answer": "4",
                "question_type": "open",
                "subfield": "Algebra",
                **{f"image_{n}": (img if n == 1 else None) for n in range(1, 8)},
            },
        ],
    }
    cases["seedbench"] = [
        {
            "question_id": "101",
            "question": "How many?",
            "choice_a": "1",
            "choice_b": "2",
            "choice_c": "3",
            "choice_d": "4",
            "answer": "C",
            "question_type_id": 5,
            "data_type": "image",
            "image": [img],
        }
    ]
    cases["mmbench"] = [
        {
            "index": 3,
            "question": "Which?",
            "hint": None,
            "A": "x",
            "B": "y",
            "C": None,
            "D": None,
            "answer": "B",
            "category": "ocr",
            "image": img,
            "L2-category": "perception",
            "split": "dev",
        }
    ]
    formats = {"mmbench": "vlmevalkit"}
    for kind, rows in cases.items():
        write_hf_parquet(tmp_path / kind, rows, _features(kind), split="validation")
        report = import_dataset(tmp_path / kind, tmp_path / f"{kind}-out")
        assert report["format"] == formats.get(kind, "lmms-choice") and report["samples_written"] == len(rows), kind
    ai2d = next(iter(samples(tmp_path / "ai2d-out").values()))
    assert ai2d["meta"]["options"] == {"A": "egg", "B": "larva", "C": "adult"} and ai2d["answers"] == ["C"]
    sqa = next(iter(samples(tmp_path / "scienceqa-out").values()))
    assert sqa["answers"] == ["B"] and sqa["meta"]["hint"] == "Ocean." and sqa["meta"]["subject"] == "natural science"
    pope = samples(tmp_path / "pope-out")["1"]
    assert pope["answers"] == ["yes"] and pope["meta"]["category"] == "adversarial"
    mme = samples(tmp_path / "mme-out")["code_reasoning/0020.png"]
    assert mme["meta"]["image_key"] == "code_reasoning/0020.png" and mme["meta"]["category"] == "code_reasoning"
    seed = samples(tmp_path / "seedbench-out")["101"]
    assert seed["answers"] == ["C"] and seed["meta"]["category"] == "Instances Counting" and len(images_of(seed)) == 1
    mmb = samples(tmp_path / "mmbench-out")["3"]
    assert mmb["meta"]["options"] == {"A": "x", "B": "y"} and mmb["meta"]["l2-category"] == "perception"
    assert len(images_of(mmb)) == 1 and "hint" not in mmb["meta"]
    mmmu = samples(tmp_path / "mmmu-out")
    art = mmmu["validation_Art_Theory_3"]
    assert len(images_of(art)) == 2 and art["meta"]["options"] == {"A": "x", "B": "y"}
    assert art["meta"]["category"] == "Art_Theory" and art["answers"] == ["B"]
    assert "options" not in mmmu["validation_Math_7"]["meta"] and mmmu["validation_Math_7"]["answers"] == ["4"]


def test_forced_lmms_format_on_other_columns_names_the_expected_ones(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"foo": 1, "question": "q"}) + "\n")
    with pytest.raises(DataError) as err:
        import_dataset(path, tmp_path / "out", format="lmms-choice")
    assert "ai2d: question, options, answer, image" in str(err.value) and "x.jsonl" in str(err.value)


def test_five_letters_options_keep_their_letters(tmp_path):
    row = {"index": 9, "question": "Pick", "answer": "E", "image": b64(0)}
    row.update({c: f"opt {c}" for c in string.ascii_uppercase[:5]})
    import_dataset(write_tsv(tmp_path / "s.tsv", [row]), tmp_path / "out", format="vlmevalkit")
    assert list(samples(tmp_path / "out")["9"]["meta"]["options"]) == list("ABCDE")


@pytest.mark.slow
def test_round_trip_import_eval_tiny_model_score_compare(tiny_model, tmp_path):
    """TSV -> import -> eval with a tiny checkpoint (images, prompt layout, real engine) -> score -> compare."""
    from vlmkit.eval import compare, evaluate
    from vlmkit.eval.engine import load_predict_fn
    from vlmkit.eval.scorefile import score
    from vlmkit.models.tiny import build_tiny

    import_dataset(write_tsv(tmp_path / "MMBench.tsv", mmbench_rows(3)), tmp_path / "data", format="vlmevalkit")
    runs = []
    for name, model in (("base", tiny_model("qwen2_vl")), ("tuned", build_tiny("qwen2_vl", tmp_path / "m2", seed=1))):
        predict, facts = load_predict_fn(str(model), batch_size=4)
        result = evaluate(
            predict, "mmbench", tmp_path / "data", tmp_path / name, batch_size=4, manifest=facts, make_plots=False
        )
        assert result.predicted == 9 and "circular_accuracy" in result.summary["suite"]["overall"]
        rows = [json.loads(x) for x in (tmp_path / name / "predictions.jsonl").read_text().splitlines()]
        assert rows[0]["meta"]["options"] and rows[0]["question"].startswith("Which thing")
        rescored = score(
            tmp_path / name / "predictions.jsonl", "mmbench", out_dir=tmp_path / f"{name}-s", make_plots=False
        )
        assert rescored["overall"] == result.summary["overall"]
        runs.append(tmp_path / name)
    table = compare(runs, out_dir=tmp_path / "cmp", resamples=100, make_png=False)
    assert table["runs"][1]["common"] == 9 and "category" in table["groups"]


def test_many_forward_references_are_resolved_in_one_read_ahead(tmp_path):
    rows = mmbench_rows(3)
    rows.sort(key=lambda r: -r["index"])  # every rotation before its original
    report = import_dataset(write_tsv(tmp_path / "b.tsv", rows), tmp_path / "out", format="vlmevalkit")
    got = samples(tmp_path / "out")
    assert report["samples_written"] == 9 and report["images_decoded"] == 3
    for q in range(3):
        assert images_of(got[str(q + CIRCULAR)]) == images_of(got[str(q)])
