"""Modules and optimizers on the GPU give what they give on the CPU: moving a model with .to("cuda"), a training
step (forward, backward, Adam/SGD update done with CuPy in place), initialisation from the GPU generator, state
dicts loaded from NumPy onto the GPU and saved from it. Runs on the GPU where CuPy and a GPU are present, on the
CuPy double (tests/cupy_double) elsewhere."""
import numpy as np
import pytest

import tinydl
from tinydl import nn, optim
from tinydl.nn.utils import clip_grad_norm_

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not tinydl.is_available("cuda"), reason="needs CuPy and an NVIDIA GPU")]


def small_model():
    return nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Dropout(0.0), nn.Linear(8, 3))


@pytest.mark.parametrize("make_optimizer", [lambda p: optim.Adam(p, lr=0.01, weight_decay=0.1, amsgrad=True),
                                            lambda p: optim.AdamW(p, lr=0.01),
                                            lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True)])
def test_training_steps_on_the_gpu_match_the_cpu(make_optimizer):
    cpu_model = small_model().double()
    gpu_model = small_model().double()
    gpu_model.load_state_dict(cpu_model.state_dict())
    assert gpu_model.to("cuda") is gpu_model
    assert all(p.device == "cuda:0" for p in gpu_model.parameters())
    cpu_opt, gpu_opt = make_optimizer(cpu_model.parameters()), make_optimizer(gpu_model.parameters())
    rng = np.random.default_rng(0)
    for _ in range(3):
        x, target = rng.standard_normal((5, 6)), rng.integers(0, 3, 5)
        for model, opt, device in ((cpu_model, cpu_opt, "cpu"), (gpu_model, gpu_opt, "cuda")):
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(model(tinydl.tensor(x, device=device)), tinydl.tensor(target,
                                                                                                device=device))
            loss.backward()
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    for (name, mine), (_, theirs) in zip(gpu_model.state_dict().items(), cpu_model.state_dict().items()):
        assert mine.device == "cuda:0"
        np.testing.assert_allclose(mine.cpu().numpy(), theirs.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_gpu_optimizer_state_round_trips_through_save(tmp_path):
    model = small_model().to("cuda")
    opt = optim.Adam(model.parameters())
    model(tinydl.randn(4, 6, device="cuda")).sum().backward()
    opt.step()
    tinydl.save(opt.state_dict(), tmp_path / "opt.ckpt")
    fresh = optim.Adam(model.parameters())
    fresh.load_state_dict(tinydl.load(tmp_path / "opt.ckpt"))
    state = fresh.state[next(iter(model.parameters()))]
    assert type(state["exp_avg"]).__module__.startswith("cupy") and state["step"] == 1


def test_layers_initialise_on_the_gpu_from_the_gpu_generator():
    tinydl.manual_seed(3)
    first = nn.Linear(20, 30, device="cuda").weight
    tinydl.manual_seed(3)
    second = nn.Linear(20, 30, device="cuda").weight
    assert first.device == "cuda:0"
    np.testing.assert_array_equal(first.detach().cpu().numpy(), second.detach().cpu().numpy())
    assert np.abs(first.detach().cpu().numpy()).max() <= 1 / np.sqrt(20)
