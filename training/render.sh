#!/usr/bin/env bash
# Render the sweethome3d-furniture products to RGBA foregrounds in runs/renders (one Blender per
# core, ~0.5 s a view on this CPU). Blender segfaults on a few models: each shard is restarted
# and skips the model it died on (render_furniture.py leaves a marker). Safe to re-run: finished
# renders are kept.
#   training/render.sh [extra render_furniture.py args, e.g. --views 3]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/renders}
SHARDS=${SHARDS:-$(nproc)}
[ -d /usr/share/sweethome3d/furniture ] && command -v blender >/dev/null || training/fetch_data.sh
mkdir -p "$OUT"
for ((i = 0; i < SHARDS; i++)); do
    (
        for attempt in $(seq 200); do  # each crash costs one model, so this bounds the crashing models
            if blender -b --factory-startup --python-exit-code 1 -P training/render_furniture.py -- "$OUT" \
                --shard "$i" --shards "$SHARDS" "$@" >> "$OUT/shard$i.log" 2>&1; then
                exit 0
            fi
            echo "render shard $i: Blender died (attempt $attempt), restarting" >&2
        done
        exit 1
    ) &
done
wait
echo "$(ls "$OUT"/*.png | wc -l) renders in $OUT; failed: $(grep -h RENDER_FAILED "$OUT"/shard*.log | sort -u | wc -l)"
