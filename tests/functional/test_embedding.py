"""embedding against PyTorch (forward, weight gradient with repeated ids and padding, second derivatives), the
row-accumulation kernel against a loop, and bad ids."""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl.functional.embedding import accumulate_rows

torch = pytest.importorskip("torch")
from .torch_oracle import check_against_torch  # noqa: E402


@pytest.mark.parametrize("size, ids_shape", [(65, (32, 100)), (10, (7,)), (4, ()), (6, (2, 3, 4))])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_matches_torch(size, ids_shape, padding_idx):
    rng = np.random.default_rng([size, len(ids_shape)])
    ids = rng.integers(0, size, ids_shape)
    check_against_torch(rng, lambda weight: F.embedding(tinydl.tensor(ids), weight, padding_idx),
                        lambda weight: torch.nn.functional.embedding(torch.tensor(ids), weight, padding_idx),
                        [rng.standard_normal((size, 5))])


def test_padding_row_gets_no_gradient_but_is_looked_up():
    weight = tinydl.Tensor(np.arange(12, dtype=np.float32).reshape(4, 3), requires_grad=True)
    y = F.embedding(tinydl.tensor([[1, 0, 1], [3, 1, 0]]), weight, padding_idx=1)
    assert np.array_equal(y.detach().numpy()[0, 0], [3, 4, 5])
    y.sum().backward()
    assert np.array_equal(weight.grad.numpy(), [[2, 2, 2], [0, 0, 0], [0, 0, 0], [1, 1, 1]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_accumulate_rows_matches_a_loop(dtype):
    rng = np.random.default_rng(8)
    ids = rng.integers(0, 9, 300)
    rows = rng.standard_normal((300, 4)).astype(dtype)
    expected = np.zeros((9, 4))
    for i, row in zip(ids, rows):
        expected[i] += row
    table = accumulate_rows(ids, rows, 9)
    assert table.dtype == dtype
    np.testing.assert_allclose(table, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_float32_table_gives_float32_output_and_gradient():
    weight = tinydl.randn(20, 8, requires_grad=True)
    y = F.embedding(tinydl.randint(0, 20, (5, 6)), weight)
    y.sum().backward()
    assert y.dtype == np.float32 and weight.grad.dtype == np.float32


@pytest.mark.parametrize("ids, message", [([[0, 65, 3]], "id 65 is out of range for a table of 65 embeddings"),
                                          ([-1, 2], "id -1 is out of range for a table of 65 embeddings")])
def test_ids_out_of_range(ids, message):
    with pytest.raises(IndexError, match=f"^embedding: {message}"):
        F.embedding(tinydl.tensor(ids), tinydl.randn(65, 4))


@pytest.mark.parametrize("call, error, message", [
    (lambda: F.embedding(tinydl.tensor([0.0, 1.0]), tinydl.randn(3, 2)), TypeError, "integer dtype"),
    (lambda: F.embedding(tinydl.tensor([0]), tinydl.randn(3)), ValueError, r"2-D table.*\(3,\)"),
    (lambda: F.embedding(tinydl.tensor([0]), tinydl.randn(3, 2), padding_idx=3), ValueError,
     "padding_idx 3 is outside the table of 3 embeddings"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=f"^embedding: .*{message}"):
        call()
