#!/usr/bin/env python
"""RecBole 1.2.1 SASRec on Amazon Scientific (UniSRec files): epoch times, early stopping, test.

    bash scripts/setup_recbole.sh      # once
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 OMP_NUM_THREADS=1 .recbole-venv/bin/python \\
        scripts/recbole_sasrec.py --epochs 200 --patience 10 --threads 1 \\
        --out bench/recbole_sasrec.json

Runs INSIDE the RecBole venv (imports only RecBole/torch/numpy, never hybridrec); same pattern
as scripts/recbole_gru4rec.py, see docs/recbole.md.

What it does
------------
1. Links (symlinks; nothing is copied) the three UniSRec files ``Scientific.{train,valid,test}
   .inter`` of ``--data-dir`` into ``<--work-dir>/<dataset>/`` (``bench/recbole`` is
   gitignored), named as RecBole's ``benchmark_filename: [train, valid, test]`` expects. They are
   RecBole atomic files ``user_id:token  item_id_list:token_seq  item_id:token``, one row per
   (history, next item) sample: train holds every prefix of each user's sequence minus its last
   two items (34,101 rows), valid one row per user whose target is the second-to-last item and
   test one row per user whose target is the last item (8,442 each). Histories are at most 50
   items, already cut by UniSRec's preprocessing.
2. Builds Config -> dataset -> dataloaders -> ``SASRec`` -> ``Trainer`` (timed together as
   ``setup_seconds``) with the config UniSRec's paper uses for its SASRec baseline:
   ``hidden_size 300``, ``inner_size 256``, ``n_layers 2``, ``n_heads 2``, dropout 0.5 / 0.5,
   gelu, ``layer_norm_eps 1e-12``, ``initializer_range 0.02``, ``loss_type: CE`` (softmax over
   all items), ``train_neg_sample_args: None``, ``MAX_ITEM_LIST_LENGTH 50``,
   ``train_batch_size 2048`` (prefixes), Adam lr 0.001, ``load_col: {inter: [user_id,
   item_id_list, item_id]}``, ``alias_of_item_id: [item_id_list]`` (one token remap for both
   fields), ``eval_args`` mode full, metrics Recall / NDCG @ [10, 50].
   What RecBole does with benchmark files (SequentialDataset, 1.2.1): it loads the three files,
   concatenates them, remaps tokens, and because ``benchmark_filename`` is set it skips its own
   data filtering, its prefix augmentation and its split (``eval_args.split`` / ``order`` are
   ignored); ``build()`` just cuts the concatenated rows back into the three files. Each row's
   ``item_id_list`` is therefore used verbatim as the model input, so a TEST row's history is
   exactly what the test file holds: the user's training items + the validation item, i.e. the
   full history before the test target (this script checks that against the valid rows and
   reports it as ``history_check``). Full-sort evaluation of a sequential model scores the
   target against all items; only ``[PAD]`` is masked, items already in the history are NOT
   excluded (RecBole's FullSortEvalDataLoader skips history masking for sequential models).
3. Loops epochs itself: ``trainer._train_epoch(train_data, epoch)`` timed with
   ``time.perf_counter()`` (batch assembly included), then validation with RecBole's evaluator
   (timed separately, not included in the epoch time). Keeps a copy of the state dict with the
   best valid NDCG@10 (strict improvement, as RecBole's early stopping; RecBole rounds its
   metrics to 4 decimals, ``metric_decimal_place``, so a gain below that counts as none), stops
   after ``--patience`` epochs without improvement or at ``--epochs``.
4. Loads the best state dict and evaluates the test split two ways: RecBole's own evaluator
   (``trainer.evaluate``; recall/ndcg @10/@50 rounded to 4 decimals, ties broken by
   ``torch.topk``), and the conservative rule used by our other scripts (rank = number of items
   scoring >= the target; Recall@K = rank <= K; NDCG@K = 1/log2(rank + 1)).

Reference measured earlier on this kind of machine (RecBole 1.2.1, same config, converged):
test R@10 0.1059 / N@10 0.0548, about 30 s per epoch (thread count not recorded). With
``--threads 1`` one epoch here takes about 480-510 s (each of the 34,101 prefixes runs the
Transformer over 50 padded positions) plus about 29 s of validation, so a full early-stopped run
takes hours; budget for it or raise ``--threads``.
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
PARTS = ("train", "valid", "test")
KS = (10, 50)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data-dir",
        default="../shared/datasets/amazon_scientific_unisrec",
        help="folder with <name>.{train,valid,test}.inter; relative to the repo root",
    )
    p.add_argument("--work-dir", default="bench/recbole", help="linked files, logs, saved/")
    p.add_argument("--dataset-name", default="Scientific", help="file prefix in --data-dir")
    p.add_argument("--epochs", type=int, default=200, help="maximum epochs")
    p.add_argument("--patience", type=int, default=10, help="epochs without a better valid NDCG@10")
    p.add_argument("--batch-size", type=int, default=2048, help="RecBole train_batch_size")
    p.add_argument("--eval-batch-size", type=int, default=2048)
    p.add_argument("--lr", type=float, default=0.001)
    p.add_argument("--hidden-size", type=int, default=300, help="RecBole's yaml: 64")
    p.add_argument("--max-len", type=int, default=50, help="MAX_ITEM_LIST_LENGTH (default 50)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--out", default=None, help="write the result JSON here too")
    p.add_argument("--show-progress", action="store_true")
    return p.parse_args(argv)


def resolve(path: str) -> Path:
    pth = Path(path)
    return pth if pth.is_absolute() else (REPO_ROOT / pth).resolve()


def link_files(data_dir: Path, ds_dir: Path, name: str) -> dict:
    """Symlink ``<name>.<part>.inter`` of ``data_dir`` into ``ds_dir`` (the licence forbids
    copies inside the repo; the work dir is gitignored anyway)."""
    ds_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for part in PARTS:
        src = data_dir / f"{name}.{part}.inter"
        if not src.is_file():
            raise SystemExit(f"{src} missing")
        dst = ds_dir / f"{name}.{part}.inter"
        if dst.is_symlink() or dst.exists():
            if dst.resolve() != src.resolve():
                dst.unlink()
        if not dst.exists():
            dst.symlink_to(src)
        with open(src) as f:
            rows[part] = sum(1 for _ in f) - 1  # header
    return {"rows": rows, "dir": str(ds_dir)}


def history_check(valid_ds, test_ds, max_len: int) -> dict:
    """Is each test history = the user's valid history + the valid target (last ``max_len``)?"""
    uid, iid = valid_ds.uid_field, valid_ds.iid_field
    seq, length = valid_ds.item_id_list_field, valid_ds.item_list_length_field

    def rows(ds):
        feat = ds.inter_feat
        for u, s, n, t in zip(
            feat[uid].tolist(), feat[seq].tolist(), feat[length].tolist(), feat[iid].tolist()
        ):
            yield u, s[:n], t

    expected = {u: (s + [t])[-max_len:] for u, s, t in rows(valid_ds)}
    test_lens = []
    mismatched = 0
    for u, s, _ in rows(test_ds):
        test_lens.append(len(s))
        mismatched += expected.get(u) != s
    return {
        "test_rows": len(test_lens),
        "test_history_is_valid_history_plus_valid_item": mismatched == 0,
        "mismatched_users": mismatched,
        "mean_test_history_len": statistics.mean(test_lens),
        "max_test_history_len": max(test_lens),
    }


def conservative_eval(trainer, data, ks=KS) -> dict:
    """Rank the target against all items: rank = #items scoring >= it (ties count against)."""
    import numpy as np
    import torch

    trainer.model.eval()
    trainer.tot_item_num = data._dataset.item_num
    ranks = []
    with torch.no_grad():
        for batched in data:
            _, scores, pos_u, pos_i = trainer._full_sort_batch_eval(batched)  # [PAD] = -inf
            target = scores[pos_u, pos_i]
            ranks.append((scores[pos_u] >= target[:, None]).sum(dim=1).cpu().numpy())
    rank = np.concatenate(ranks)
    out: dict = {}
    for k in ks:
        hit = rank <= k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(rank + 1.0), 0.0).mean())
    out["users"] = len(rank)
    return out


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
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_logger, init_seed

    data_dir = resolve(args.data_dir)
    work_dir = resolve(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    out_path = resolve(args.out) if args.out else None  # resolve before chdir
    os.chdir(work_dir)  # RecBole writes ./log, ./log_tensorboard, ./saved

    files = link_files(data_dir, work_dir / args.dataset_name, args.dataset_name)

    config_dict = {
        "data_path": str(work_dir),
        "benchmark_filename": list(PARTS),
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
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
        "weight_decay": 0.0,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "hidden_size": args.hidden_size,
        "inner_size": 256,
        "n_layers": 2,
        "n_heads": 2,
        "hidden_dropout_prob": 0.5,
        "attn_dropout_prob": 0.5,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "eval_step": 1,
        "stopping_step": args.patience,
        "eval_args": {
            "split": {"LS": "valid_and_test"},  # ignored with benchmark files
            "order": "TO",
            "mode": "full",
            "group_by": "user",
        },
        "metrics": ["Recall", "NDCG"],
        "topk": list(KS),
        "valid_metric": "NDCG@10",
        "show_progress": args.show_progress,
        "state": "WARNING",
        "checkpoint_dir": str(work_dir / "saved"),
    }

    t_setup = time.perf_counter()
    config = Config(model="SASRec", dataset=args.dataset_name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logging.getLogger().setLevel(logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    setup_seconds = time.perf_counter() - t_setup

    check = history_check(valid_data._dataset, test_data._dataset, args.max_len)
    n_batches = len(train_data)
    shape = {
        "users": int(dataset.user_num - 1),  # minus [PAD]
        "items": int(dataset.item_num - 1),
        "train_samples": len(train_data._dataset),
        "valid_samples": len(valid_data._dataset),
        "test_samples": len(test_data._dataset),
        "batches_per_epoch": n_batches,
        "params": sum(p.numel() for p in model.parameters()),
    }
    print(
        f"[recbole_sasrec] setup {setup_seconds:.1f}s; {shape}; {check}",
        file=sys.stderr,
        flush=True,
    )

    per_epoch = []
    best = {"epoch": -1, "ndcg@10": -np.inf, "state": None}
    stale = 0
    for epoch in range(args.epochs):
        load_before = os.getloadavg()[0]
        t, c = time.perf_counter(), time.process_time()
        total_loss = trainer._train_epoch(train_data, epoch, show_progress=args.show_progress)
        train_s = time.perf_counter() - t
        train_cpu = time.process_time() - c
        load_after = os.getloadavg()[0]
        t = time.perf_counter()
        _, valid = trainer._valid_epoch(valid_data, show_progress=False)
        valid_s = time.perf_counter() - t
        valid = {key: float(v) for key, v in valid.items()}
        rec = {
            "epoch": epoch,
            "train_seconds": round(train_s, 3),
            "loss": float(total_loss) / n_batches,  # mean CE over batches
            "train_cpu_seconds": round(train_cpu, 3),
            "valid_seconds": round(valid_s, 3),
            "valid": valid,
            "loadavg1_before_after": [round(load_before, 2), round(load_after, 2)],
        }
        per_epoch.append(rec)
        print(f"[recbole_sasrec] {json.dumps(rec)}", file=sys.stderr, flush=True)
        if valid["ndcg@10"] > best["ndcg@10"]:
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            best = {"epoch": epoch, "ndcg@10": valid["ndcg@10"], "state": state}
            stale = 0
        else:
            stale += 1
            if stale >= args.patience:
                break

    model.load_state_dict(best["state"])
    t = time.perf_counter()
    own = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    own = {key: float(v) for key, v in own.items()}
    cons = conservative_eval(trainer, test_data)
    eval_seconds = time.perf_counter() - t

    times = [r["train_seconds"] for r in per_epoch]
    later = times[1:] or times
    epochs_trained = len(per_epoch)
    stopped = "early stopping" if epochs_trained < args.epochs else "max epochs"
    result = {
        "peer": "recbole",
        "model": "SASRec",
        "per_epoch": per_epoch,
        "first_epoch_seconds": times[0],
        "median_epoch_seconds": statistics.median(later),
        "mean_epoch_seconds": statistics.mean(later),
        "min_epoch_seconds": min(later),
        "median_valid_seconds": statistics.median(r["valid_seconds"] for r in per_epoch),
        "setup_seconds": round(setup_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "epochs_trained": epochs_trained,
        "stopped_by": stopped,
        "best_epoch": best["epoch"],
        "best_valid_ndcg10": best["ndcg@10"],
        "valid_curve": [r["valid"]["ndcg@10"] for r in per_epoch],
        "test": {key: cons[key] for key in cons if key != "users"},
        "metrics_note": (
            f"test split, best valid NDCG@10 epoch {best['epoch']} of {epochs_trained} "
            f"({stopped}, patience {args.patience}); 'test' uses conservative ties, "
            "'recbole_test' RecBole's evaluator (torch.topk ties)"
        ),
        "recbole_test": own,
        "history_check": check,
        "shape": shape,
        "config": {
            key: config_dict[key]
            for key in (
                "MAX_ITEM_LIST_LENGTH",
                "train_batch_size",
                "eval_batch_size",
                "learning_rate",
                "loss_type",
                "train_neg_sample_args",
                "hidden_size",
                "inner_size",
                "n_layers",
                "n_heads",
                "hidden_dropout_prob",
                "attn_dropout_prob",
                "hidden_act",
                "layer_norm_eps",
                "initializer_range",
                "benchmark_filename",
                "eval_args",
                "valid_metric",
                "seed",
            )
        }
        | {"max_epochs": args.epochs, "patience": args.patience},
        "data": {"path": str(data_dir), **files},
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
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(text + "\n")
    summary = [
        f"RecBole SASRec: {epochs_trained} epochs ({stopped})",
        f"median {result['median_epoch_seconds']:.1f} s/epoch (epochs 2..; first {times[0]:.1f})",
        f"best valid N@10 {best['ndcg@10']:.4f} at epoch {best['epoch']}",
        f"test R@10 {cons['recall@10']:.4f} N@10 {cons['ndcg@10']:.4f}"
        f" R@50 {cons['recall@50']:.4f} N@50 {cons['ndcg@50']:.4f} (conservative ties)",
        f"RecBole evaluator R@10 {own['recall@10']:.4f} N@10 {own['ndcg@10']:.4f}",
        f"threads {result['threads']}",
    ]
    if out_path:
        summary.append(f"wrote {out_path}")
    print("; ".join(summary), file=sys.stderr, flush=True)
    print(text)
    return result


if __name__ == "__main__":
    main()
