#!/bin/bash
# pusht-irasim-pose's DiT trained from scratch on the broad training mix, on the CPU: the shipped GPU run's
# schedule (batch 512, AdamW lr 1e-3 with 500 warm-up steps and a cosine to 1e-5 over 8,500 steps, EMA 0.9995,
# history noise 0.03; docs/models/pusht-irasim-pose.md) with the data of the pose step's broad training
# instead of the first mix alone. All NPROC processes train one model (DDP over gloo, one thread each).
# Checkpoints every 100 steps: stop it any time, run it again and it resumes.
#
#   bash experiments/recipes/cpu_pose_dit_broad.sh            # collect what is missing, tokens, train, export
#   OUT=runs/dit_broad NPROC=2 bash experiments/recipes/cpu_pose_dit_broad.sh
#
# On 2 cores a step takes about 2.6 s (8,500 steps: about 6 hours). The exported model lands in $OUT/model;
# score it with the fidelity benchmark's held-out and stress commands (docs/fidelity.md) before shipping.
set -eu
OUT=${OUT:-runs/dit_broad}
TOKENS=${TOKENS:-$OUT/tokens}
NPROC=${NPROC:-2}
WG=${WG:-world-gym}
TORCHRUN=${TORCHRUN:-torchrun}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
DIT="dynamics=pusht_pose_block_frame_ada dynamics.size=small-cpu dynamics.board_pose=true"

collect() {  # root, then collect's own arguments
  local root=$1; shift
  [ -f "$root/meta/info.json" ] || $WG collect pusht --root "$root" "$@"
}
collect data/pusht/train --episodes 300 --split train --mix expert=0.3,noisy=0.4,play=0.3
collect data/pusht/broad --episodes 2400 --split train --mix broad --no-images --workers "$NPROC"
collect data/pusht/fast_play200 --episodes 200 --split train --mix fast_play --no-images --workers "$NPROC"

# the first mix four times, the broad set once, fast play four times (1,238,385 frames, 48 MB)
T=data/pusht/train; F=data/pusht/fast_play200
[ -f "$TOKENS/latents.npy" ] || $WG train consistency-tokens codec_dir="$TOKENS" \
    "token_roots=[$T,$T,$T,$T,data/pusht/broad,$F,$F,$F,$F]"

$TORCHRUN --standalone --nproc_per_node "$NPROC" -m world_gym.training.train_dynamics codec_dir="$TOKENS" $DIT \
    trainer.batch_size=512 trainer.steps=8500 trainer.lr=0.001 trainer.lr_schedule=cosine trainer.lr_min=0.00001 \
    trainer.warmup_steps=500 trainer.ema_decay=0.9995 trainer.history_noise=0.03 trainer.threads=1 \
    trainer.log_every=25 trainer.ckpt_every=100 out_dir="$OUT/train"

$WG train export codec_dir="$TOKENS" $DIT out_dir="$OUT/train" export.frames_per_pass=4 \
    export.clip_padding=repeat_last export.backbone_dtype=bfloat16 export_to="$OUT/model"
