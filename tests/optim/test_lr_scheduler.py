"""Learning-rate schedulers against PyTorch's, step by step (learning rates and, for OneCycleLR, momenta), and
their state dicts."""
import numpy as np
import pytest

import tinydl
from tinydl import nn, optim
from tinydl.optim import lr_scheduler

torch = pytest.importorskip("torch")


def twin_optimizers(kind="SGD", groups=2):
    """A tinydl and a PyTorch optimizer with the same groups (learning rates 0.1 and 0.03)."""
    rates = [0.1, 0.03][:groups]
    ours = [{"params": [nn.Parameter(tinydl.zeros(2))], "lr": lr} for lr in rates]
    theirs = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in rates]
    options = dict(momentum=0.9) if kind == "SGD" else {}
    return getattr(optim, kind)(ours, **options), getattr(torch.optim, kind)(theirs, **options)


SCHEDULES = [
    pytest.param("SGD", "StepLR", dict(step_size=3, gamma=0.5), 12, id="step"),
    pytest.param("SGD", "MultiStepLR", dict(milestones=[2, 5, 5, 9], gamma=0.3), 12, id="multistep"),
    pytest.param("SGD", "CosineAnnealingLR", dict(T_max=10, eta_min=0.001), 25, id="cosine"),
    pytest.param("SGD", "LambdaLR", dict(lr_lambda=lambda epoch: 0.95 ** epoch), 10, id="lambda"),
    pytest.param("SGD", "LambdaLR", dict(lr_lambda=[lambda e: 1 / (e + 1), lambda e: min(1.0, (e + 1) / 4)]), 10,
                 id="lambda-per-group"),
    pytest.param("SGD", "OneCycleLR", dict(max_lr=[1.0, 0.5], total_steps=20), 20, id="onecycle-sgd"),
    pytest.param("Adam", "OneCycleLR", dict(max_lr=3e-3, epochs=3, steps_per_epoch=7, pct_start=0.25,
                                            div_factor=10.0, final_div_factor=100.0), 21, id="onecycle-adam"),
    pytest.param("Adam", "OneCycleLR", dict(max_lr=0.01, total_steps=17, anneal_strategy="linear",
                                            three_phase=True), 17, id="onecycle-three-phase-linear"),
    pytest.param("SGD", "OneCycleLR", dict(max_lr=0.1, total_steps=10, cycle_momentum=False), 10,
                 id="onecycle-no-momentum"),
]


def momenta(optimizer):
    return [group["betas"][0] if "betas" in group else group["momentum"] for group in optimizer.param_groups]


@pytest.mark.parametrize("kind, name, options, steps", SCHEDULES)
def test_schedule_matches_pytorch(kind, name, options, steps):
    ours_opt, their_opt = twin_optimizers(kind)
    ours = getattr(lr_scheduler, name)(ours_opt, **options)
    theirs = getattr(torch.optim.lr_scheduler, name)(their_opt, **options)
    for _ in range(steps):
        np.testing.assert_allclose(ours.get_last_lr(), theirs.get_last_lr(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose([g["lr"] for g in ours_opt.param_groups],
                                   [g["lr"] for g in their_opt.param_groups], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(momenta(ours_opt), momenta(their_opt), rtol=1e-12)
        ours_opt.step(), their_opt.step()  # no gradients: nothing moves, but the order of calls is PyTorch's
        ours.step(), theirs.step()


def test_one_cycle_refuses_to_step_past_its_end():
    optimizer, _ = twin_optimizers()
    schedule = lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=3)
    for _ in range(3):
        schedule.step()
    with pytest.raises(ValueError, match="stepped 4 times, but total_steps is 3"):
        schedule.step()


def test_one_cycle_peaks_at_max_lr_and_ends_at_the_final_division():
    optimizer, _ = twin_optimizers(groups=1)
    schedule = lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, total_steps=101, pct_start=0.3, div_factor=20.0,
                                       final_div_factor=50.0)
    rates = [schedule.get_last_lr()[0]]
    for _ in range(100):
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert rates[0] == pytest.approx(0.2 / 20)
    assert max(rates) == pytest.approx(0.2, rel=1e-3)
    assert rates[-1] == pytest.approx(0.2 / 20 / 50)


def test_state_dict_round_trips_through_save(tmp_path):
    optimizer, _ = twin_optimizers("Adam")
    schedule = lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=30)
    for _ in range(7):
        schedule.step()
    tinydl.save({"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict()}, tmp_path / "s.ckpt")
    for _ in range(5):
        schedule.step()
    expected = schedule.get_last_lr()

    checkpoint = tinydl.load(tmp_path / "s.ckpt")
    fresh_optimizer, _ = twin_optimizers("Adam")
    fresh = lr_scheduler.OneCycleLR(fresh_optimizer, max_lr=0.01, total_steps=30)
    fresh_optimizer.load_state_dict(checkpoint["optimizer"])
    fresh.load_state_dict(checkpoint["scheduler"])
    for _ in range(5):
        fresh.step()
    assert fresh.get_last_lr() == pytest.approx(expected, rel=1e-15)


def test_lambda_state_dict_leaves_out_the_functions():
    optimizer, _ = twin_optimizers()
    state = lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0).state_dict()
    assert "lr_lambdas" not in state and state["last_epoch"] == 0 and state["base_lrs"] == [0.1, 0.03]


def test_resuming_needs_initial_lr():
    optimizer, _ = twin_optimizers()
    with pytest.raises(KeyError, match="no 'initial_lr'"):
        lr_scheduler.StepLR(optimizer, step_size=2, last_epoch=4)


def test_cosine_is_halfway_at_half_t_max_and_reaches_eta_min_at_t_max():
    optimizer, _ = twin_optimizers(groups=1)
    schedule = lr_scheduler.CosineAnnealingLR(optimizer, T_max=4, eta_min=0.01)
    schedule.step(), schedule.step()
    assert schedule.get_last_lr() == [pytest.approx((0.1 + 0.01) / 2)]
    schedule.step(), schedule.step()
    assert schedule.get_last_lr() == [pytest.approx(0.01)]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


@pytest.mark.parametrize("make, message", [
    (lambda o: lr_scheduler.StepLR(o, step_size=0), "step_size must be a positive int"),
    (lambda o: lr_scheduler.CosineAnnealingLR(o, T_max=0), "T_max must be a positive int"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1), "give total_steps, or both epochs and steps_per_epoch"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10, pct_start=1.5), "pct_start"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=0.1, total_steps=10, anneal_strategy="exp"), "anneal_strategy"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=[0.1], total_steps=10), "expected 2 values of max_lr"),
    (lambda o: lr_scheduler.LambdaLR(o, [lambda e: 1.0]), "expected 2 values of lr_lambda"),
])
def test_bad_arguments_are_named(make, message):
    optimizer, _ = twin_optimizers()
    with pytest.raises(ValueError, match=message):
        make(optimizer)


def test_one_cycle_momentum_needs_an_optimizer_with_momentum():
    class Plain(optim.Optimizer):
        def __init__(self, params):
            super().__init__(params, dict(lr=0.1))
    with pytest.raises(ValueError, match="cycle_momentum=False"):
        lr_scheduler.OneCycleLR(Plain([nn.Parameter(tinydl.zeros(1))]), max_lr=0.1, total_steps=5)
