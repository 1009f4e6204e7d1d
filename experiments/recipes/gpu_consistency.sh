#!/bin/bash
# Consistency distillation of pusht-irasim-pose on one lent GPU, then GPU speed rows of teacher and student
# (world_gym/training/train_consistency.py, benchmarks/consistency.py). Written for a machine without network
# access that takes at most 64 MiB of the tree, runs commands of at most 10 minutes, and returns files of at most
# 16 MiB; one call of about 9.5 minutes fits a 15-minute device budget with the machine's start.
# Before the call, here (the tree that travels must stay under 64 MiB):
#   world-gym collect pusht --root data/pusht/train --episodes 80 --split train   # if data/ is empty
#   world-gym train consistency-tokens                                             # -> runs/consistency/tokens
#   echo /.device/ >> .git/info/exclude; mkdir -p .device/whl .device/tokens; cp runs/consistency/tokens/* .device/tokens/
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 -d .device/whl gymnasium==1.4.0 farama-notifications diffusers==0.35.2 \
#       importlib_metadata==10.2.0 hydra-core==1.3.8 omegaconf==2.3.1
#   pip wheel --no-deps -w .device/whl antlr4-python3-runtime==4.9.3      # an sdist: built here
#   mv world_gym/assets/reward_heads/resnet_iou_pusht.safetensors /tmp/held/   # back when the call is done
# One `run` call with carry [".device"] and timeout_s 600:
#   bash experiments/recipes/gpu_consistency.sh
# It returns under $OUT: target.safetensors (the EMA target's weights, bf16), log.csv, config.yaml, train.log,
# bench.txt (the speed table and its JSON line). Here, to a world-model directory:
#   python - <<'EOF'
#   import torch; from safetensors.torch import load_file
#   w = {k: v.float() for k, v in load_file("OUT/target.safetensors").items()}
#   step = int(open("OUT/log.csv").read().split()[-1].split(",")[0])
#   torch.save({"target": w, "step": step}, "runs/consistency/gpu/ckpt.pt")   # what consistency-export reads
#   EOF
#   cp OUT/config.yaml runs/consistency/gpu/; world-gym train consistency-export out_dir=runs/consistency/gpu \
#       export_to=runs/consistency/gpu/world_model
# (that ckpt.pt holds no optimizer: it exports, it does not resume).
set -u
T0=$(date +%s)
export PYTHONPATH=/tmp/wg:/tmp/site PYTHONUNBUFFERED=1 OMP_NUM_THREADS=4   # the configs ship in the package
WG="python3 -P -m world_gym.cli"
TRAIN_MIN=${TRAIN_MIN:-7}
RUN=/tmp/r/consistency
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .device/whl/*.whl || exit 1
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/wg . > /tmp/pip_wg.log 2>&1 || { tail /tmp/pip_wg.log; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; nproc
echo "installed after $(( $(date +%s) - T0 )) s"

# batch 512 (the teacher's), bf16 autocast; the schedule's steps are a ceiling, max_minutes stops it with a checkpoint
$WG train consistency codec_dir=$PWD/.device/tokens out_dir=$RUN trainer.device=cuda trainer.bf16=true \
  trainer.batch_size=512 trainer.lr=0.0001 trainer.steps=100000 trainer.threads=4 trainer.log_every=50 \
  trainer.ckpt_every=500 trainer.max_minutes=$TRAIN_MIN > /tmp/train.log 2>&1
tail -c 600 /tmp/train.log | tr '\r' '\n' | tail -4
echo "trained after $(( $(date +%s) - T0 )) s"

python3 - "$RUN" "$OUT" <<'EOF'
import sys, torch
from safetensors.torch import save_file
state = torch.load(f"{sys.argv[1]}/ckpt.pt", map_location="cpu", weights_only=True)
save_file({k: v.to(torch.bfloat16).contiguous() if v.is_floating_point() else v.contiguous()
           for k, v in state["target"].items()}, f"{sys.argv[2]}/target.safetensors")
print("step", state["step"])
EOF
cp $RUN/log.csv $RUN/config.yaml $OUT/ 2>/dev/null
tr '\r' '\n' < /tmp/train.log | tail -40 > $OUT/train.log

# GPU rows: batched imagination only (the env rows need the reward head, which does not travel)
$WG train consistency-export codec_dir=$PWD/.device/tokens out_dir=$RUN export_to=/tmp/student > /dev/null 2>&1 \
  || echo "export failed"
timeout $(( 560 - ($(date +%s) - T0) )) python3 -P benchmarks/consistency.py --student /tmp/student --device cuda \
  --no-env --candidates 1024 --min-seconds 3 --max-steps 50 --threads 4 > $OUT/bench.txt 2>&1
tail -8 $OUT/bench.txt
echo "done after $(( $(date +%s) - T0 )) s"; ls -la $OUT
