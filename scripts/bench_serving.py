"""Serving latency and scorer throughput of an exported run, on this machine.

    .venv/bin/hybridrec-export <run id>            # exports/<run id>/ + the pyfunc model
    .venv/bin/python scripts/bench_serving.py exports/<run id> [--requests 300] [--threads 4]
    .venv/bin/python scripts/bench_serving.py exports/<run id> --pyfunc-only \
        --fields '{"lambda": 0.3, "segment": "students"}'   # a judgment head's request fields

Prints, each over a fixed number of requests after a warm-up:
  * one pyfunc ``predict`` (in process, one request row: a known user, k=10): p50 / p99 ms;
  * the served endpoint (``mlflow models serve`` on loopback, started here): p50 / p99 ms of
    sequential requests, and requests/s with ``--threads`` concurrent clients (bounded load);
  * the exported scorer, batch 256 users with 20-item histories: rows/s with ONNX Runtime and
    with TorchScript (one intra-op thread each, as the server's default).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def _percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):.2f} ms, p99 {np.percentile(ms, 99):.2f} ms"


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("export", type=Path)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument(
        "--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    )
    parser.add_argument(
        "--fields",
        default=None,
        help="JSON object of request fields: the in-process requests alternate without and with "
        "them, and both are reported (e.g. a judgment head's lambda and segment)",
    )
    parser.add_argument("--pyfunc-only", action="store_true", help="the in-process part only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    meta = json.loads((args.export / "export.json").read_text())
    users = json.loads((args.export / "users.json").read_text())
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    model = mlflow.pyfunc.load_model(meta["pyfunc_model_uri"])
    request = pd.DataFrame([{"user": str(users[3]), "k": 10}])
    extra = json.loads(args.fields) if args.fields else None
    variants = {"": request}
    if extra:
        variants[f" with {args.fields}"] = pd.DataFrame([{"user": str(users[3]), "k": 10, **extra}])
    for _ in range(20):
        for frame in variants.values():
            model.predict(frame)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.requests):  # interleaved: both see the same machine load
        for name, frame in variants.items():
            start = time.perf_counter()
            model.predict(frame)
            times[name].append(time.perf_counter() - start)
    for name, seconds in times.items():
        print(
            f"pyfunc predict, 1 row, k=10{name}: {_percentiles(seconds)} ({args.requests} requests)"
        )
    if args.pyfunc_only:
        return

    port = _port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": args.tracking_uri,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "models", "serve", "-m",
         meta["pyfunc_model_uri"], "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    body = json.dumps({"dataframe_records": [{"user": str(users[3]), "k": 10}]}).encode()

    def post() -> None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as response:
            response.read()

    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        for _ in range(20):
            post()
        times = []
        for _ in range(args.requests):
            start = time.perf_counter()
            post()
            times.append(time.perf_counter() - start)
        print(f"endpoint, sequential: {_percentiles(times)}, {1 / np.mean(times):.0f} requests/s")
        per_thread = args.requests // args.threads
        workers = [
            threading.Thread(target=lambda: [post() for _ in range(per_thread)])
            for _ in range(args.threads)
        ]
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        total = per_thread * args.threads
        rate = total / (time.perf_counter() - start)
        print(f"endpoint, {args.threads} concurrent clients: {rate:.0f} requests/s")
    finally:
        server.terminate()
        server.wait(timeout=30)

    batch, width = 256, 20
    inputs = {
        "users": np.arange(batch) % max(1, meta["n_users"]),
        "history": np.random.default_rng(0).integers(
            1, meta["n_items"] + 1, (batch, meta["history_width"] or width)
        ),
    }
    inputs["lengths"] = (inputs["history"] > 0).sum(1)
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(args.export / "scorer.onnx"), options)
    feed = {i.name: inputs[i.name].astype(np.int64) for i in session.get_inputs()}
    scripted = torch.jit.load(str(args.export / "scorer.pt"))
    tensors = [torch.as_tensor(inputs[name]) for name in meta["inputs"]]
    for name, call in (
        ("ONNX Runtime", lambda: session.run(["scores"], feed)),
        ("TorchScript", lambda: scripted(*tensors)),
    ):
        with torch.no_grad():
            for _ in range(5):
                call()
            start, runs = time.perf_counter(), 50
            for _ in range(runs):
                call()
        rate = batch * runs / (time.perf_counter() - start)
        print(f"scorer, batch {batch}, {name}: {rate:,.0f} rows/s ({meta['n_items']} items each)")


if __name__ == "__main__":
    main()
