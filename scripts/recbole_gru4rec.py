#!/usr/bin/env python
"""RecBole 1.2.1 GRU4Rec on Amazon Beauty: per-epoch training time, then test HR@10 / NDCG@10.

    bash scripts/setup_recbole.sh      # once
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 OMP_NUM_THREADS=1 .recbole-venv/bin/python \\
        scripts/recbole_gru4rec.py --epochs 2 --threads 1 --out bench/recbole_gru4rec.json

Runs INSIDE the RecBole venv (imports only RecBole/torch/numpy, never hybridrec); same pattern
as scripts/recbole_ncf.py, see docs/recbole.md.

What it does
------------
1. Converts ``--data`` (``Beauty.txt``: ``user item_1 ... item_n`` per line, chronological)
   into one RecBole atomic file ``bench/recbole/<dataset>/<dataset>.inter`` (gitignored) with
   ``user_id:token item_id:token timestamp:float``, timestamp = position in the user's history.
2. Builds Config -> dataset -> dataloaders -> ``GRU4Rec`` -> ``Trainer`` (timed together as
   ``setup_seconds``) with RecBole's leave-one-out split, ``eval_args: {split: {LS:
   valid_and_test}, order: TO, mode: full, group_by: user}``: per user the last item is the test
   target, the one before it the validation target, the rest is training, expanded by RecBole
   into one training sample per prefix (next-item targets, at most ``MAX_ITEM_LIST_LENGTH=50``
   items of history). ``loss_type: CE`` (softmax over all items), ``train_neg_sample_args:
   None``, ``train_batch_size: 256``, Adam lr 0.001, ``embedding_size: 64`` and
   ``hidden_size: 64`` (NB: RecBole's own GRU4Rec.yaml default is ``hidden_size: 128``, about
   1.5x slower per epoch here; ``--hidden-size 128`` gives it), RecBole's defaults otherwise
   (``num_layers: 1``, ``dropout_prob: 0.3``).
3. Loops ``--epochs`` itself: ``trainer._train_epoch(train_data, epoch)`` timed with
   ``time.perf_counter()`` (batch assembly included; no evaluation inside).
4. After the last epoch, evaluates on the test split (the input sequence is the history minus
   its last item, i.e. training items + the validation item), ranking against all items
   (RecBole's ``[PAD]`` excluded, seen items NOT excluded), two ways: RecBole's own evaluator
   (``trainer.evaluate``; ``hit@10``/``ndcg@10``, ties broken by ``torch.topk``), and the
   conservative rule used by our other scripts (rank = number of items scoring >= the target;
   HR@10 = rank <= 10; NDCG@10 = 1/log2(rank + 1)). These are after ``--epochs`` epochs, not a
   tuned or converged model.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data",
        default="../shared/datasets/s3rec_amazon_yelp/Beauty.txt",
        help="relative paths are resolved against the repo root",
    )
    p.add_argument("--work-dir", default="bench/recbole", help="atomic files, logs, saved/")
    p.add_argument("--dataset-name", default="beauty")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256, help="RecBole train_batch_size")
    p.add_argument("--eval-batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--embedding-size", type=int, default=64, help="RecBole default 64")
    p.add_argument(
        "--hidden-size", type=int, default=64, help="GRU hidden size (RecBole's yaml: 128)"
    )
    p.add_argument("--max-len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH (default 50)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", default=None, help="write the result JSON here too")
    p.add_argument("--show-progress", action="store_true")
    return p.parse_args(argv)


def resolve(path: str) -> Path:
    pth = Path(path)
    return pth if pth.is_absolute() else (REPO_ROOT / pth).resolve()


def write_atomic(data: Path, ds_dir: Path, name: str) -> dict:
    """One ``.inter`` file: user, item, position as timestamp."""
    ds_dir.mkdir(parents=True, exist_ok=True)
    path = ds_dir / f"{name}.inter"
    tmp = path.with_suffix(".inter.tmp")
    users = rows = 0
    with open(data) as src, open(tmp, "w") as dst:
        dst.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for line in src:
            parts = line.split()
            if len(parts) < 2:
                continue
            users += 1
            for pos, item in enumerate(parts[1:]):
                dst.write(f"{parts[0]}\t{item}\t{pos}\n")
                rows += 1
    os.replace(tmp, path)
    return {"users": users, "interactions": rows, "path": str(path)}


def conservative_eval(trainer, test_data, k: int) -> dict:
    """Rank the target against all items: rank = #items scoring >= it (ties count against)."""
    import numpy as np
    import torch

    trainer.model.eval()
    trainer.tot_item_num = test_data._dataset.item_num
    ranks = []
    with torch.no_grad():
        for batched in test_data:
            _, scores, pos_u, pos_i = trainer._full_sort_batch_eval(batched)  # [PAD] = -inf
            target = scores[pos_u, pos_i]
            ranks.append((scores[pos_u] >= target[:, None]).sum(dim=1).cpu().numpy())
    rank = np.concatenate(ranks)
    hit = rank <= k
    ndcg = np.where(hit, 1.0 / np.log2(np.minimum(rank, k) + 1.0), 0.0)
    return {f"hr{k}": float(hit.mean()), f"ndcg{k}": float(ndcg.mean()), "users": len(rank)}


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import importlib.metadata as md

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import GRU4Rec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    data = resolve(args.data)
    work_dir = resolve(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_path = resolve(args.out) if args.out else None  # resolve before chdir
    os.chdir(work_dir)  # RecBole writes ./log, ./log_tensorboard, ./saved

    t0 = time.perf_counter()
    counts = write_atomic(data, work_dir / args.dataset_name, args.dataset_name)
    convert_seconds = time.perf_counter() - t0

    config_dict = {
        "data_path": str(work_dir),
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "gpu_id": "",
        "use_gpu": False,
        "seed": args.seed,
        "reproducibility": True,
        "worker": 0,
        "shuffle": True,
        "epochs": args.epochs,
        "train_batch_size": args.batch_size,
        "eval_batch_size": args.eval_batch_size,
        "learner": "adam",
        "learning_rate": args.lr,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "embedding_size": args.embedding_size,
        "hidden_size": args.hidden_size,
        "eval_step": 10**9,  # RecBole never evaluates by itself; we evaluate once at the end
        "stopping_step": 10**9,
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "mode": "full",
            "group_by": "user",
        },
        "metrics": ["Hit", "NDCG"],
        "topk": [args.k],
        "valid_metric": f"NDCG@{args.k}",
        "show_progress": args.show_progress,
        "state": "WARNING",
        "checkpoint_dir": str(work_dir / "saved"),
    }

    t_setup = time.perf_counter()
    config = Config(model="GRU4Rec", dataset=args.dataset_name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = GRU4Rec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    setup_seconds = time.perf_counter() - t_setup

    n_batches = len(train_data)
    shape = {
        "users": int(dataset.user_num - 1),  # minus [PAD]
        "items": int(dataset.item_num - 1),
        "train_samples": len(train_data._dataset),
        "test_samples": len(test_data._dataset),
        "batches_per_epoch": n_batches,
        "params": sum(p.numel() for p in model.parameters()),
    }
    print(f"[recbole_gru4rec] setup {setup_seconds:.1f}s; {shape}", file=sys.stderr, flush=True)

    per_epoch = []
    for epoch in range(args.epochs):
        load_before = os.getloadavg()[0]
        t, c = time.perf_counter(), time.process_time()
        total_loss = trainer._train_epoch(train_data, epoch, show_progress=args.show_progress)
        train_s = time.perf_counter() - t
        rec = {
            "epoch": epoch,
            "train_seconds": round(train_s, 3),
            "loss": float(total_loss) / n_batches,  # mean CE over batches
            "train_cpu_seconds": round(time.process_time() - c, 3),
            "loadavg1_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        per_epoch.append(rec)
        print(f"[recbole_gru4rec] {json.dumps(rec)}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    own = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    cons = conservative_eval(trainer, test_data, args.k)
    eval_seconds = time.perf_counter() - t

    times = [r["train_seconds"] for r in per_epoch]
    later = times[1:] or times
    result = {
        "peer": "recbole",
        "model": "GRU4Rec",
        "per_epoch": per_epoch,
        "first_epoch_seconds": times[0],
        "median_epoch_seconds": statistics.median(later),
        "mean_epoch_seconds": statistics.mean(later),
        "min_epoch_seconds": min(later),
        "setup_seconds": round(setup_seconds, 3),
        "convert_seconds": round(convert_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "epochs_trained": args.epochs,
        f"hr{args.k}": cons[f"hr{args.k}"],
        f"ndcg{args.k}": cons[f"ndcg{args.k}"],
        "metrics_note": f"test split after {args.epochs} epochs; conservative ties",
        "recbole_metrics": {key: float(v) for key, v in own.items()},
        "shape": shape,
        "config": {
            key: config_dict[key]
            for key in (
                "MAX_ITEM_LIST_LENGTH",
                "train_batch_size",
                "learning_rate",
                "loss_type",
                "train_neg_sample_args",
                "embedding_size",
                "hidden_size",
                "eval_args",
                "seed",
            )
        }
        | {"num_layers": config["num_layers"], "dropout_prob": config["dropout_prob"]},
        "data": {"path": str(data), **counts},
        "versions": {
            "recbole": md.version("recbole"),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "device": str(config["device"]),
        "host": {"cpus": os.cpu_count(), "machine": platform.machine()},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
