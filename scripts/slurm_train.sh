#!/usr/bin/env bash
# Two-node training over WebDataset shards (README, "Sharded data (many nodes)").
#
#   SHARDS='/data/shards/vimeo/train-{000000..000179}.tar' sbatch scripts/slurm_train.sh
#   SHARDS='...' GPUS_PER_NODE=4 sbatch --gpus-per-node=4 scripts/slurm_train.sh --model_name IFRNet_S --batch_size 8
#
# Extra arguments go to the trainer (`python -m ifrvp_core.train`, the same engine as `ifrvp train`).
# srun starts one torchrun per node; every torchrun joins the c10d rendezvous on the first node,
# which starts one training process per GPU. The shards pattern must name the packed shards
# (`data_prep pack` prints it); each rank then reads its own shards, so the pack needs at least
# nodes x GPUS_PER_NODE x WORKERS shards (2 x 8 x 4 = 64 here; the trainer says so otherwise).
#
# Time limit and preemption: Slurm sends SIGTERM 300 s before the limit (--signal); the trainer
# finishes its step, saves latest.pt and exits 143. Submit the script again (or add --requeue):
# `--resume auto` continues at the exact iteration in the same run folder.
#
#SBATCH --job-name=ifrvp-shards
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=72:00:00
#SBATCH --signal=TERM@300
#SBATCH --output=%x-%j.out

set -euo pipefail

SHARDS=${SHARDS:?set SHARDS to the pattern data_prep pack printed, e.g. /data/shards/vimeo/train-\{000000..000179\}.tar}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
MASTER_PORT=${MASTER_PORT:-29500}
LOG_PATH=${LOG_PATH:-checkpoint}
RUN_NAME=${RUN_NAME:-ifrvp_shards}
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_ADDR MASTER_PORT
WORKERS=${WORKERS:-4}  # DataLoader workers per process (each reads its own shards)

echo "nodes: $SLURM_JOB_NODELIST; rendezvous $MASTER_ADDR:$MASTER_PORT; shards $SHARDS"

srun --kill-on-bad-exit=1 torchrun \
    --nnodes "$SLURM_NNODES" \
    --nproc_per_node "$GPUS_PER_NODE" \
    --rdzv_id "$SLURM_JOB_ID" \
    --rdzv_backend c10d \
    --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" \
    -m ifrvp_core.train \
    --dataset shards \
    --data_root "$SHARDS" \
    --num_workers "$WORKERS" \
    --amp bf16 \
    --log_path "$LOG_PATH" \
    --run_name "$RUN_NAME" \
    --save_interval_steps 1000 \
    --resume auto \
    "$@"
