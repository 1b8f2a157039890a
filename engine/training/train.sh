#!/usr/bin/env bash
# Reproduce the shipped default model: fetch the data, train, export fp16 weights.
#   engine/training/train.sh [extra train.py args]        (CPU: ~90 min on 2 cores at 160 px)
# On a GPU machine raise --size to 320, --batch to 32 and --total-steps; the script is the same.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
[ -d /usr/share/icons/oxygen/base/256x256 ] && [ -d /usr/share/tuxpaint/stamps ] || engine/training/fetch_data.sh
O=/usr/share/icons/oxygen/base/256x256
"$PY" -m engine.training.train \
    --fg "$O/devices" "$O/apps" "$O/places" "$O/mimetypes" /usr/share/tuxpaint/stamps \
    --bg /usr/share/backgrounds \
    --size 160 --batch 8 --threads 1 --workers 1 --total-steps 2500 --minutes 110 --seed 0 \
    --out runs/ckpt.pt --resume runs/ckpt.pt "$@"
"$PY" -m engine.training.train --export runs/ckpt.pt engine/weights/u2netp-products.pth
