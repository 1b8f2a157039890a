#!/usr/bin/env bash
# Reproduce the shipped default model: fetch the data, train in three stages, export fp16 weights.
#   training/train.sh [extra train.py args, given to every stage]
# CPU, 2 cores, 160 px, batch 8 (each stage resumes from its checkpoint in runs/):
#   stage 1 (~90 min): plain composites, 2,500 steps from scratch;
#   renders (~10 min): the sweethome3d-furniture products and people (render.sh);
#   stage 2 (~55 min): 2,500 steps from stage 1's weights, 60 % of the samples drawn as scenes (a
#                      product standing on a table among distractors that are not in the matte);
#   stage 3 (~45 min): 2,000 more steps of the same data from stage 2's weights at half the LR.
# On a GPU machine raise --size to 320, --batch to 32 and --total-steps; the script is the same.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
for d in /usr/share/icons/oxygen/base/256x256 /usr/share/tuxpaint/stamps /usr/share/sweethome3d/furniture; do
    [ -d "$d" ] || { training/fetch_data.sh; break; }
done
train() { "$PY" -m training.train --size 160 --batch 8 --workers 1 "$@"; }
train --threads 1 --total-steps 2500 --minutes 110 --seed 0 --out runs/ckpt.pt --resume runs/ckpt.pt "$@"
"$PY" -m training.train --export runs/ckpt.pt runs/stage1.pth
training/render.sh
train --threads 2 --scenes 0.6 --lr 6e-4 --total-steps 2500 --minutes 80 --seed 1 --init runs/stage1.pth \
    --out runs/scenes.pt --resume runs/scenes.pt "$@"
"$PY" -m training.train --export runs/scenes.pt runs/stage2.pth
train --threads 2 --scenes 0.6 --lr 3e-4 --total-steps 2000 --minutes 60 --seed 2 --init runs/stage2.pth \
    --out runs/scenes3.pt --resume runs/scenes3.pt "$@"
"$PY" -m training.train --export runs/scenes3.pt engine/weights/u2netp-products.pth
