"""DP-SGD training with real Opacus: exactness, empty batches, modes, cleanliness."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch
from opacus.optimizers import DPOptimizer
from torch import nn

from fedcurate.config import TrainConfig
from fedcurate.data.arrays import ArrayDataset, make_dataset
from fedcurate.privacy import GRAD_SAMPLE_MODES, DPPlan, DPSettings, create_accountant
from fedcurate.privacy.accountants import total_steps
from fedcurate.privacy.dp_sgd import poisson_batches, train_dp_sgd
from fedcurate.privacy.optimizer import FlatClipDPOptimizer

# Opacus' module hooks warn when the model's inputs need no gradient, as here.
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

TRAIN = TrainConfig(local_epochs=2, batch_size=8, lr=0.1, momentum=0.9, weight_decay=1e-3)


def dataset(n: int = 40, seed: int = 0) -> ArrayDataset:
    """Random 12-feature, 3-class data."""
    rng = np.random.default_rng(seed)
    return make_dataset(rng.normal(size=(n, 12)), rng.integers(0, 3, size=n), 3)


def model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3))


def settings(
    data: ArrayDataset,
    train: TrainConfig = TRAIN,
    *,
    sigma: float = 1.0,
    mode: str = "fast",
    clip: float = 0.5,
) -> DPSettings:
    plan = DPPlan(
        epsilon=8.0,
        delta=1e-5,
        max_grad_norm=clip,
        batch_size=train.batch_size,
        local_epochs=train.local_epochs,
        num_examples=len(data),
        planned_rounds=5,
        accountant="rdp",
        grad_sample_mode=mode,
    )
    return DPSettings(plan, sigma)


def seeded(seed: int = 7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def reference_clipped_sgd(
    net: nn.Module, data: ArrayDataset, s: DPSettings, generator: torch.Generator, mu: float
) -> nn.Module:
    """Textbook noise-free DP-SGD: per-example gradients one at a time, clipped, summed,
    averaged over the expected batch size, plus the FedProx gradient, then SGD."""
    x, y = data.tensors()
    params = list(net.parameters())
    anchor = [p.detach().clone() for p in params]
    optimizer = torch.optim.SGD(
        params, lr=TRAIN.lr, momentum=TRAIN.momentum, weight_decay=TRAIN.weight_decay
    )
    plan = s.plan
    for batch in poisson_batches(len(data), plan.sample_rate, plan.steps_per_round, generator):
        total = [torch.zeros_like(p) for p in params]
        for i in batch.tolist():
            loss = nn.functional.cross_entropy(net(x[i : i + 1]), y[i : i + 1])
            grads = torch.autograd.grad(loss, params)
            norm = float(torch.cat([g.flatten() for g in grads]).norm())
            factor = min(1.0, plan.max_grad_norm / (norm + 1e-6))
            total = [t + factor * g for t, g in zip(total, grads, strict=True)]
        for p, t, a in zip(params, total, anchor, strict=True):
            p.grad = t / plan.expected_batch_size + mu * (p.detach() - a)
        optimizer.step()
    return net


@pytest.mark.parametrize("mode", ["fast", "hooks"])
@pytest.mark.parametrize("mu", [0.0, 0.5])
def test_zero_noise_equals_plain_clipped_sgd(mode: str, mu: float) -> None:
    data = dataset()
    s = settings(data, sigma=0.0, mode=mode, clip=0.3)
    trained, expected = model(), model()
    train_dp_sgd(trained, data, TRAIN, s, generator=seeded(), proximal_mu=mu)
    reference_clipped_sgd(expected, data, s, seeded(), mu)
    for got, want in zip(trained.parameters(), expected.parameters(), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_every_mode_takes_the_same_noisy_steps() -> None:
    """Same seed, same Poisson batches and noise: the fast path is Opacus' hooks path."""
    data = dataset()
    weights = {}
    for mode in GRAD_SAMPLE_MODES:
        net = model()
        train_dp_sgd(net, data, TRAIN, settings(data, mode=mode), generator=seeded())
        weights[mode] = torch.cat([p.detach().flatten() for p in net.parameters()])
    assert not torch.equal(weights["hooks"], torch.cat([p.flatten() for p in model().parameters()]))
    for mode in GRAD_SAMPLE_MODES:
        torch.testing.assert_close(weights[mode], weights["hooks"], atol=1e-5, rtol=1e-4)


def test_flat_optimizer_matches_opacus_step_by_step() -> None:
    stock, flat = model(), model()

    def wrap(cls: type[DPOptimizer], net: nn.Module) -> DPOptimizer:
        sgd = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        return cls(
            sgd,
            noise_multiplier=1.3,
            max_grad_norm=0.5,
            expected_batch_size=7,
            generator=seeded(3),
        )

    optimizers = wrap(DPOptimizer, stock), wrap(FlatClipDPOptimizer, flat)
    per_sample = torch.Generator().manual_seed(0)
    for batch in (7, 0, 3, 12):  # includes an empty Poisson batch
        for a, b in zip(stock.parameters(), flat.parameters(), strict=True):
            gradients = 3 * torch.randn(batch, *a.shape, generator=per_sample)
            a.grad_sample = gradients  # type: ignore[attr-defined]
            b.grad_sample = gradients.clone()  # type: ignore[attr-defined]
        for optimizer in optimizers:
            assert optimizer.pre_step()
        for a, b in zip(stock.parameters(), flat.parameters(), strict=True):
            torch.testing.assert_close(b.grad, a.grad, atol=1e-6, rtol=1e-5)
        for optimizer in optimizers:
            optimizer.original_optimizer.step()
            optimizer.zero_grad(set_to_none=True)


def test_flat_optimizer_refuses_a_step_without_new_gradients() -> None:
    net = model()
    optimizer = FlatClipDPOptimizer(
        torch.optim.SGD(net.parameters(), lr=0.1),
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        expected_batch_size=4,
    )
    for p in net.parameters():
        p.grad_sample = torch.ones(2, *p.shape)  # type: ignore[attr-defined]
    optimizer.pre_step()
    with pytest.raises(ValueError, match="per-sample gradients are missing"):
        optimizer.pre_step()


@pytest.mark.parametrize("mode", GRAD_SAMPLE_MODES)
def test_empty_poisson_batches_do_not_crash(mode: str) -> None:
    data = dataset(n=60)
    train = TrainConfig(local_epochs=1, batch_size=1, lr=0.05, momentum=0.0)
    s = settings(data, train, mode=mode)  # q = 1/60 over 60 steps: ~37 % empty
    accountant = create_accountant("rdp")
    net = model()
    result = train_dp_sgd(net, data, train, s, generator=seeded(), accountant=accountant)
    assert result.empty_batches > 0
    assert result.steps == s.plan.steps_per_round == total_steps(accountant.history)
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_model_comes_back_plain_and_trainable_again() -> None:
    data = dataset()
    net = model()
    keys = list(net.state_dict())
    for mode in GRAD_SAMPLE_MODES:
        train_dp_sgd(net, data, TRAIN, settings(data, mode=mode), generator=seeded())
        assert list(net.state_dict()) == keys
        assert not any(k.startswith("_module") for k in net.state_dict())
        for p in net.parameters():
            assert not {"grad_sample", "summed_grad", "_forward_counter"} & set(vars(p))
        assert not any(m._forward_hooks or m._backward_hooks for m in net.modules())


def test_runs_reproduce_and_depend_on_the_generator() -> None:
    data = dataset()
    runs = []
    for seed in (1, 1, 2):
        net = model()
        train_dp_sgd(net, data, TRAIN, settings(data), generator=seeded(seed))
        runs.append(net.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_accountant_composes_every_step_at_the_fixed_settings() -> None:
    data = dataset()
    s = settings(data, sigma=1.7)
    accountant = create_accountant("rdp")
    for _ in range(3):
        train_dp_sgd(model(), data, TRAIN, s, generator=seeded(), accountant=accountant)
    assert accountant.history == [(1.7, s.plan.sample_rate, 3 * s.plan.steps_per_round)]


def test_settings_planned_for_other_data_are_rejected() -> None:
    data = dataset()
    s = settings(data)
    with pytest.raises(ValueError, match="planned for"):
        train_dp_sgd(model(), data, replace(TRAIN, batch_size=16), s, generator=seeded())
    with pytest.raises(ValueError, match="planned for"):
        train_dp_sgd(model(), dataset(n=41), TRAIN, s, generator=seeded())


def test_cnn_with_group_norm_trains_in_fast_mode() -> None:
    rng = np.random.default_rng(0)
    data = make_dataset(rng.normal(size=(24, 1, 8, 8)), rng.integers(0, 3, size=24), 3)
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.GroupNorm(2, 4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 3),
    )
    before = copy.deepcopy(cnn.state_dict())
    result = train_dp_sgd(cnn, data, TRAIN, settings(data), generator=seeded())
    assert result.steps == 2 * 3
    assert any(not torch.equal(before[k], v) for k, v in cnn.state_dict().items())
