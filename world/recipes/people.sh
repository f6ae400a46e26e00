#!/bin/bash
# Warm start of the bundled model for faces with an identity (hair, hair colour, glasses,
# beard): the new words' embedding rows and the UNet learn, everything else stays as shipped.
# Checkpointed and resumable: run it again with the same run folder to go on. On a GPU the
# same recipe runs as it is (the trainer picks CUDA when there is one).
#   world/recipes/people.sh [RUN_DIR] [MINUTES] [THREADS]
set -e
cd "$(dirname "$0")/../.."
run_dir=${1:-runs/people}
exec python -m world.train --minutes "${2:-170}" --threads "${3:-1}" --run-dir "$run_dir" \
  --warm-start engine/models/sticker-world --export-dir "$run_dir/export" \
  --set lr=1e-4 --set warmup=100 --set unet_steps=1000000 \
  --set single_pool=8000 --set multi_pool=18000 --set people_share=0.3 \
  --set named_faces_share=0.3 --set named_ears_share=0.1 --set named_patterns_share=0.15 \
  --set ear_loss_weight=5 --set export_every=500 --set keep_exports=true \
  --set checkpoint_minutes=5
