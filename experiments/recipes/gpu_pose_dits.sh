#!/bin/bash
# Five pose-token DiTs side by side on one GPU machine; the shipped pusht-irasim-pose is the small_board run
# (docs/models/pusht-irasim-pose.md). Written for a machine without network access that takes at most
# 64 MiB of the tree, runs commands of at most 10 minutes, and returns files of at most 16 MiB.
# Before the calls, here (the tree that travels must stay under 64 MiB):
#   echo /.device/ >> .git/info/exclude; mkdir -p .device/whl .device/tokens; cp runs/pusht/pose2/tokens/* .device/tokens/
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 -d .device/whl gymnasium==1.4.0 farama-notifications diffusers==0.35.2 \
#       importlib_metadata==10.2.0 hydra-core==1.3.8 omegaconf==2.3.1
#   pip wheel --no-deps -w .device/whl antlr4-python3-runtime==4.9.3      # an sdist: built here
#   mv world_gym/assets/reward_heads/resnet_iou_pusht.safetensors /tmp/held/   # back when the calls are done
# Three `run` calls with carry [".device"], back to back (an idle machine goes back after 30 s):
#   bash experiments/recipes/gpu_pose_dits.sh start    # install, probe the speed of all five together, launch them for TRAIN_S
#   bash experiments/recipes/gpu_pose_dits.sh finish   # wait for them, then return their EMA shards and logs under $OUT
#   bash experiments/recipes/gpu_pose_dits.sh resume   # runs that trainer.max_minutes stopped early: on to their steps, then return
# Here: cat runs.tar.* | tar -x -C runs/pusht/gpu15, then world-gym train export ... trainer.init_from=DIR.
# The shipped DiT's recipe on the broad training data instead (one run, the whole GPU; 48 MB of tokens):
#   the tokens experiments/recipes/cpu_pose_dit_broad.sh collects and writes (its data and token_roots), in .device/tokens
#   NAMES=small_board TRAIN_S=420 bash experiments/recipes/gpu_pose_dits.sh start   (then finish / resume)
# The same schedule at IRASim's S size (12 blocks of width 384: 33M parameters, the shipped DiT 5.65M) on those tokens:
#   NAMES=S_board TRAIN_S=420 bash experiments/recipes/gpu_pose_dits.sh start     (then finish / resume)
set -u
PHASE=$1
T0=$(date +%s)
export PYTHONPATH=/tmp/wg:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2   # the configs ship in the package
WG="python3 -P -m world_gym.cli"
TRAIN_S=${TRAIN_S:-1000}
COMMON="codec_dir=$PWD/.device/tokens trainer=dynamics_gpu trainer.bf16=false trainer.batch_size=512 trainer.lr=0.001
 trainer.lr_schedule=cosine trainer.lr_min=0.00001 trainer.history_noise=0.03 trainer.ema_decay=0.9995
 trainer.warmup_steps=500 trainer.threads=2 trainer.log_every=250 trainer.ckpt_every=1000"
NAMES=${NAMES:-mini mini_board small small_board video_board}
args() {
  case $1 in
    mini) echo "dynamics=pusht_pose_block_frame_ada dynamics.size=mini" ;;
    small) echo "dynamics=pusht_pose_block_frame_ada dynamics.size=small-cpu" ;;
    small_board) echo "dynamics=pusht_pose_block_frame_ada dynamics.size=small-cpu dynamics.board_pose=true" ;;
    mini_board) echo "dynamics=pusht_pose_block_frame_ada dynamics.size=mini dynamics.board_pose=true" ;;
    video_board) echo "dynamics=pusht_pose_block_video_ada dynamics.size=small-cpu dynamics.board_pose=true" ;;
    S_board) echo "dynamics=pusht_pose_block_frame_ada dynamics.size=S dynamics.board_pose=true" ;;
  esac
}

pack() {  # EMA shards (bf16) + log + config of each run, one tar cut in 15 MiB pieces (what comes back: 8 files, 16 MiB each)
  mkdir -p /tmp/sh
  for n in $NAMES; do
    [ -f /tmp/r/$n/ckpt.pt ] || { echo "no checkpoint for $n"; continue; }
    $WG train shards $COMMON $(args $n) out_dir=/tmp/r/$n shards_to=/tmp/sh/$n > /dev/null 2>&1 || echo "shards $n failed"
    cp /tmp/r/$n/log.csv /tmp/r/$n/config.yaml /tmp/sh/$n/ 2>/dev/null
    tail -c 400 /tmp/r/$n.log > /tmp/sh/$n/tail.txt 2>/dev/null
  done
  tar -C /tmp/sh -cf - . | split -b 15m -d - $OUT/runs.tar.
  ls -la $OUT
}

progress() {
  for n in $NAMES; do echo "$n: $(tail -1 /tmp/r/$n/log.csv 2>/dev/null) | $(tr '\r' '\n' < /tmp/r/$n.log | tail -1 | cut -c1-100)"; done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
}

if [ "$PHASE" = start ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/whl/*.whl || exit 1
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/wg . > /tmp/pip_wg.log 2>&1 || { tail /tmp/pip_wg.log; exit 1; }
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
  echo "installed after $(( $(date +%s) - T0 )) s"
  # the speed of all five at once (as they will run), 400 steps each
  for n in $NAMES; do
    $WG train dynamics $COMMON $(args $n) out_dir=/tmp/probe/$n trainer.steps=400 trainer.log_every=100 \
      trainer.ckpt_every=100000 > /tmp/probe_$n.log 2>&1 &
  done
  wait
  echo "probed after $(( $(date +%s) - T0 )) s"
  mkdir -p /tmp/r
  for n in $NAMES; do
    if [ ! -f /tmp/probe/$n/log.csv ]; then tail -20 /tmp/probe_$n.log; exit 1; fi
    steps=$(python3 - "$n" "$TRAIN_S" <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(f"/tmp/probe/{sys.argv[1]}/log.csv")))
per_step = (float(rows[-1]["seconds"]) - float(rows[0]["seconds"])) / (int(rows[-1]["step"]) - int(rows[0]["step"]))
print(int(0.92 * float(sys.argv[2]) / per_step) // 500 * 500)
EOF
)
    echo "$n: $(grep -o 'backbone.*' /tmp/probe_$n.log | head -1 | cut -c1-60); $steps steps in ${TRAIN_S}s"
    setsid nohup $WG train dynamics $COMMON $(args $n) out_dir=/tmp/r/$n trainer.steps=$steps \
      trainer.max_minutes=$(( TRAIN_S / 60 )) > /tmp/r/$n.log 2>&1 < /dev/null &
  done
  sleep $(( ${START_SLEEP_UNTIL:-460} - ($(date +%s) - T0) ))
  progress
  pack   # interim weights, in case the machine is gone before 'finish' (takes about a minute under load)
  echo "start phase done after $(( $(date +%s) - T0 )) s"
elif [ "$PHASE" = resume ]; then
  # the probe overestimates the speed of the larger models (the mini runs finish first and free the GPU)
  for n in $NAMES; do
    want=$(sed -n 's/^  steps: //p' /tmp/r/$n/config.yaml)
    [ -n "$want" ] && [ "$(tail -1 /tmp/r/$n/log.csv | cut -d, -f1)" != "$want" ] || continue
    echo "$n: resuming to $want steps"
    $WG train dynamics $COMMON $(args $n) out_dir=/tmp/r/$n trainer.steps=$want \
      trainer.max_minutes=${RESUME_MINUTES:-6} >> /tmp/r/$n.log 2>&1 &
  done
  wait
  progress
  pack
else
  while pgrep -f "train dynamics" > /dev/null; do
    [ $(( $(date +%s) - T0 )) -gt ${FINISH_WAIT:-520} ] && { echo "still training; packing what there is"; break; }
    sleep 10
  done
  progress
  pack
  echo "finish phase done after $(( $(date +%s) - T0 )) s"
fi
