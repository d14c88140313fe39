"""Every nn module, the optimizers and schedulers, save/load, gradcheck and one training step of each example
model give on the GPU what they give on the CPU (float64, so the comparison is to rounding)."""
import inspect

import numpy as np
import pytest
from example_scripts import load_example

import tinydl
import tinydl.functional as F
from tinydl import nn, optim
from tinydl.gradcheck import gradcheck
from tinydl.kernels import attention as attention_kernels
from tinydl.kernels import conv as conv_kernels

from ._gpu import requires_gpu

pytestmark = requires_gpu
rng = np.random.default_rng(0)


def floats(*shape):
    return rng.standard_normal(shape)


def ids(high, *shape):
    return rng.integers(0, high, shape)


def layer():
    return nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)


# (module factory, input arrays); every public Module class appears (checked below)
MODULES = {
    "Linear": (lambda: nn.Linear(4, 3), [floats(2, 4)]),
    "Conv2d": (lambda: nn.Conv2d(2, 3, 3, padding=1, stride=2), [floats(2, 2, 5, 5)]),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), [floats(2, 2, 4, 4)]),
    "AvgPool2d": (lambda: nn.AvgPool2d(3, stride=2, padding=1), [floats(2, 2, 5, 5)]),
    "AdaptiveAvgPool2d": (lambda: nn.AdaptiveAvgPool2d(1), [floats(2, 2, 4, 4)]),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(3), [floats(4, 3)]),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(2), [floats(3, 2, 2, 2)]),
    "LayerNorm": (lambda: nn.LayerNorm(4), [floats(2, 4)]),
    "RMSNorm": (lambda: nn.RMSNorm(4), [floats(2, 4)]),
    "SwiGLU": (lambda: nn.SwiGLU(4, 6), [floats(2, 3, 4)]),
    "Dropout": (lambda: nn.Dropout(0.0), [floats(2, 4)]),
    "Embedding": (lambda: nn.Embedding(7, 3, padding_idx=0), [ids(7, 2, 5)]),
    "Flatten": (lambda: nn.Flatten(), [floats(2, 2, 3)]),
    "GELU": (lambda: nn.GELU(), [floats(2, 4)]),
    "ReLU": (lambda: nn.ReLU(), [floats(2, 4)]),
    "LeakyReLU": (lambda: nn.LeakyReLU(0.1), [floats(2, 4)]),
    "Sigmoid": (lambda: nn.Sigmoid(), [floats(2, 4)]),
    "Tanh": (lambda: nn.Tanh(), [floats(2, 4)]),
    "Softmax": (lambda: nn.Softmax(dim=1), [floats(2, 4)]),
    "LogSoftmax": (lambda: nn.LogSoftmax(dim=1), [floats(2, 4)]),
    "Identity": (lambda: nn.Identity(), [floats(2, 4)]),
    "RNN": (lambda: nn.RNN(3, 4, num_layers=2, batch_first=True), [floats(2, 5, 3)]),
    "LSTM": (lambda: nn.LSTM(3, 4, batch_first=True), [floats(2, 5, 3)]),
    "GRU": (lambda: nn.GRU(3, 4, bidirectional=True), [floats(5, 2, 3)]),
    "RNNCell": (lambda: nn.RNNCell(3, 4), [floats(2, 3)]),
    "LSTMCell": (lambda: nn.LSTMCell(3, 4), [floats(2, 3)]),
    "GRUCell": (lambda: nn.GRUCell(3, 4), [floats(2, 3)]),
    "MultiheadAttention": (lambda: nn.MultiheadAttention(8, 2, batch_first=True), [floats(2, 5, 8)] * 3),
    "TransformerEncoderLayer": (layer, [floats(2, 5, 8)]),
    "TransformerEncoder": (lambda: nn.TransformerEncoder(layer(), 2, norm=nn.LayerNorm(8)), [floats(2, 5, 8)]),
    "TransformerDecoderLayer": (lambda: nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                                [floats(2, 4, 8), floats(2, 5, 8)]),
    "LearnedPositionalEncoding": (lambda: nn.LearnedPositionalEncoding(6, 4, batch_first=True), [floats(2, 5, 4)]),
    "SinusoidalPositionalEncoding": (lambda: nn.SinusoidalPositionalEncoding(4, batch_first=True),
                                     [floats(2, 5, 4)]),
    "CrossEntropyLoss": (lambda: nn.CrossEntropyLoss(label_smoothing=0.1), [floats(4, 3), ids(3, 4)]),
    "NLLLoss": (lambda: nn.NLLLoss(), [floats(4, 3), ids(3, 4)]),
    "MSELoss": (lambda: nn.MSELoss(), [floats(4, 3), floats(4, 3)]),
    "Sequential": (lambda: nn.Sequential(nn.Linear(4, 4), nn.Tanh()), [floats(2, 4)]),
    "ModuleList": (lambda: nn.ModuleList([nn.Linear(4, 4)]), [floats(2, 4)]),
    "ModuleDict": (lambda: nn.ModuleDict({"a": nn.Linear(4, 4)}), [floats(2, 4)]),
}
CONTAINERS = {"ModuleList": lambda m, x: m[0](x), "ModuleDict": lambda m, x: m["a"](x)}


def test_every_public_module_is_covered():
    public = {name for name, value in vars(nn).items()
              if inspect.isclass(value) and issubclass(value, nn.Module) and value is not nn.Module}
    assert public <= set(MODULES), sorted(public - set(MODULES))


def _run(name, device):
    tinydl.manual_seed(0)
    factory, arrays = MODULES[name]
    module = factory().double().to(device)
    inputs = [tinydl.tensor(a, device=device, requires_grad=a.dtype.kind == "f" and i == 0)
              for i, a in enumerate(arrays)]
    output = CONTAINERS[name](module, *inputs) if name in CONTAINERS else module(*inputs)
    outputs = [o for o in (output if isinstance(output, tuple) else (output,)) if isinstance(o, tinydl.Tensor)]
    outputs = [o for o in outputs if o.requires_grad]
    tinydl.autograd.backward(outputs, [tinydl.ones_like(o) * (k + 1) for k, o in enumerate(outputs)])
    found = [o.detach().cpu().numpy() for o in outputs]
    found += [t.grad.cpu().numpy() for t in inputs if t.grad is not None]
    found += [p.grad.cpu().numpy() for p in module.parameters() if p.grad is not None]
    found += [b.cpu().numpy() for b in module.buffers()]
    return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_forward_and_gradients_match_the_cpu(name):
    cpu, gpu = _run(name, "cpu"), _run(name, "cuda")
    assert len(cpu) == len(gpu)
    for a, b in zip(gpu, cpu):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("make", [
    lambda o: optim.lr_scheduler.StepLR(o, 2, gamma=0.5), lambda o: optim.lr_scheduler.MultiStepLR(o, [1, 3]),
    lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 4), lambda o: optim.lr_scheduler.LambdaLR(o, lambda e: 0.9 ** e),
    lambda o: optim.lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=5)],
    ids=["step", "multistep", "cosine", "lambda", "onecycle"])
def test_schedulers_drive_a_gpu_optimizer_as_a_cpu_one(make):
    results = []
    for device in ("cpu", "cuda"):
        tinydl.manual_seed(1)
        model = nn.Linear(3, 2).double().to(device)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        schedule = make(opt)
        x = tinydl.tensor(np.linspace(-1, 1, 12).reshape(4, 3), device=device)
        for _ in range(4):
            opt.zero_grad()
            (model(x) ** 2).mean().backward()
            opt.step()
            schedule.step()
        results.append([p.detach().cpu().numpy() for p in model.parameters()] + [opt.param_groups[0]["lr"]])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_save_and_load_between_gpu_and_cpu(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to("cuda")
    tinydl.save(model.state_dict(), tmp_path / "gpu.ckpt")
    on_cpu = tinydl.load(tmp_path / "gpu.ckpt")
    on_gpu = tinydl.load(tmp_path / "gpu.ckpt", device="cuda")
    for name, value in model.state_dict().items():
        assert on_cpu[name].device == "cpu" and on_gpu[name].device == "cuda:0"
        np.testing.assert_array_equal(on_cpu[name].numpy(), value.cpu().numpy())
        np.testing.assert_array_equal(on_gpu[name].cpu().numpy(), value.cpu().numpy())
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    fresh.load_state_dict(on_cpu)
    tinydl.save(fresh.state_dict(), tmp_path / "cpu.ckpt")
    model.load_state_dict(tinydl.load(tmp_path / "cpu.ckpt"))
    assert all(p.device == "cuda:0" for p in model.parameters())


def test_gradcheck_on_a_gpu_tensor():
    x = tinydl.tensor(floats(3, 4), device="cuda", requires_grad=True)
    w = tinydl.tensor(floats(4, 2), device="cuda", requires_grad=True)
    assert gradcheck(lambda a, b: F.log_softmax(F.gelu(a @ b), dim=1), (x, w))


# ---------------------------------------------------------------------------------------- the example models
def cnn():
    return load_example("cnn_cifar10").Net(), (floats(2, 3, 32, 32).astype(np.float32),), ids(10, 2)


def char_rnn():
    module = load_example("char_rnn")
    recipe = module.Recipe(embedding_dim=8, hidden_size=12)
    model = module.CharRNN(11, "lstm", recipe)
    return _Logits(model), (ids(11, 2, 6),), ids(11, 2, 6)


def gpt():
    load_example("char_rnn")
    module = load_example("gpt_char")
    recipe = module.Recipe(d_model=16, num_heads=2, num_layers=2, dim_feedforward=32, context=8)
    return module.GPT(11, recipe), (ids(11, 2, 6),), ids(11, 2, 6)


def bert():
    module = load_example("bert_classifier")
    recipe = module.Recipe(d_model=16, num_heads=2, num_layers=1, dim_feedforward=32, max_length=8, dropout=0.0)
    padding = np.zeros((2, 6), dtype=bool)
    padding[1, 4:] = True
    return module.BertClassifier(20, 3, recipe, "mean"), (ids(20, 2, 6), padding), ids(3, 2)


class _Logits(nn.Module):
    """The char model returns (logits, state); the step needs the logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids)[0]


@pytest.mark.parametrize("build, gpu", [(cnn, "cuda"), (char_rnn, "cuda"), (gpt, "cuda"), (bert, "cuda"),
                                        (gpt, "cuda:1")],
                         ids=["cnn_cifar10", "char_rnn", "gpt_char", "bert_classifier", "gpt_char-second-gpu"])
def test_one_training_step_of_each_example_model_matches_the_cpu(build, gpu, monkeypatch):
    if tinydl.Device(gpu).index >= tinydl.cuda.device_count():
        pytest.skip("needs a second GPU")
    # the same convolution algorithm on both devices (the GPU's: im2col), so that both sum in the same order: after
    # one Adam step, whose update is about lr for any gradient however small, rounding-size differences of the
    # CPU's planar layout or Winograd would show
    monkeypatch.setattr(conv_kernels, "PLANAR_FORWARD_CHANNELS", 0)
    monkeypatch.setattr(conv_kernels, "PLANAR_WEIGHT_GRAD_CHANNELS", 0)
    monkeypatch.setattr(conv_kernels, "_algorithm", "im2col")
    # likewise the attention softmax as the GPU computes it: shifted by the row maximum, rows summed by sum()
    monkeypatch.setattr(attention_kernels, "exp_needs_no_shift", lambda scores, additive_mask=None: False)
    monkeypatch.setattr(attention_kernels, "row_sums", lambda x: x.sum(axis=-1, keepdims=True))
    tinydl.manual_seed(0)
    model, inputs, target = build()
    results = []
    for device in ("cpu", gpu):
        replica = build()[0]
        replica.load_state_dict(model.state_dict())
        replica.to(device)
        opt = optim.AdamW(replica.parameters(), lr=1e-3)
        logits = replica(*(tinydl.tensor(a, device=device) for a in inputs))
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tinydl.tensor(target.reshape(-1),
                                                                                   device=device))
        loss.backward()
        nn.utils.clip_grad_norm_(replica.parameters(), 1.0)
        opt.step()
        assert all(p.device == device for p in replica.parameters())
        results.append([loss.item()] + [p.detach().cpu().numpy() for p in replica.parameters()])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
