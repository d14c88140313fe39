"""Tokenizers of pretrained models, in pure Python: BERT's WordPiece and byte-level BPE (GPT-2 style).

- :class:`WordPieceTokenizer` reads a BERT folder (``vocab.txt``, ``tokenizer_config.json``, ``config.json``) and
  reproduces the Hugging Face BERT tokenizer: normalise (drop control characters, every whitespace becomes a space,
  spaces around CJK ideographs, accents stripped by NFD decomposition and removal of non-spacing marks, lower case),
  split into words at whitespace and at every punctuation character, then cut each word greedily into the longest
  vocabulary pieces, continuations spelled ``##piece`` (a word with an unknown piece, or longer than 100
  characters, becomes ``[UNK]``); ``[CLS]`` and ``[SEP]`` frame the sequence.
- :class:`BPETokenizer` reads the vocabulary, merges and token types from a GGUF file's metadata and reproduces
  byte-level BPE: split the text at the model's special tokens, pre-tokenise the rest with the model's regexes,
  spell each piece's UTF-8 bytes with GPT-2's byte-to-character table, then apply merges in rank order.

Python's ``re`` has no ``\\p{L}``-style classes. Here they come from ``unicodedata`` general categories, two ways:

- per character, through lazily filled tables (a dict that computes an entry the first time a character is looked
  up, used with ``str.translate``), applied only to the runs of a text that are not plain ASCII: BERT's cleaning,
  CJK spacing, accent stripping and punctuation test;
- as regex character classes for the BPE pre-tokeniser: letters (``\\p{L}``) and numbers (``\\p{N}``) of the Basic
  Multilingual Plane as ranges (``re`` compiles those into one bitmap lookup per character); a character beyond it
  (an emoji, a rare ideograph) is replaced, for the regex only, by a stand-in of the same class (``a``, ``0`` or
  ``!``), and the pieces are cut from the original text at the same positions.

Both tokenizers cache the ids of every word or piece they have seen, so running text costs about one dictionary
look-up per word.
"""
from __future__ import annotations

import functools
import itertools
import json
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_device
from ..tensor import Tensor

__all__ = ["WordPieceTokenizer", "BPETokenizer", "bytes_to_unicode"]

_CACHE_LIMIT = 1_000_000  # word -> ids entries kept before a cache starts over

#: Unicode's White_Space property (what Rust's char::is_whitespace and Oniguruma's \s match)
_WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
                (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]
#: the CJK ideograph blocks BERT puts spaces around (as the Hugging Face tokenizers library spells them)
_CJK = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
        (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_NOT_PLAIN_ASCII = re.compile(r"[^\t\n\r\x20-\x7e]+")
_NOT_ASCII = re.compile(r"[^\x00-\x7f]+")
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


class _LazyTable(dict):
    """character -> replacement, computed by ``rule`` on first look-up; usable as a ``str.translate`` table."""

    def __init__(self, rule: Callable[[str], Any]):
        super().__init__()
        self.rule = rule

    def __missing__(self, code_point: int) -> Any:
        self[code_point] = replacement = self.rule(chr(code_point))
        return replacement


def _in_spans(code_point: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(first <= code_point <= last for first, last in spans)


@functools.lru_cache(maxsize=None)
def _bmp_class(major: str) -> str:
    """A regex character class of the Basic Multilingual Plane's characters whose general category starts with
    ``major`` ("L": Lu, Ll, Lt, Lm, Lo), written as ranges of escapes."""
    categories = map(unicodedata.category, map(chr, range(0x10000)))
    spans, first = [], 0
    for category, run in itertools.groupby(categories, key=lambda category: category[0] == major):
        length = sum(1 for _ in run)
        if category:
            spans.append((first, first + length - 1))
        first += length
    return _class_body(spans)


def _class_body(spans: Iterable[tuple[int, int]]) -> str:
    """The inside of a regex character class, ``\\uxxxx-\\uyyyy`` per range (escapes, so any code point is safe
    inside the brackets)."""
    return "".join(f"\\U{first:08x}" if first == last else f"\\U{first:08x}-\\U{last:08x}" for first, last in spans)


# ------------------------------------------------------------------------------------------- shared machinery
class _Tokenizer:
    """What both tokenizers share: special tokens around the text, the length check, batches, id checks.

    A subclass sets ``vocab`` (token -> id), ``id_to_token``, ``max_length``, ``pad_token_id`` and implements
    ``_encode_text(text) -> list[int]`` (without the framing special tokens), ``_framing() -> (prefix,
    suffix)`` id lists and ``_decode_ids(ids, skip_special_tokens) -> str``.
    """

    vocab: dict[str, int]
    id_to_token: list[str]
    max_length: int
    pad_token_id: int

    def __len__(self) -> int:
        return len(self.id_to_token)

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    def encode(self, text: str, add_special_tokens: bool = True, truncation: bool = False,
               max_length: int | None = None) -> list[int]:
        """The ids of ``text``, framed by the special tokens the model adds (unless ``add_special_tokens`` is
        False). A result longer than ``max_length`` (default: the model's maximum) is cut to it when
        ``truncation`` is True, the framing tokens kept; otherwise it is an error that says how long it was."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.encode: expected a str, got {type(text).__name__}")
        body = self._encode_text(text)
        prefix, suffix = self._framing() if add_special_tokens else ([], [])
        limit = self.max_length if max_length is None else max_length
        total = len(prefix) + len(body) + len(suffix)
        if total > limit:
            if not truncation:
                raise ValueError(f"{type(self).__name__}.encode: the text is {total} tokens long (special tokens "
                                 f"included), more than the maximum length {limit}; pass truncation=True to cut "
                                 f"it to {limit} tokens")
            if limit < len(prefix) + len(suffix):
                raise ValueError(f"{type(self).__name__}.encode: max_length={limit} leaves no room for the "
                                 f"{len(prefix) + len(suffix)} special tokens")
            body = body[:limit - len(prefix) - len(suffix)]
        return prefix + body + suffix

    def encode_batch(self, texts: Sequence[str], max_length: int | None = None, truncation: bool = False,
                     add_special_tokens: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, attention_mask)``: int64 arrays (N, T), T the longest encoding, shorter rows right-padded
        with the padding token; the mask is 1 at real tokens and 0 at padding."""
        if isinstance(texts, str):
            raise TypeError(f"{type(self).__name__}.encode_batch: expected a list of texts, got one str (use "
                            f"encode for a single text)")
        encoded = [self.encode(text, add_special_tokens, truncation, max_length) for text in texts]
        lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
        longest = int(lengths.max()) if len(encoded) else 0
        mask = (np.arange(longest) < lengths[:, None]).astype(np.int64)
        ids = np.full(mask.shape, self.pad_token_id, dtype=np.int64)
        ids[mask.astype(bool)] = list(itertools.chain.from_iterable(encoded))
        return ids, mask

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        """The text of ``ids`` (a list, 1-D array or Tensor), as the reference tokenizer's decode writes it."""
        ids = np.asarray(to_device(ids.data, "cpu") if isinstance(ids, Tensor) else ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"{type(self).__name__}.decode: expected a 1-D sequence of ids, got shape "
                             f"{ids.shape} (decode each row of a batch)")
        bad = ids[(ids < 0) | (ids >= len(self.id_to_token))]
        if bad.size:
            raise ValueError(f"{type(self).__name__}.decode: id {int(bad[0])} is outside the vocabulary of "
                             f"{len(self.id_to_token)} tokens")
        return self._decode_ids(ids.tolist(), skip_special_tokens)

    def token_to_id(self, token: str) -> int:
        if token not in self.vocab:
            raise KeyError(f"{type(self).__name__}: {token!r} is not in the vocabulary")
        return self.vocab[token]

    # subclass hooks
    def _encode_text(self, text: str) -> list[int]:
        raise NotImplementedError

    def _framing(self) -> tuple[list[int], list[int]]:
        raise NotImplementedError

    def _decode_ids(self, ids: list[int], skip_special_tokens: bool) -> str:
        raise NotImplementedError


def _special_token_splitter(tokens: Iterable[str]) -> re.Pattern | None:
    """A regex whose ``split`` isolates the given tokens in a text (longest first, so ``<a><b>`` is not cut at a
    shorter token that starts the same); None when there are none."""
    tokens = sorted({token for token in tokens if token}, key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, tokens)) + ")") if tokens else None


class _IdsCache(dict):
    """word -> ids, computed by ``compute`` on first look-up (so ``map(cache.__getitem__, words)`` runs in C for
    every word seen before); starts over when it holds ``_CACHE_LIMIT`` words."""

    def __init__(self, compute: Callable[[str], list[int]]):
        super().__init__()
        self.compute = compute

    def __missing__(self, word: str) -> list[int]:
        if len(self) >= _CACHE_LIMIT:
            self.clear()
        self[word] = ids = self.compute(word)
        return ids

    def ids_of(self, words: Iterable[str]) -> Iterable[int]:
        return itertools.chain.from_iterable(map(self.__getitem__, words))


# ---------------------------------------------------------------------------------------------- WordPiece
#: what BERT's cleaning drops besides NUL and U+FFFD: controls (but tab, newline, carriage return), format
#: characters, private use, surrogates. Unassigned code points (Cn) stay, as in the reference, and become [UNK].
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})


class _BertNormalizer:
    """BERT's text normalisation, in the reference's order: clean (drop NUL, U+FFFD and the characters of
    ``_REMOVED_CATEGORIES``), space out CJK ideographs, strip accents (NFD, then drop non-spacing marks),
    lower-case; then the split into words at whitespace.

    Plain ASCII text passes through three C-level string operations; only the runs that are not plain ASCII go
    through the per-character tables.
    """

    def __init__(self, lowercase: bool, strip_accents: bool, split_cjk: bool):
        self.lowercase, self.strip_accents, self.split_cjk = lowercase, strip_accents, split_cjk
        self._clean = _LazyTable(self._clean_char)
        self._drop_marks = _LazyTable(lambda char: "" if unicodedata.category(char) == "Mn" else char)

    def _clean_char(self, char: str) -> str:
        """The replacement of one character that is not plain ASCII (whitespace is left to ``str.split``)."""
        if char in "\x00\ufffd" or (unicodedata.category(char) in _REMOVED_CATEGORIES and char not in "\t\n\r"):
            return ""
        if self.split_cjk and _in_spans(ord(char), _CJK):
            return f" {char} "
        return char

    def words(self, text: str) -> list[str]:
        text = _NOT_PLAIN_ASCII.sub(lambda run: run.group().translate(self._clean), text)
        if self.strip_accents and not text.isascii():
            text = _NOT_ASCII.sub(lambda run: run.group().translate(self._drop_marks),
                                  unicodedata.normalize("NFD", text))
        if self.lowercase:  # character by character, as the reference does: no final-sigma rule
            text = text.replace("Σ", "σ").lower()
        return text.split()  # every whitespace left after cleaning is White_Space, which str.split splits at


def _is_punctuation(char: str) -> bool:
    """BERT's punctuation: ASCII's symbols and punctuation, and every Unicode punctuation category (P*)."""
    return char in _ASCII_PUNCTUATION or unicodedata.category(char)[0] == "P"


#: the WordPiece decoder's clean-up, applied to each token with the space that precedes it
_DECODE_CLEANUP = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                   (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


class WordPieceTokenizer(_Tokenizer):
    """BERT's WordPiece tokenizer (see the module docstring); ``from_pretrained(folder)`` reads a BERT folder.

    ``encode(text)`` gives ``[CLS] pieces [SEP]`` ids; special tokens written in the text (``[MASK]``,
    ``[SEP]``, ...) stay whole. ``decode(ids)`` joins pieces (``##`` continuations glued to the previous one)
    with the reference's clean-up of spaces before ``. ? ! ,``.
    """

    def __init__(self, vocab: Sequence[str], *, lowercase: bool = True, strip_accents: bool | None = None,
                 split_cjk: bool = True, unk_token: str = "[UNK]", cls_token: str = "[CLS]",
                 sep_token: str = "[SEP]", pad_token: str = "[PAD]", mask_token: str = "[MASK]",
                 max_length: int = 512, max_input_chars_per_word: int = 100):
        self.id_to_token = list(vocab)
        self.vocab = {token: index for index, token in enumerate(self.id_to_token)}
        missing = [t for t in (unk_token, cls_token, sep_token, pad_token) if t not in self.vocab]
        if missing:
            raise ValueError(f"WordPieceTokenizer: the special tokens {missing} are not in the vocabulary")
        self.unk_token_id, self.cls_token_id = self.vocab[unk_token], self.vocab[cls_token]
        self.sep_token_id, self.pad_token_id = self.vocab[sep_token], self.vocab[pad_token]
        self.special_tokens = [t for t in (unk_token, cls_token, sep_token, pad_token, mask_token) if t in self.vocab]
        self._special_ids = {self.vocab[t] for t in self.special_tokens}
        self._special_splitter = _special_token_splitter(self.special_tokens)
        self.max_length, self.max_input_chars_per_word = max_length, max_input_chars_per_word
        self._normalizer = _BertNormalizer(lowercase, lowercase if strip_accents is None else strip_accents,
                                           split_cjk)
        self._punctuation = _LazyTable(_is_punctuation)
        self._cache = _IdsCache(self._word_ids)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike) -> "WordPieceTokenizer":
        """Read ``vocab.txt`` (one token per line, id = line number) and the settings of
        ``tokenizer_config.json`` (lower case, accents, CJK, special tokens, ``model_max_length``) and
        ``config.json`` (``max_position_embeddings``), both optional."""
        folder = Path(folder)
        vocab_path = folder / "vocab.txt"
        if not vocab_path.is_file():
            raise FileNotFoundError(f"WordPieceTokenizer.from_pretrained: no vocab.txt in '{folder}'")
        vocab = vocab_path.read_text(encoding="utf-8").splitlines()
        settings = _read_json(folder / "tokenizer_config.json")
        limits = [settings.get("model_max_length"), _read_json(folder / "config.json").get("max_position_embeddings")]
        limits = [int(limit) for limit in limits if isinstance(limit, (int, float)) and 0 < limit < 1e9]
        return cls(vocab, lowercase=settings.get("do_lower_case", True), strip_accents=settings.get("strip_accents"),
                   split_cjk=settings.get("tokenize_chinese_chars", True),
                   **{name: settings[name] for name in ("unk_token", "cls_token", "sep_token", "pad_token",
                                                        "mask_token") if isinstance(settings.get(name), str)},
                   max_length=min(limits) if limits else 512)

    def tokenize(self, text: str) -> list[str]:
        """The pieces of ``text`` as strings, without ``[CLS]``/``[SEP]``."""
        return [self.id_to_token[index] for index in self._encode_text(text)]

    def _encode_text(self, text: str) -> list[int]:
        segments = self._special_splitter.split(text) if self._special_splitter else [text]
        ids: list[int] = []
        for index, segment in enumerate(segments):
            if index % 2:  # a special token written in the text
                ids.append(self.vocab[segment])
                continue
            ids.extend(self._cache.ids_of(self._normalizer.words(segment)))
        return ids

    def _word_ids(self, word: str) -> list[int]:
        """A whitespace-free word: split at every punctuation character, then WordPiece each part."""
        if word.isalnum():  # letters and digits only: no punctuation inside
            return self._word_pieces(word)
        ids, start = [], 0
        for position, char in enumerate(word):
            if self._punctuation[ord(char)]:
                if position > start:
                    ids += self._word_pieces(word[start:position])
                ids += self._word_pieces(char)
                start = position + 1
        return ids + self._word_pieces(word[start:]) if start < len(word) else ids

    def _word_pieces(self, word: str) -> list[int]:
        """Greedy longest-match-first: at each position take the longest vocabulary entry (``##``-prefixed
        after the first piece); a word with a position no entry matches is ``[UNK]`` as a whole."""
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token_id]
        pieces, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    pieces.append(self.vocab[piece])
                    start = end
                    break
            else:
                return [self.unk_token_id]
        return pieces

    def _framing(self) -> tuple[list[int], list[int]]:
        return [self.cls_token_id], [self.sep_token_id]

    def _decode_ids(self, ids: list[int], skip_special_tokens: bool) -> str:
        tokens = [self.id_to_token[i] for i in ids if not (skip_special_tokens and i in self._special_ids)]
        parts = []
        for index, token in enumerate(tokens):
            if index:
                token = token[2:] if token.startswith("##") else " " + token
            for dirty, clean in _DECODE_CLEANUP:
                token = token.replace(dirty, clean)
            parts.append(token)
        return "".join(parts)

    def __repr__(self) -> str:
        return f"WordPieceTokenizer(vocab_size={len(self)}, max_length={self.max_length})"


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# ------------------------------------------------------------------------------------------- byte-level BPE
@functools.lru_cache(maxsize=None)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from the 256 byte values to printable characters: the printable Latin-1 bytes (``!``..``~``,
    ``¡``..``¬``, ``®``..``ÿ``) stand for themselves, the other 68 (controls, space, soft hyphen) are given the
    characters 256, 257, ... in order, so a space is ``Ġ`` (U+0120) and a newline ``Ċ``."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [byte for byte in range(256) if byte not in printable]
    return {**{byte: chr(byte) for byte in printable}, **{byte: chr(256 + n) for n, byte in enumerate(shifted)}}


def _gpt2_pattern() -> str:
    """GPT-2's pre-tokenisation regex, ``'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|
    \\s+(?!\\S)|\\s+``, with \\s the White_Space property, spelled with explicit classes."""
    letters, numbers, space = _bmp_class("L"), _bmp_class("N"), _class_body(_WHITE_SPACE)
    return (f"'s|'t|'re|'ve|'m|'ll|'d| ?[{letters}]+| ?[{numbers}]+| ?[^{space}{letters}{numbers}]+"
            f"|[{space}]+(?![^{space}])|[{space}]+")


@functools.lru_cache(maxsize=None)
def _pre_tokenizer(name: str) -> tuple[re.Pattern, ...]:
    """The regexes, applied one after the other, that cut text into pieces for the model named by a GGUF's
    ``tokenizer.ggml.pre``; each match becomes a piece of its own, and so does the text between matches (as in
    llama.cpp, and in the Hugging Face tokenizers the models come from)."""
    families = {
        "gpt2": (_gpt2_pattern(),),
        # llama.cpp's STARCODER family, SmolLM's included: every number character alone first
        "smollm": (f"[{_bmp_class('N')}]", _gpt2_pattern()),
    }
    for alias in ("starcoder", "refact", "codeshell"):
        families[alias] = families["smollm"]
    if name not in families:
        raise ValueError(f"BPETokenizer: pre-tokenizer {name!r} (tokenizer.ggml.pre) is not supported; "
                         f"supported: {', '.join(sorted(families))}")
    return tuple(re.compile(f"({pattern})") for pattern in families[name])


def _stand_in(char: str) -> str:
    """A Basic Multilingual Plane character the pre-tokeniser regexes treat as they would treat ``char``: a
    letter, a number or something else (no character beyond the BMP is whitespace or an apostrophe)."""
    return {"L": "a", "N": "0"}.get(unicodedata.category(char)[0], "!")


class BPETokenizer(_Tokenizer):
    """Byte-level BPE from a GGUF file (``from_gguf``), as llama.cpp and the model's Hugging Face tokenizer do
    it (see the module docstring). Special tokens (GGUF token types CONTROL and USER_DEFINED, e.g.
    ``<|im_start|>``) written in the text are matched whole; BOS/EOS are added when the metadata's
    ``add_bos_token``/``add_eos_token`` say so. ``decode`` undoes the byte mapping, so
    ``decode(encode(text)) == text`` for any text whose bytes all have tokens (a byte without one is dropped).
    """

    CONTROL, USER_DEFINED = 3, 4  # llama.cpp token types

    def __init__(self, tokens: Sequence[str], merges: Sequence[str], token_types: Sequence[int] | None = None, *,
                 pre_tokenizer: str = "gpt2", bos_token_id: int | None = None, eos_token_id: int | None = None,
                 add_bos_token: bool = False, add_eos_token: bool = False, pad_token_id: int | None = None,
                 max_length: int = 2048):
        self.id_to_token = list(tokens)
        self.vocab = {token: index for index, token in enumerate(self.id_to_token)}
        self.ranks = {tuple(merge.split(" ", 1)): rank for rank, merge in enumerate(merges)}
        types = list(token_types) if token_types is not None else [1] * len(self.id_to_token)
        self.special_tokens = [token for token, kind in zip(self.id_to_token, types)
                               if kind in (self.CONTROL, self.USER_DEFINED) and token]
        self._control_ids = {index for index, kind in enumerate(types) if kind == self.CONTROL}
        self._special_splitter = _special_token_splitter(self.special_tokens)
        self._splits = _pre_tokenizer(pre_tokenizer)
        self._stand_ins = _LazyTable(_stand_in)
        self.bos_token_id, self.eos_token_id = bos_token_id, eos_token_id
        self.add_bos_token, self.add_eos_token = add_bos_token, add_eos_token
        pad = pad_token_id if pad_token_id is not None else eos_token_id
        self.pad_token_id = pad if pad is not None else 0
        self.max_length = max_length
        byte_chars = bytes_to_unicode()
        self._byte_encoder = str.maketrans({chr(byte): char for byte, char in byte_chars.items()})
        self._byte_decoder = {char: byte for byte, char in byte_chars.items()}
        self._cache = _IdsCache(self._piece_ids)

    @classmethod
    def from_gguf(cls, path: str | os.PathLike) -> "BPETokenizer":
        """Read ``tokenizer.ggml.*`` from a GGUF file's metadata (``model`` must be ``gpt2``, byte-level BPE)."""
        from ..io.gguf import GGUFFile
        with GGUFFile(path) as file:
            metadata = file.metadata

        def key(name: str, default: Any = None) -> Any:
            return metadata.get(f"tokenizer.ggml.{name}", default)
        if key("model") != "gpt2":
            raise ValueError(f"BPETokenizer.from_gguf: '{path}' has tokenizer.ggml.model = {key('model')!r}; "
                             f"only 'gpt2' (byte-level BPE) is supported")
        for required in ("tokens", "merges"):
            if key(required) is None:
                raise ValueError(f"BPETokenizer.from_gguf: '{path}' has no tokenizer.ggml.{required}")
        architecture = metadata.get("general.architecture")
        return cls(key("tokens"), key("merges"), key("token_type"), pre_tokenizer=key("pre", "gpt2"),
                   bos_token_id=key("bos_token_id"), eos_token_id=key("eos_token_id"),
                   add_bos_token=bool(key("add_bos_token", False)), add_eos_token=bool(key("add_eos_token", False)),
                   pad_token_id=key("padding_token_id"),
                   max_length=int(metadata.get(f"{architecture}.context_length", 2048)))

    def pre_tokenize(self, text: str) -> list[str]:
        """The pieces the regexes cut ``text`` (without special tokens) into."""
        probe = _BEYOND_BMP.sub(lambda match: self._stand_ins[ord(match.group())], text)
        pieces = [probe]
        for pattern in self._splits:
            pieces = [part for piece in pieces for part in pattern.split(piece) if part]
        if probe == text:
            return pieces
        ends = itertools.accumulate(map(len, pieces))  # the same cuts, in the original text
        return [text[end - len(piece):end] for piece, end in zip(pieces, ends)]

    def _encode_text(self, text: str) -> list[int]:
        segments = self._special_splitter.split(text) if self._special_splitter else [text]
        ids: list[int] = []
        for index, segment in enumerate(segments):
            if index % 2:
                ids.append(self.vocab[segment])
                continue
            ids.extend(self._cache.ids_of(self.pre_tokenize(segment)))
        return ids

    def _piece_ids(self, piece: str) -> list[int]:
        """Spell the piece's UTF-8 bytes in the byte alphabet, apply the merges, look the symbols up. A byte the
        vocabulary has no token for is dropped, as llama.cpp and Hugging Face's BPE (without an unknown token)
        both do: SmolLM2 lacks 21 of the 256 bytes, e.g. 0x1D and the ones UTF-8 never uses."""
        symbols = self._merge(piece.encode("utf-8").decode("latin-1").translate(self._byte_encoder))
        return [self.vocab[symbol] for symbol in symbols if symbol in self.vocab]

    def _merge(self, word: str) -> list[str]:
        """Apply merges to the characters of ``word``: join the adjacent pair with the lowest rank (the leftmost
        if it occurs twice), until no adjacent pair has a rank. (A merge's result only takes part in merges of
        higher rank, so this equals GPT-2's "join every occurrence of the best pair" loop.)"""
        symbols, get_rank, unranked = list(word), self.ranks.get, len(self.ranks)
        ranks = [get_rank(pair, unranked) for pair in zip(symbols, symbols[1:])]  # ranks[i]: symbols i, i + 1
        while ranks:
            best = min(ranks)
            if best == unranked:
                break
            i = ranks.index(best)
            symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
            del ranks[i]
            if i > 0:
                ranks[i - 1] = get_rank((symbols[i - 1], symbols[i]), unranked)
            if i < len(ranks):
                ranks[i] = get_rank((symbols[i], symbols[i + 1]), unranked)
        return symbols

    def _framing(self) -> tuple[list[int], list[int]]:
        prefix = [self.bos_token_id] if self.add_bos_token and self.bos_token_id is not None else []
        suffix = [self.eos_token_id] if self.add_eos_token and self.eos_token_id is not None else []
        return prefix, suffix

    def _decode_ids(self, ids: list[int], skip_special_tokens: bool) -> str:
        data = bytearray()
        for index in ids:
            if skip_special_tokens and index in self._control_ids:
                continue
            token = self.id_to_token[index]
            if all(char in self._byte_decoder for char in token):
                data.extend(self._byte_decoder[char] for char in token)
            else:  # a token outside the byte alphabet stands for its own UTF-8 spelling
                data.extend(token.encode("utf-8"))
        return data.decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return (f"BPETokenizer(vocab_size={len(self)}, merges={len(self.ranks)}, "
                f"special_tokens={len(self.special_tokens)}, max_length={self.max_length})")
