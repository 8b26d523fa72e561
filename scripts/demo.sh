#!/usr/bin/env bash
# `make tour`: the verbs the quickstart does not use, offline end to end:
# a small LLaVA-format dataset -> import -> stats -> split -> tiny Qwen2-VL -> LoRA -> eval base and
# tuned -> compare -> merged export -> one answer. Every step is a vlmkit CLI verb on real files.
set -euo pipefail
OUT=${1:-demo_out}
VLMKIT=${VLMKIT:-vlmkit}
REPO=$(cd "$(dirname "$0")/.." && pwd)
export HF_HUB_OFFLINE=1
rm -rf "$OUT" && mkdir -p "$OUT/raw/images"
cd "$OUT"

echo "== 1. a small LLaVA-format dataset (coloured circles on white, 120 records)"
python - <<'PY'
import json, random
from PIL import Image, ImageDraw
colors = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 170, 30), "yellow": (230, 200, 20)}
rng = random.Random(0)
records = []
for i in range(120):
    name = rng.choice(sorted(colors))
    image = Image.new("RGB", (112, 112), "white")
    x, y = rng.randint(5, 50), rng.randint(5, 50)
    ImageDraw.Draw(image).ellipse((x, y, x + 55, y + 55), fill=colors[name])
    image.save(f"raw/images/{i:03d}.png")
    records.append({"id": f"circle-{i:03d}", "image": f"{i:03d}.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat color is the circle?"}, {"from": "gpt", "value": name}]})
json.dump(records, open("raw/train.json", "w"))
PY

echo "== 2. import, look, split"
$VLMKIT data import raw/train.json --format llava --media-root raw/images --out data
$VLMKIT data stats data --out data_stats
$VLMKIT data split data --val 0.1 --test 0.2 --group-by image --seed 0

echo "== 3. a tiny Qwen2-VL checkpoint (random weights) and a LoRA fine-tune"
$VLMKIT models tiny qwen2_vl base
cat > lora.yaml <<'YAML'
name: demo
output_dir: runs/demo
method: lora
model: {path: base, dtype: float32}
data: {train: data/splits/train, eval: data/splits/val, max_length: 512}
lora: {rank: 16, alpha: 32, targets_extra: [lm_head, embed_tokens]}
optim: {lr: 2.0e-3, scheduler: cosine, warmup_ratio: 0.05}
train: {batch_size: 8, max_steps: 60, seed: 0, logging_steps: 10}
eval: {every: 30}
save: {every: 30, keep_last: 1}
YAML
$VLMKIT train lora.yaml

echo "== 4. evaluate base and tuned on the held-out images, compare"
$VLMKIT eval --model base --task vitextvqa --data data/splits/test --out evals/base --batch-size 16
$VLMKIT eval --model base --adapter runs/demo/adapter --task vitextvqa --data data/splits/test --out evals/tuned --batch-size 16
$VLMKIT compare evals/base evals/tuned --out evals/compare

echo "== 5. merged export and one answer"
$VLMKIT export runs/demo --out merged
$VLMKIT infer --model merged --image raw/images/000.png --question "What color is the circle?"
echo "== 6. a tiny hyper-parameter sweep (Optuna TPE over rank and learning rate, pruned on eval loss)"
cat > sweep_base.yaml <<'YAML'
name: sweep
method: lora
model: {path: base, dtype: float32}
data: {train: data/splits/train, eval: data/splits/val, max_length: 512}
lora: {rank: 4, alpha: 8}
optim: {lr: 2.0e-3, scheduler: constant}
train: {batch_size: 8, max_steps: 10, seed: 0, logging_steps: 5}
eval: {every: 5}
save: {every: 1000}
tracking: {backends: []}
YAML
# the shipped tiny sweep names its files under demo_out/; here they are next to it
sed 's#\.\./\.\./demo_out/##' "$REPO/configs/sweeps/tiny_lr_search.yaml" > sweep.yaml
$VLMKIT sweep sweep.yaml --out sweep
$VLMKIT compare sweep --out sweep/compare
echo "done: see $OUT/evals/compare/compare.md, $OUT/sweep/report.md and $OUT/data_stats/stats.md"
