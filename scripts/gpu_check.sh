#!/usr/bin/env bash
# Every GPU check of issue 15 in one command, for a lent GPU machine (or, with --cpu, here).
#
#   bash scripts/gpu_check.sh                 # on the GPU machine: bf16, full sizes, < 8 min
#   bash scripts/gpu_check.sh --cpu           # the same steps on this CPU at small sizes
#   bash scripts/gpu_check.sh --dry-run       # print the steps only
#
# Before a device session, here:
#   bash scripts/gpu_wheels.sh                # .whl/: hydra, mlflow, ... (the image lacks them)
#   .venv/bin/hybridrec-train experiment=ncf_neumf_ml1m trainer.max_epochs=1   # data/prepared/
#   .venv/bin/hybridrec-train experiment=gru4rec_rsc15_xe trainer.max_epochs=1
# Then one device `run` (carry = the wheels and the prepared folders it names):
#   run(command="OUT=$OUT bash scripts/gpu_check.sh", timeout_s=540,
#       carry=[".whl", "data/prepared/ncf_ml1m-loo_sampled-<hash>", "data/prepared/rsc15_100k-session-<hash>"])
#
# Steps (each in its own time limit; a failed step is recorded and the next one runs):
#   1. environment: GPU, driver, torch, CUDA, bf16 support
#   2. the test suite's `gpu` tests (pytest -m gpu)
#   3. NeuMF-64 on NCF ML-1M, bf16: accuracy (HR@10 / NDCG@10) and samples/s (hybridrec-bench)
#   4. NeuMF-64 on 20M synthetic interactions, bf16, ~1M-sample batches: samples/s against
#      NVIDIA's published NCF figure (34.1M samples/s AMP, 22.6M TF32, one A100, ML-20M)
#   5. GRU4Rec and the session hybrid on RSC15 100k: samples/s
#   6. the scaling sweeps, MF: 0.5M / 1M / 2M interactions at 100k items; 10k / 1M items at 2M
#      (with the first sweep's 2M x 100k, three catalogue sizes). Each cell generates and
#      prepares its data inside the step's limit, which the 20M x 100k and 5M cells of the
#      first run (2026-12-04) did not fit; --time-limit stops a sweep a few seconds before
#      its step's limit, so the cells that finished are still reported.
# Results: $OUT (default bench/gpu_check/): gpu_check.log (everything), summary.md (one line
# per step and the benchmark tables), 4 bench + 2 sweep JSON files: 8 files, what the device
# tool brings back at most. Step limits add up to 480 s.
set -uo pipefail

MODE=gpu
DRY=0
for arg in "$@"; do
    case "$arg" in
        --cpu) MODE=cpu ;;
        --dry-run) DRY=1 ;;
        *) echo "gpu_check.sh: unknown argument $arg (expected --cpu, --dry-run)" >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/bench/gpu_check}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
SUMMARY="$OUT/summary.md"
: >"$LOG"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1

if [[ "$MODE" == gpu ]]; then
    PY="${PY:-python3}"
    if [[ -d .whl ]] && [[ "$DRY" == 0 ]]; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 || echo "wheel install failed" >>"$SUMMARY"
        export PYTHONPATH="/tmp/site:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
    else
        export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
    fi
    TRAINER=(trainer=gpu threads=4)
    ML1M_EPOCHS=8
    BIG=20000000
    BIG_ITEMS=100000
    SWEEP_A=(--interactions 5e5 1e6 2e6 --items 1e5)
    SWEEP_B=(--interactions 2e6 --items 1e4 1e6)
    SESSION_EPOCHS=3
else
    PY="${PY:-$ROOT/.venv/bin/python}"
    TRAINER=(trainer=cpu trainer.precision=bf16-mixed threads=1)
    ML1M_EPOCHS=2
    BIG=200000
    BIG_ITEMS=10000
    SWEEP_A=(--interactions 5e4 1e5 2e5 --items 1e4)
    SWEEP_B=(--interactions 1e5 --items 1e3 1e5)
    SESSION_EPOCHS=1
fi
export MLFLOW_TRACKING_URI="sqlite:///$ROOT/bench/gpu_check.db"
BENCH=("$PY" -m hybridrec.cli.bench)
QUIET=(callbacks.progress_bar=null trainer.enable_progress_bar=false)

step() {  # step NAME SECONDS COMMAND...: run, log, one summary line; never stops the script
    local name="$1" limit="$2"
    shift 2
    echo "### $name: $*" >>"$LOG"
    if [[ "$DRY" == 1 ]]; then
        echo "$name (limit ${limit}s): $*"
        return 0
    fi
    local start end rc
    start=$(date +%s)
    timeout "$limit" "$@" >>"$LOG" 2>&1
    rc=$?
    end=$(date +%s)
    echo "- $name: exit $rc in $((end - start)) s" >>"$SUMMARY"
    return 0
}

STARTED=$(date +%s)
step environment 15 bash -c "nvidia-smi || true; $PY -c 'import torch, platform; \
print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"python\", platform.python_version()); \
print(\"device\", torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"cpu\"); \
print(\"bf16\", torch.cuda.is_bf16_supported() if torch.cuda.is_available() else \"n/a\")'"

step gpu-tests 75 "$PY" -m pytest -m gpu -q -p no:cacheprovider tests

step neumf-ml1m 60 "${BENCH[@]}" --epochs "$ML1M_EPOCHS" --json "$OUT/neumf_ml1m.json" \
    experiment=ncf_neumf_ml1m datamodule.batch_size=4096 optimizer.lr=0.003 \
    "${TRAINER[@]}" "${QUIET[@]}" task_name=gpu_check_neumf_ml1m

step neumf-20m 120 "${BENCH[@]}" --epochs 2 --json "$OUT/neumf_20m.json" \
    data=synthetic_scale "data.source.n_interactions=$BIG" "data.source.n_items=$BIG_ITEMS" \
    "data.source.n_users=$((BIG / 50))" model=neumf model.gmf_dim=64 model.mlp_embedding_dim=128 \
    "model.hidden_dims=[128,64]" protocol=loo_sampled datamodule.batch_size=209715 \
    datamodule.eval_batch_size=16384 optimizer.lr=0.005 "${TRAINER[@]}" "${QUIET[@]}" \
    task_name=gpu_check_neumf_20m

# GRU4Rec at batch 32 is a chain of small kernels: 7.7-8.8 s per epoch on the H200, plus ~17 s
# of start; the former 40 s (and 55 s on a fresh machine) killed it after its figures were written.
step gru4rec-rsc15 70 "${BENCH[@]}" --epochs "$SESSION_EPOCHS" --json "$OUT/gru4rec_rsc15.json" \
    experiment=gru4rec_rsc15_xe "${TRAINER[@]}" "${QUIET[@]}" task_name=gpu_check_gru4rec

# The joint session hybrid (hybrid_rsc15's header: model.combine=joint protocol.val_days=0), the
# one-model hybrid this step times; the experiment's default is composed (GRU4Rec parts,
# val_days 1). val_days=0 also keeps it on the carried rsc15_100k-session folder of gru4rec_rsc15_xe.
step hybrid-rsc15 40 "${BENCH[@]}" --epochs "$SESSION_EPOCHS" --json "$OUT/hybrid_rsc15.json" \
    experiment=hybrid_rsc15 model.combine=joint protocol.val_days=0 "${TRAINER[@]}" "${QUIET[@]}" task_name=gpu_check_hybrid

step scaling-interactions 50 "$PY" scripts/bench_scaling.py "${SWEEP_A[@]}" --epochs 1 \
    --model mf --batch 65536 --eval-batch 16384 --time-limit 43 --out "$OUT/scaling_a.json" \
    --set "${TRAINER[@]}"

step scaling-items 50 "$PY" scripts/bench_scaling.py "${SWEEP_B[@]}" --epochs 1 \
    --model mf --batch 65536 --eval-batch 16384 --time-limit 43 --out "$OUT/scaling_b.json" \
    --set "${TRAINER[@]}"

if [[ "$DRY" == 0 ]]; then
    "$PY" - "$OUT" >>"$SUMMARY" 2>>"$LOG" <<'PYEOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
print("\n| run | device | precision | epoch s | samples/s | val s | test s | GFLOP/s | share of peak | peak device MiB | quality |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for name in ("neumf_ml1m", "neumf_20m", "gru4rec_rsc15", "hybrid_rsc15"):
    path = out / f"{name}.json"
    if not path.is_file():
        print(f"| {name} | (no result) |")
        continue
    r = json.loads(path.read_text())
    share = r.get("share_of_peak")
    quality = ", ".join(f"{k} {v:.4f}" for k, v in sorted(r["quality"].items()) if k.startswith("test/"))
    fmt = lambda v, f: "-" if v is None else format(v, f)
    print(f"| {name} | {r['device']} | {r['precision']} | {fmt(r['train_epoch_s'], '.2f')} | "
          f"{fmt(r['train_samples_per_s'], ',.0f')} | {fmt(r['val_epoch_s'], '.2f')} | "
          f"{fmt(r['test_s'], '.2f')} | {fmt(r['achieved_gflops'], ',.0f')} | "
          f"{'-' if share is None else f'{100 * share:.1f}%'} | {fmt(r['peak_device_mb'], ',.0f')} | {quality} |")
big = out / "neumf_20m.json"
if big.is_file():
    rate = json.loads(big.read_text())["train_samples_per_s"]
    print(f"\nNeuMF 20M: {rate / 1e6:.1f}M samples/s; NVIDIA's NCF on one A100: 34.1M (AMP), 22.6M (TF32): "
          f"{rate / 34.1e6:.2f}x the AMP figure")
PYEOF
    grep -A 12 '^mf, ' "$LOG" | grep '^|' >>"$SUMMARY" || true
    echo "total: $(($(date +%s) - STARTED)) s (step limits add up to 480 s)" >>"$SUMMARY"
    cat "$SUMMARY"
fi
