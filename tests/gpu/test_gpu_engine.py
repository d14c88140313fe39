"""A GPU-friendly engine: a training step never waits for the GPU unless the user asks for a value; DataLoader
copies each batch to the GPU in one transfer from pinned memory; tinydl.cuda reports CuPy's memory pool;
manual_seed seeds the GPU generator. These run on real CuPy too, except where they read the double's counters."""
import numpy as np
import pytest

import tinydl
import tinydl.functional as F
from tinydl import nn, optim
from tinydl.data import DataLoader, TensorDataset
from tinydl.nn.utils import clip_grad_norm_

from ._gpu import no_synchronisation, on_double, requires_gpu

pytestmark = requires_gpu


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(11, 16)
        self.layer = nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.1, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.head = nn.Linear(16, 11)

    def forward(self, ids):
        return self.head(self.norm(self.layer(self.embed(ids), is_causal=True)))


@pytest.mark.parametrize("make_optimizer", [lambda p: optim.AdamW(p, lr=1e-3),
                                            lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)],
                         ids=["adamw", "sgd"])
def test_a_training_step_never_synchronises(make_optimizer):
    tinydl.manual_seed(0)
    model = TinyTransformer().to("cuda")
    opt = make_optimizer(model.parameters())
    schedule = optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=10)
    ids = tinydl.randint(0, 11, (4, 7), device="cuda")
    for _ in range(2):  # the second step runs with the optimizer state in place
        with no_synchronisation():
            logits = model(ids[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, 11), ids[:, 1:].reshape(-1), label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            norm = clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            schedule.step()
    assert np.isfinite(loss.item()) and np.isfinite(norm.item())


def test_a_convolutional_step_never_synchronises():
    tinydl.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 4 * 4, 10)).to("cuda")
    opt = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x, y = tinydl.randn(2, 3, 8, 8, device="cuda"), tinydl.randint(0, 10, (2,), device="cuda")
    with no_synchronisation():
        loss = nn.CrossEntropyLoss()(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_a_recurrent_step_never_synchronises(cell):
    tinydl.manual_seed(0)
    rnn = getattr(nn, cell)(5, 6, num_layers=2, batch_first=True).to("cuda")
    head = nn.Linear(6, 3).to("cuda")
    opt = optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    x, y = tinydl.randn(2, 4, 5, device="cuda"), tinydl.randint(0, 3, (8,), device="cuda")
    with no_synchronisation():
        output, _ = rnn(x)
        loss = F.cross_entropy(head(output).reshape(-1, 3), y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_([*rnn.parameters(), *head.parameters()], 0.5)
        opt.step()


def test_reading_a_value_is_a_synchronisation_the_user_asks_for():
    import cupyx
    loss = tinydl.ones(3, device="cuda").sum()
    with pytest.raises(cupyx.DeviceSynchronized):
        with no_synchronisation():
            loss.item()


# ------------------------------------------------------------------------------------------------ DataLoader
@pytest.mark.skipif("not on_double()", reason="counts transfers on the CuPy double")
def test_dataloader_copies_each_batch_to_the_gpu_once_from_pinned_memory():
    import cupy
    images = np.arange(10 * 3 * 4 * 4, dtype=np.float32).reshape(10, 3, 4, 4)
    labels = np.arange(10) % 3
    loader = DataLoader(TensorDataset(images, labels), batch_size=4, device="cuda", prefetch=0)
    cupy._double.counters.reset()
    batches = list(loader)
    assert cupy._double.counters.host_to_device == len(batches) == 3
    assert cupy._double.counters.pinned_host_to_device == 3
    got_images = np.concatenate([b[0].cpu().numpy() for b in batches])
    got_labels = np.concatenate([b[1].cpu().numpy() for b in batches])
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert batches[0][0].dtype == np.float32 and batches[0][1].dtype == np.int64
    assert batches[0][0].device == "cuda:0"


@pytest.mark.parametrize("device, prefetch", [("cuda", 0), ("cuda", 2), ("cuda:1", 2)])
def test_dataloader_on_the_gpu_gives_what_it_gives_on_the_cpu(device, prefetch):
    if tinydl.Device(device).index >= tinydl.cuda.device_count():
        pytest.skip("needs a second GPU")
    rng = np.random.default_rng(0)
    data = TensorDataset(rng.standard_normal((9, 2, 3)).astype(np.float32), rng.integers(0, 4, 9),
                         rng.random(9) > 0.5)
    on_cpu = list(DataLoader(data, batch_size=4, shuffle=True, seed=3))
    on_gpu = list(DataLoader(data, batch_size=4, shuffle=True, seed=3, device=device, prefetch=prefetch))
    for cpu_batch, gpu_batch in zip(on_cpu, on_gpu, strict=True):
        for a, b in zip(cpu_batch, gpu_batch, strict=True):
            assert b.device == tinydl.Device(device) and b.data.device.id == b.device.index
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(b.cpu().numpy(), a.numpy())


# ------------------------------------------------------------------------------------------------ tinydl.cuda
def test_memory_statistics_follow_cupys_pool():
    import cupy
    tinydl.cuda.empty_cache()
    before = tinydl.cuda.memory_allocated()
    assert before == cupy.get_default_memory_pool().used_bytes()
    tinydl.cuda.reset_peak_memory_stats()
    big = tinydl.zeros(1024, 256, device="cuda")  # 1 MiB
    assert tinydl.cuda.memory_allocated() - before >= 1 << 20
    del big
    assert tinydl.cuda.memory_allocated() == before
    assert tinydl.cuda.max_memory_allocated() - before >= 1 << 20
    cached = tinydl.cuda.memory_reserved() - tinydl.cuda.memory_allocated()
    assert cached >= 1 << 20  # the freed block stays cached in the pool ...
    tinydl.cuda.empty_cache()
    assert tinydl.cuda.memory_reserved() - tinydl.cuda.memory_allocated() <= cached - (1 << 20)  # ... until now
    tinydl.cuda.reset_peak_memory_stats()
    assert tinydl.cuda.max_memory_allocated() == tinydl.cuda.memory_allocated()
    tinydl.cuda.synchronize()
    assert tinydl.cuda.device_count() >= 1 and tinydl.cuda.is_available()


def test_cuda_device_context_makes_a_gpu_current():
    with tinydl.cuda.device("cuda:0") as current:
        assert current == "cuda:0" and tinydl.cuda.current_device() == 0
    with pytest.raises(ValueError, match="tinydl.cuda"):
        tinydl.cuda.device("cpu")


def test_manual_seed_seeds_the_gpu_generator():
    tinydl.manual_seed(7)
    first = tinydl.randn(5, device="cuda").tolist(), tinydl.rand(5, device="cuda").tolist()
    tinydl.manual_seed(7)
    assert (tinydl.randn(5, device="cuda").tolist(), tinydl.rand(5, device="cuda").tolist()) == first
