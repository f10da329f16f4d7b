"""The official GRU4Rec (PyTorch) on Amazon Beauty: per-epoch training time, HR@10 / NDCG@10.

    git clone https://github.com/hidasib/GRU4Rec_PyTorch_Official /path/to/GRU4Rec_official
    .venv/bin/python scripts/official_gru4rec.py --official-dir /path/to/GRU4Rec_official \\
        --loss bpr-max --out bench/official_gru4rec_bprmax.json

Runs in our venv (torch, numpy, pandas) and never imports hybridrec. The official code is free
for research and education only, so it is NEVER copied into this repository: ``--official-dir``
points to a clone made elsewhere, and ``gru4rec_pytorch`` is imported from there, unmodified.

Data (``--data``, default ``../shared/datasets/s3rec_amazon_yelp/Beauty.txt``): one user per
line, ``user item_1 ... item_n``, chronological. Each user's history minus its last item is one
training session (SessionId = user, ItemId = item, Time = position in the history); the last
item is the test target. 22,363 sessions, 176,139 training events, 12,092 items in the official
item map (52 targets never occur in training: they count as misses).

Training: ``GRU4Rec(device=cpu)``, ``set_params`` with the defaults for ``--loss`` (below) and
the ``--params`` overrides, then ``fit`` for ``--epochs`` epochs (compatibility-mode init,
sample store of 10M; under NumPy >= 2 one method is replaced at run time so that the
compatibility-mode init stays float32, see ``numpy2_shim``; with logQ, ``torch.tensor`` accepts
the popularity Series once, see ``series_tensor_shim``). Per-epoch seconds are the official
code's own figure (``time.time()`` around one epoch of minibatches, negative-sample store
refreshes included; its printed ``EpochN --> loss: ... (S s)`` lines are parsed).

Defaults per loss: ``bpr-max`` is the official README example (its RetailRocket optimum):
layers=224, batch_size=80, dropout_p_embed=0.5, dropout_p_hidden=0.05, learning_rate=0.05,
momentum=0.4, n_sample=2048, sample_alpha=0.4, bpreg=1.95, logq=0, elu_param=0.5;
``cross-entropy`` is paramfiles/rsc15_xe_shared_100_best.py: layers=100, batch_size=32,
dropout_p_embed=0, dropout_p_hidden=0.4, learning_rate=0.2, momentum=0.2, n_sample=2048,
sample_alpha=0.5, bpreg=0, logq=1, elu_param=0. Both: constrained_embedding=True, embedding=0.

Evaluation (ours, not the official ``evaluation.py``, which scores every next-item event): for
each user the whole prefix (history minus last item) goes through the trained GRU from a zero
hidden state, using the official model's ``forward`` step by step (intermediate steps score
only the batch's own items; the last step scores all items), and the target is ranked against
ALL items of the official item map: rank = number of items scoring >= the target
(conservative: ties count against it; the target itself makes the rank >= 1). HR@10 = rank <=
10; NDCG@10 = 1 / log2(rank + 1) when rank <= 10. Seen items are not excluded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import statistics
import sys
import time
from collections import OrderedDict
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "../shared/datasets/s3rec_amazon_yelp/Beauty.txt"

COMMON = {"constrained_embedding": "True", "embedding": "0"}
DEFAULT_PARAMS = {
    "bpr-max": {
        "layers": "224",
        "batch_size": "80",
        "dropout_p_embed": "0.5",
        "dropout_p_hidden": "0.05",
        "learning_rate": "0.05",
        "momentum": "0.4",
        "n_sample": "2048",
        "sample_alpha": "0.4",
        "bpreg": "1.95",
        "logq": "0.0",
        "elu_param": "0.5",
    },
    "cross-entropy": {
        "layers": "100",
        "batch_size": "32",
        "dropout_p_embed": "0.0",
        "dropout_p_hidden": "0.4",
        "learning_rate": "0.2",
        "momentum": "0.2",
        "n_sample": "2048",
        "sample_alpha": "0.5",
        "bpreg": "0.0",
        "logq": "1.0",
        "elu_param": "0.0",
    },
}
EPOCH_LINE = re.compile(r"^Epoch(\d+) --> loss: (\S+)\s+\((\d+(?:\.\d+)?)s\)")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--official-dir",
        required=True,
        help="clone of hidasib/GRU4Rec_PyTorch_Official (holds gru4rec_pytorch.py)",
    )
    p.add_argument("--data", default=DEFAULT_DATA, help="relative paths: against the repo root")
    p.add_argument("--loss", choices=sorted(DEFAULT_PARAMS), default="bpr-max")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--params",
        default="",
        help="overrides as in the official run.py: k=v,k=v (lists with '/', e.g. layers=100/100)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (and OMP)")
    p.add_argument("--seed", type=int, default=42, help="torch/numpy seed (dropout, samples)")
    p.add_argument("--sample-store", type=int, default=10_000_000, help="official default")
    p.add_argument("--eval-batch", type=int, default=1024, help="users per evaluation batch")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", default=None, help="write the result JSON here")
    return p.parse_args(argv)


def resolve(path: str) -> Path:
    pth = Path(path)
    return pth if pth.is_absolute() else (REPO_ROOT / pth).resolve()


def read_beauty(path: Path) -> tuple[list[int], list[list[int]]]:
    users, seqs = [], []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:  # need >= 1 training transition + a target
                continue
            users.append(int(parts[0]))
            seqs.append([int(x) for x in parts[1:]])
    return users, seqs


def train_frame(users, seqs):
    import numpy as np
    import pandas as pd

    lens = np.fromiter((len(s) - 1 for s in seqs), dtype=np.int64, count=len(seqs))
    frame = pd.DataFrame(
        {
            "SessionId": np.repeat(np.asarray(users, dtype=np.int32), lens),
            "ItemId": np.fromiter((i for s in seqs for i in s[:-1]), dtype=np.int64),
            "Time": np.concatenate([np.arange(n, dtype=np.int64) for n in lens]),
        }
    )
    return frame.sort_values(["SessionId", "Time"], kind="stable").reset_index(drop=True)


def parse_params(text: str) -> OrderedDict:
    out = OrderedDict()
    for part in filter(None, (x.strip() for x in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise SystemExit(f"--params: expected k=v, got {part!r}")
        out[key.strip()] = value.strip()
    return out


class EpochTee:
    """Passes stdout through and records the official ``EpochN --> loss: ... (S s)`` lines."""

    def __init__(self, stream):
        self.stream = stream
        self.buffer = ""
        self.epochs: list[dict] = []

    def write(self, text):
        self.stream.write(text)
        self.buffer += text
        *lines, self.buffer = self.buffer.split("\n")
        for line in lines:
            match = EPOCH_LINE.match(line)
            if match:
                self.epochs.append(
                    {
                        "epoch": int(match.group(1)),
                        "train_seconds": float(match.group(3)),
                        "loss": float(match.group(2)),
                    }
                )
        return len(text)

    def flush(self):
        self.stream.flush()


def evaluate(gru, seqs, k: int, batch_users: int) -> dict:
    """Feed each prefix through the official model; rank the last item against all items."""
    import numpy as np
    import torch

    model = gru.model
    model.eval()
    itemidmap = gru.data_iterator.itemidmap  # pandas Series: item id -> official index
    lookup = dict(zip(itemidmap.index.tolist(), itemidmap.values.tolist(), strict=True))
    prefixes = [[lookup[i] for i in s[:-1]] for s in seqs]  # all prefix items were trained on
    targets = np.array([lookup.get(s[-1], -1) for s in seqs], dtype=np.int64)
    lens = np.array([len(p) for p in prefixes], dtype=np.int64)
    order = np.argsort(-lens, kind="stable")  # longest first: active rows are a prefix
    ranks = np.full(len(seqs), np.iinfo(np.int64).max, dtype=np.int64)  # unknown target: miss

    with torch.no_grad():
        for start in range(0, len(order), batch_users):
            rows = order[start : start + batch_users]
            blens = lens[rows]
            steps = int(blens[0])
            mat = np.zeros((len(rows), steps), dtype=np.int64)  # right-aligned prefixes
            for r, row in enumerate(rows):
                mat[r, steps - blens[r] :] = prefixes[row]
            hidden = [torch.zeros((len(rows), n), dtype=torch.float32) for n in gru.layers]
            scores = None
            for t in range(steps):
                # rows whose prefix has started by step t (lengths sorted descending)
                n_active = int(np.searchsorted(-blens, -(steps - t), side="right"))
                x = torch.from_numpy(mat[:n_active, t])
                h = [hh[:n_active] for hh in hidden]
                if t < steps - 1:
                    model.forward(x, h, x, training=False)  # scores only x: cheap
                else:
                    scores = model.forward(x, h, None, training=False)  # all items
                for i in range(len(hidden)):
                    hidden[i][:n_active] = h[i]
            assert scores is not None and scores.shape[0] == len(rows)
            tgt = torch.from_numpy(targets[rows])
            known = tgt >= 0
            tgt_scores = scores[torch.arange(len(rows)), tgt.clamp(min=0)]
            rank = (scores >= tgt_scores[:, None]).sum(dim=1).numpy()
            ranks[rows[known.numpy()]] = rank[known.numpy()]

    hit = ranks <= k
    ndcg = np.where(hit, 1.0 / np.log2(np.minimum(ranks, k) + 1.0), 0.0)
    return {
        f"hr{k}": float(hit.mean()),
        f"ndcg{k}": float(ndcg.mean()),
        "users": int(len(seqs)),
        "unknown_targets": int((targets < 0).sum()),
        "n_items_ranked": int(len(itemidmap)),
    }


def numpy2_shim(model_cls) -> bool:
    """Keep the official compatibility-mode init in float32 under NumPy >= 2.

    ``GRU4RecModel._init_numpy_weights`` computes ``rand(...).astype('float32') * 2 * sigma -
    sigma`` with ``sigma`` a ``np.float64``: NumPy 1 kept that float32 (value-based casting),
    NumPy 2 (NEP 50) promotes it to float64 and ``Tensor.set_`` then refuses to put the double
    matrix into the float GRU weights. This replaces the method at run time (the file is not
    touched) with the NumPy-1 arithmetic: same RNG draws, sigma cast to float32.
    """
    import numpy as np

    if int(np.__version__.split(".")[0]) < 2:
        return False

    def _init_numpy_weights(self, shape):
        sigma = np.float32(np.sqrt(6.0 / (shape[0] + shape[1])))
        return np.random.rand(*shape).astype("float32") * np.float32(2) * sigma - sigma

    model_cls._init_numpy_weights = _init_numpy_weights
    return True


def series_tensor_shim(gru):
    """Let the official ``fit`` build its logQ popularity tensor from a pandas Series.

    With ``loss=cross-entropy`` and ``logq > 0``, ``fit`` calls ``torch.tensor(pop[...])`` on
    a pandas Series, which current torch/pandas refuse ("could not determine the shape of
    object type 'Series'"). This wraps ``torch.tensor`` until that one call (converting the
    Series with ``to_numpy()``, same values) and then puts the original back, so it is gone
    before the model is built and the epochs run. Returns the original (to restore) or None.
    """
    import pandas as pd
    import torch

    if not (gru.loss == "cross-entropy" and gru.logq > 0):
        return None
    original = torch.tensor

    def tensor(data, *args, **kwargs):
        if isinstance(data, pd.Series | pd.Index):
            torch.tensor = original  # one shot
            data = data.to_numpy()
        return original(data, *args, **kwargs)

    torch.tensor = tensor
    return original


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    official_dir = Path(args.official_dir).expanduser().resolve()
    source = official_dir / "gru4rec_pytorch.py"
    if not source.is_file():
        raise SystemExit(f"{source} missing: clone hidasib/GRU4Rec_PyTorch_Official there")
    if official_dir.is_relative_to(REPO_ROOT) and not official_dir.is_relative_to(
        REPO_ROOT / "bench"
    ):
        print(
            f"[official_gru4rec] WARNING: {official_dir} is inside the repo; the official "
            "code must never be committed here (research/education-only licence)",
            file=sys.stderr,
        )
    sys.path.insert(0, str(official_dir))
    import gru4rec_pytorch  # the clone, unmodified

    shimmed = numpy2_shim(gru4rec_pytorch.GRU4RecModel)

    data_path = resolve(args.data)
    t0 = time.perf_counter()
    users, seqs = read_beauty(data_path)
    frame = train_frame(users, seqs)
    load_seconds = time.perf_counter() - t0

    params = OrderedDict([("loss", args.loss), *DEFAULT_PARAMS[args.loss].items(), *COMMON.items()])
    params.update(parse_params(args.params))
    params["n_epochs"] = str(args.epochs)
    device = torch.device("cpu")
    gru = gru4rec_pytorch.GRU4Rec(device=device)
    gru.set_params(**params)

    tee = EpochTee(sys.stdout)
    sys.stdout = tee
    original_tensor = series_tensor_shim(gru)
    try:
        t0 = time.perf_counter()
        gru.fit(frame, sample_cache_max_size=args.sample_store)
        fit_seconds = time.perf_counter() - t0
    finally:
        sys.stdout = tee.stream
        if original_tensor is not None:
            torch.tensor = original_tensor
    if getattr(gru, "error_during_train", False):
        raise SystemExit("official GRU4Rec stopped with a NaN loss")
    per_epoch = tee.epochs
    if len(per_epoch) != args.epochs:
        raise SystemExit(f"parsed {len(per_epoch)} epoch lines, expected {args.epochs}")

    t0 = time.perf_counter()
    metrics = evaluate(gru, seqs, args.k, args.eval_batch)
    eval_seconds = time.perf_counter() - t0

    times = [e["train_seconds"] for e in per_epoch]
    later = times[1:] or times
    result = {
        "peer": "official GRU4Rec (PyTorch)",
        "loss": args.loss,
        "per_epoch": per_epoch,
        "first_epoch_seconds": times[0],
        "median_epoch_seconds": statistics.median(later),
        "mean_epoch_seconds": statistics.mean(later),
        "min_epoch_seconds": min(later),
        "fit_seconds": round(fit_seconds, 3),
        "load_seconds": round(load_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        f"hr{args.k}": metrics[f"hr{args.k}"],
        f"ndcg{args.k}": metrics[f"ndcg{args.k}"],
        "eval": metrics,
        "params": {k: getattr(gru, k) for k in params},
        "data": {
            "path": str(data_path),
            "sessions": int(frame["SessionId"].nunique()),
            "train_events": len(frame),
            # next-item targets per epoch = events minus one session start per session
            "train_targets": len(frame) - int(frame["SessionId"].nunique()),
            "items_in_map": int(gru.data_iterator.n_items),
        },
        "official": {
            "dir": str(official_dir),
            "gru4rec_pytorch_sha256": sha256(source),
            "numpy2_init_shim": shimmed,
            "series_tensor_shim": original_tensor is not None,
        },
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "versions": {
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": platform.python_version(),
        },
        "host": {"cpus": os.cpu_count(), "loadavg": list(os.getloadavg())},
    }
    print(
        f"[official_gru4rec] {args.loss}: epochs (s) {times}; median after 1st "
        f"{result['median_epoch_seconds']:.2f}s; HR@{args.k} {result[f'hr{args.k}']:.4f} "
        f"NDCG@{args.k} {result[f'ndcg{args.k}']:.4f} (eval {eval_seconds:.1f}s)",
        flush=True,
    )
    if args.out:
        out = resolve(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
