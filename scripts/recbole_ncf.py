#!/usr/bin/env python
"""RecBole 1.2.1 NeuMF on the NCF MovieLens-1M split: the peer side of the benchmark.

Runs INSIDE the RecBole venv made by ``scripts/setup_recbole.sh`` (it imports
only RecBole/torch/numpy, never hybridrec). Launch with
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``; see docs/recbole.md.

What it does
------------
1. Converts the NCF files in ``--data-dir`` into RecBole atomic files under
   ``bench/recbole/<dataset>/`` (gitignored) with ``benchmark_filename``:

   - ``<ds>.train.inter``: ALL 994,169 NCF training pairs;
   - ``<ds>.valid.inter`` / ``<ds>.test.inter``: the 6,040 NCF test pairs.

   With ``benchmark_filename`` RecBole skips its own filtering/splitting, so it
   trains on exactly the NCF training pairs. The user/item ids are kept as
   ``token`` fields (the NCF 0-based ids as strings); RecBole remaps them to its
   own 1-based internal ids (0 is [PAD]) and ``dataset.token2id`` maps back.
2. Builds config/dataset/dataloaders/model/trainer with the RecBole APIs (timed
   as ``setup_seconds``), then loops the epochs itself:
   ``trainer._train_epoch(train_data, epoch)`` is timed with
   ``time.perf_counter()`` (negative sampling happens inside the dataloader's
   collate_fn, so it is part of that time; evaluation is not).
3. After each epoch, evaluates on the OFFICIAL NCF negatives (test item + its
   99 negatives per user) with ``model.predict`` under ``torch.no_grad()``;
   HR@10 / NDCG@10 with the conservative tie rule: rank = number of negatives
   scoring >= the positive; hit = rank < 10; NDCG = 1 / log2(rank + 2).

Batch semantics (checked in recbole/data/dataloader/general_dataloader.py,
``TrainDataLoader._init_batch_size_and_step``): with negative sampling on,
``train_batch_size`` counts ROWS INCLUDING NEGATIVES.  For pointwise models
``times = 1 + sample_num``; each batch takes ``train_batch_size // times``
positives and expands them to ``(train_batch_size // times) * times`` rows.
With 4096 and 4 negatives: 819 positives -> 4095 rows per batch, 1,214 batches
per epoch.  A side that wants the same work per step must use ~4095 rows
(819 positives x 5), not 4096 positives.  The actual numbers are written to the
output JSON under ``batching``.

Architecture (64 predictive factors, as in the NCF paper, Sec. 4.1: "if the
predictive factors is 8, the neural CF layers are 32 -> 16 -> 8 and the
embedding size is 16"): GMF embeddings 64-d (``mf_embedding_size=64``); MLP
embeddings 128-d per user/item (``mlp_embedding_size=128``), tower
256 (concat) -> 128 -> 64 (RecBole ``mlp_hidden_size=[128, 64]``; RecBole adds
the 2*128 input itself); prediction layer on concat(64 GMF, 64 MLP) = 128 -> 1.
Dropout defaults to 0.0 like NCF (RecBole's own default is 0.1).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data-dir",
        default="../shared/datasets/ncf_ml1m",
        help="NCF files; relative paths are resolved against the repo root",
    )
    p.add_argument(
        "--work-dir",
        default="bench/recbole",
        help="where the atomic files, logs and RecBole's 'saved/' go (repo-root relative)",
    )
    p.add_argument("--dataset-name", default="ml1m-ncf")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--batch-size",
        type=int,
        default=4096,
        help="RecBole train_batch_size: rows per batch INCLUDING negatives",
    )
    p.add_argument("--neg", type=int, default=4, help="uniform negatives per positive")
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument(
        "--embedding-size",
        type=int,
        default=64,
        help="GMF embedding size = predictive factors (RecBole mf_embedding_size)",
    )
    p.add_argument(
        "--mlp-embedding-size",
        type=int,
        default=128,
        help="MLP embedding size per user/item (RecBole mlp_embedding_size)",
    )
    p.add_argument(
        "--mlp-hidden",
        default="128,64",
        help="MLP hidden sizes after the 2*mlp_embedding_size input (RecBole mlp_hidden_size)",
    )
    p.add_argument(
        "--dropout", type=float, default=0.0, help="MLP dropout (RecBole default 0.1, NCF 0)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads; default: torch's"
    )
    p.add_argument(
        "--eval-batch-users",
        type=int,
        default=1024,
        help="users per predict() call in the NCF evaluation (x100 rows)",
    )
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--out", default=None, help="write the result JSON here too")
    p.add_argument("--show-progress", action="store_true")
    return p.parse_args(argv)


def resolve(path: str) -> Path:
    pth = Path(path)
    return pth if pth.is_absolute() else (REPO_ROOT / pth).resolve()


# --------------------------------------------------------------------------- data
def read_ncf(data_dir: Path):
    train = []
    with open(data_dir / "ml-1m.train.pairs") as f:
        for line in f:
            if line.strip():
                u, i = line.split("\t")[:2]
                train.append((int(u), int(i)))
    test = []
    with open(data_dir / "ml-1m.test.rating") as f:
        for line in f:
            if line.strip():
                parts = line.split("\t")
                test.append((int(parts[0]), int(parts[1])))
    negatives = {}
    with open(data_dir / "ml-1m.test.negative") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if not parts[0]:
                continue
            u, i = parts[0].strip("()").split(",")
            negatives[(int(u), int(i))] = [int(x) for x in parts[1:] if x]
    return train, test, negatives


def write_atomic(ds_dir: Path, name: str, train, test) -> dict:
    """RecBole atomic .inter files for benchmark_filename [train, valid, test]."""
    ds_dir.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id:token\n"
    files = {"train": train, "valid": test, "test": test}
    for suffix, rows in files.items():
        path = ds_dir / f"{name}.{suffix}.inter"
        tmp = path.with_suffix(".inter.tmp")
        with open(tmp, "w") as f:
            f.write(header)
            f.writelines(f"{u}\t{i}\n" for u, i in rows)
        os.replace(tmp, path)
    return {k: len(v) for k, v in files.items()}


# --------------------------------------------------------------------------- eval
def build_eval_arrays(dataset, test, negatives, uid_field, iid_field):
    import numpy as np

    users, items = [], []
    for u, i in test:
        negs = negatives[(u, i)]
        if len(negs) != 99:
            raise ValueError(f"user {u}: {len(negs)} negatives, expected 99")
        users.append(str(u))
        items.append([str(i)] + [str(x) for x in negs])
    uid = np.asarray(dataset.token2id(uid_field, users), dtype=np.int64)
    iid = np.asarray(
        dataset.token2id(iid_field, [t for row in items for t in row]), dtype=np.int64
    ).reshape(len(users), 100)
    return uid, iid  # column 0 of iid is the held-out positive


def evaluate_ncf(model, uid, iid, uid_field, iid_field, device, batch_users, k=10):
    import numpy as np
    import torch
    from recbole.data.interaction import Interaction

    model.eval()
    n, c = iid.shape
    scores = np.empty((n, c), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, n, batch_users):
            e = min(n, s + batch_users)
            u = torch.from_numpy(np.repeat(uid[s:e], c))
            it = torch.from_numpy(iid[s:e].reshape(-1))
            inter = Interaction({uid_field: u, iid_field: it}).to(device)
            scores[s:e] = model.predict(inter).float().cpu().numpy().reshape(e - s, c)
    pos = scores[:, :1]
    rank = (scores[:, 1:] >= pos).sum(axis=1)  # conservative: ties count against the positive
    hit = rank < k
    ndcg = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
    return float(hit.mean()), float(ndcg.mean())


# --------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

    import importlib.metadata as md

    import numpy as np
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import NeuMF
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    data_dir = resolve(args.data_dir)
    work_dir = resolve(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_path = resolve(args.out) if args.out else None  # resolve before chdir
    # RecBole writes ./log, ./log_tensorboard and ./saved relative to the cwd.
    os.chdir(work_dir)

    t0 = time.perf_counter()
    train, test, negatives = read_ncf(data_dir)
    counts = write_atomic(work_dir / args.dataset_name, args.dataset_name, train, test)
    convert_seconds = time.perf_counter() - t0

    mlp_hidden = [int(x) for x in args.mlp_hidden.split(",") if x.strip()]
    config_dict = {
        "data_path": str(work_dir),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "gpu_id": "",  # CPU only
        "use_gpu": False,
        "seed": args.seed,
        "reproducibility": True,
        "worker": 0,
        "shuffle": True,
        "epochs": args.epochs,
        "train_batch_size": args.batch_size,
        "learner": "adam",
        "learning_rate": args.lr,
        "weight_decay": 0.0,
        "train_neg_sample_args": {
            "distribution": "uniform",
            "sample_num": args.neg,
            "alpha": 1.0,
            "dynamic": False,
            "candidate_num": 0,
        },
        "eval_step": 10**9,  # RecBole's own evaluation never runs (we loop ourselves anyway)
        "stopping_step": 10**9,
        "eval_args": {
            "split": {"RS": [0.8, 0.1, 0.1]},
            "group_by": "user",
            "order": "RO",
            "mode": "full",
        },  # split ignored with benchmark_filename
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "mf_embedding_size": args.embedding_size,
        "mlp_embedding_size": args.mlp_embedding_size,
        "mlp_hidden_size": mlp_hidden,
        "dropout_prob": args.dropout,
        "mf_train": True,
        "mlp_train": True,
        "use_pretrain": False,
        "show_progress": args.show_progress,
        "state": "WARNING",
        "checkpoint_dir": str(work_dir / "saved"),
    }

    t_setup = time.perf_counter()
    config = Config(model="NeuMF", dataset=args.dataset_name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = NeuMF(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    setup_seconds = time.perf_counter() - t_setup
    # The dataset/dataloader setup should leave the training set untouched.
    assert len(train_data._dataset) == len(train), (len(train_data._dataset), len(train))

    uid_field, iid_field = dataset.uid_field, dataset.iid_field
    t_ev = time.perf_counter()
    uid, iid = build_eval_arrays(dataset, test, negatives, uid_field, iid_field)
    eval_prep_seconds = time.perf_counter() - t_ev

    n_batches = len(train_data)
    batching = {
        "train_batch_size": config["train_batch_size"],
        "times_rows_per_positive": train_data.times,
        "positives_per_batch": train_data.step,
        "rows_per_batch": train_data._batch_size,
        "batches_per_epoch": n_batches,
        "train_positives": len(train_data._dataset),
        "rows_per_epoch": len(train_data._dataset) * train_data.times,
    }
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"[recbole_ncf] setup {setup_seconds:.1f}s; batching {batching}; params {n_params}",
        file=sys.stderr,
        flush=True,
    )

    per_epoch = []
    for epoch in range(args.epochs):
        load_before = os.getloadavg()[0]
        t, c = time.perf_counter(), time.process_time()
        total_loss = trainer._train_epoch(train_data, epoch, show_progress=args.show_progress)
        train_s = time.perf_counter() - t
        train_cpu = (
            time.process_time() - c
        )  # all threads of this process; > wall when threads overlap
        load_after = os.getloadavg()[0]
        t = time.perf_counter()
        hr, ndcg = evaluate_ncf(
            model, uid, iid, uid_field, iid_field, config["device"], args.eval_batch_users
        )
        eval_s = time.perf_counter() - t
        rec = {
            "epoch": epoch,
            "train_seconds": round(train_s, 3),
            "loss": float(total_loss) / n_batches,  # mean BCE over batches
            "hr10": round(hr, 4),
            "ndcg10": round(ndcg, 4),
            "eval_seconds": round(eval_s, 3),
            # contention diagnostics: this process's CPU seconds and the host's 1-min load
            "train_cpu_seconds": round(train_cpu, 3),
            "loadavg1_before_after": [round(load_before, 2), round(load_after, 2)],
        }
        per_epoch.append(rec)
        print(f"[recbole_ncf] {json.dumps(rec)}", file=sys.stderr, flush=True)

    train_times = [r["train_seconds"] for r in per_epoch]
    best = max(per_epoch, key=lambda r: (r["hr10"], r["ndcg10"])) if per_epoch else None
    result = {
        "peer": "recbole",
        "model": "NeuMF",
        "per_epoch": per_epoch,
        "first_epoch_seconds": train_times[0] if train_times else None,
        "mean_epoch_seconds": (
            sum(train_times[1:]) / len(train_times[1:])
            if len(train_times) > 1
            else (train_times[0] if train_times else None)
        ),
        "mean_epoch_seconds_all": sum(train_times) / len(train_times) if train_times else None,
        # robust to other load on a shared host: median / min over epochs after the first
        "median_epoch_seconds": (
            float(np.median(train_times[1:]))
            if len(train_times) > 1
            else (train_times[0] if train_times else None)
        ),
        "min_epoch_seconds": min(train_times[1:] or train_times) if train_times else None,
        "mean_eval_seconds": (
            sum(r["eval_seconds"] for r in per_epoch) / len(per_epoch) if per_epoch else None
        ),
        "best_epoch": best["epoch"] if best else None,  # 0-based; picked by HR@10, then NDCG@10
        "best_hr10": best["hr10"] if best else None,
        "best_ndcg10": best["ndcg10"] if best else None,
        "setup_seconds": round(setup_seconds, 3),
        "convert_seconds": round(convert_seconds, 3),
        "eval_prep_seconds": round(eval_prep_seconds, 3),
        "batching": batching,
        "n_users": int(dataset.user_num - 1),  # minus [PAD]
        "n_items": int(dataset.item_num - 1),
        "n_params": n_params,
        "eval": {
            "protocol": "NCF leave-one-out, official 99 negatives",
            "k": 10,
            "ties": "conservative (negatives scoring >= positive rank above it)",
            "users": int(len(uid)),
        },
        "config": {
            "epochs": args.epochs,
            "train_batch_size": args.batch_size,
            "neg": args.neg,
            "lr": args.lr,
            "learner": "adam",
            "weight_decay": 0.0,
            "mf_embedding_size": args.embedding_size,
            "mlp_embedding_size": args.mlp_embedding_size,
            "mlp_hidden_size": mlp_hidden,
            "dropout_prob": args.dropout,
            "seed": args.seed,
            "reproducibility": True,
            "shuffle": True,
            "worker": 0,
            "data_dir": str(data_dir),
            "atomic_dir": str(work_dir / args.dataset_name),
            "atomic_rows": counts,
        },
        "versions": {
            "recbole": md.version("recbole"),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
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
