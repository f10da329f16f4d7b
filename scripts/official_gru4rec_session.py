"""The official GRU4Rec (PyTorch) on session data, evaluated by the official ``batch_eval``.

    .venv/bin/python scripts/official_gru4rec_session.py \\
        --official-dir /path/to/GRU4Rec_official --loss bpr-max --seed 0

Trains on ``--train`` (default: the RSC15 100k sample's train_full) and scores every next click
of ``--test`` among all training items with the official ``evaluation.batch_eval``
(Recall@20 / MRR@20, "conservative" ties = our pessimistic). Same hyper-parameter defaults and
run-time shims as scripts/official_gru4rec.py (read its docstring: the official code is
imported from a clone outside this repository and never copied into it). Prints one line and
writes ``--out`` as JSON. Use it to compare our `session` protocol runs with the official code
under several seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_gru4rec import (  # noqa: E402  (sibling script)
    COMMON,
    DEFAULT_PARAMS,
    EpochTee,
    numpy2_shim,
    parse_params,
    resolve,
    series_tensor_shim,
)

RSC15 = "../shared/datasets/rsc15_100k_session/yoochoose-clicks-100k"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--official-dir", required=True)
    p.add_argument("--train", default=f"{RSC15}_train_full.txt")
    p.add_argument("--test", default=f"{RSC15}_test.txt")
    p.add_argument("--loss", choices=sorted(DEFAULT_PARAMS), default="bpr-max")
    p.add_argument("--params", default="", help="k=v,k=v overrides (official names)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    official_dir = Path(args.official_dir).expanduser().resolve()
    sys.path.insert(0, str(official_dir))
    import evaluation  # the clone, unmodified
    import gru4rec_pytorch

    numpy2_shim(gru4rec_pytorch.GRU4RecModel)
    read = {"sep": "\t", "dtype": {"SessionId": "int64", "ItemId": "int64", "Time": "float64"}}
    train = pd.read_csv(resolve(args.train), **read)
    test = pd.read_csv(resolve(args.test), **read)

    params = OrderedDict([("loss", args.loss), *DEFAULT_PARAMS[args.loss].items(), *COMMON.items()])
    params.update(parse_params(args.params))
    params["n_epochs"] = str(args.epochs)
    gru = gru4rec_pytorch.GRU4Rec(device=torch.device("cpu"))
    gru.set_params(**params)
    tee = EpochTee(sys.stdout)
    sys.stdout = tee
    original_tensor = series_tensor_shim(gru)
    try:
        gru.fit(train)
    finally:
        sys.stdout = tee.stream
        if original_tensor is not None:
            torch.tensor = original_tensor
    start = time.perf_counter()
    recall, mrr = evaluation.batch_eval(gru, test, cutoff=[20], mode="conservative")
    result = {
        "loss": args.loss,
        "seed": args.seed,
        "recall20": float(recall[20]),
        "mrr20": float(mrr[20]),
        "epoch_seconds": [e["train_seconds"] for e in tee.epochs],
        "eval_seconds": time.perf_counter() - start,
        "items": int(gru.data_iterator.n_items),
        "params": {k: str(getattr(gru, k)) for k in params},
    }
    print(
        f"[official_gru4rec_session] {args.loss} seed {args.seed}: Recall@20 "
        f"{result['recall20']:.4f} MRR@20 {result['mrr20']:.4f}, {result['items']} items, "
        f"epochs (s) {result['epoch_seconds']}",
        flush=True,
    )
    if args.out:
        out = resolve(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
