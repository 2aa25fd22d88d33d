"""The P-SNN and its neuron semantics: shapes, parameter count, snnTorch equivalence, chip switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2gesture.models.network import PSNN, PSNNConfig, plan_stages
from s2gesture.models.semantics import SEMANTICS, delay_one_tick, get_semantics, lif_run, lif_run_autograd

TINY = PSNNConfig(input_size=(16, 16), channels=(4, 4, 4), hidden=16)


def _spikes(seed: int, shape: tuple[int, ...], p: float = 0.2) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy((rng.random(shape) < p).astype(np.float32))


def _gain(model: PSNN, gain: float) -> PSNN:
    with torch.no_grad():
        for layer in model.weights.values():
            layer.weight.mul_(gain)
    return model


def test_default_network_has_the_papers_parameter_count() -> None:
    """At default widths the P-SNN has 25,504 weights and the shapes of MODEL.md."""
    model = PSNN()
    assert model.n_parameters() == 25_504
    shapes = {s.name: s.shape for s in plan_stages(model.cfg)}
    assert shapes["lif1"] == (16, 15, 15)
    assert shapes["lif3"] == (8, 7, 7)
    assert shapes["flat"] == (72,)
    assert shapes["lif5"] == (11,)
    assert all(not hasattr(layer, "bias") or layer.bias is None for layer in model.weights.values())


def test_lif_run_matches_snntorch_leaky_spike_for_spike() -> None:
    """In snnTorch semantics lif_run reproduces snntorch.Leaky (subtract reset, beta 0.93) exactly."""
    import snntorch as snn
    from snntorch import surrogate

    rng = np.random.default_rng(1)
    cur = torch.from_numpy(rng.normal(0.3, 0.9, size=(80, 4, 9)).astype(np.float32))
    leaky = snn.Leaky(
        beta=0.93, threshold=1.0, reset_mechanism="subtract", spike_grad=surrogate.fast_sigmoid(25)
    )
    mem = leaky.init_leaky()
    ref = []
    for t in range(cur.shape[0]):
        spk, mem = leaky(cur[t], mem)
        ref.append(spk)
    mine = lif_run(cur, beta=0.93, threshold=1.0, same_tick_reset=False)
    assert torch.equal(torch.stack(ref), mine)
    assert mine.sum() > 20


@pytest.mark.parametrize("same_tick_reset", [False, True])
@pytest.mark.parametrize("input_delay", [False, True])
def test_compiled_lif_equals_the_autograd_loop(same_tick_reset: bool, input_delay: bool) -> None:
    """The compiled LIF kernel gives the autograd loop's spikes exactly, and its gradients, on channels-last input."""
    rng = np.random.default_rng(7)
    shape = (90, 3, 5, 4, 6)  # [T, B, C, H, W]
    base = torch.from_numpy(rng.normal(0.3, 0.8, size=shape).astype(np.float32))
    beta = torch.from_numpy(np.linspace(0.8, 0.99, 5, dtype=np.float32)).reshape(5, 1, 1)
    upstream = torch.from_numpy(rng.normal(size=shape).astype(np.float32))
    results = []
    for compiled in (False, True):
        flat = base.reshape(90 * 3, 5, 4, 6).contiguous(memory_format=torch.channels_last)
        cur = flat.reshape(shape).requires_grad_()
        thr = torch.tensor(1.1, requires_grad=True)
        if compiled:
            out = lif_run(cur, beta=beta, threshold=thr, same_tick_reset=same_tick_reset, input_delay=input_delay)
        else:
            src = delay_one_tick(cur) if input_delay else cur
            out = lif_run_autograd(src, beta=beta, threshold=thr, same_tick_reset=same_tick_reset)
        (out * upstream).sum().backward()
        assert cur.grad is not None and thr.grad is not None
        results.append((out.detach(), cur.grad, thr.grad))
    (ref, g_ref, t_ref), (got, g_got, t_got) = results
    assert torch.equal(ref, got)
    assert 0.05 < float(ref.mean()) < 0.6  # neither silent nor saturated: the comparison means something
    assert torch.allclose(g_ref, g_got, rtol=1e-5, atol=1e-6)
    assert torch.allclose(t_ref, t_got, rtol=1e-4)
    if input_delay:
        assert float(g_got[-1].abs().sum()) == 0.0  # the last tick's input never arrives


def test_same_tick_reset_follows_the_chip_update() -> None:
    """Chip reset: v = beta*v + in; spike if v > thr; v -= thr in the same tick (SPINNAKER2.md section 5)."""
    rng = np.random.default_rng(2)
    cur = rng.normal(0.4, 1.0, size=(60, 7)).astype(np.float32)
    v = np.zeros(7, dtype=np.float32)
    expected = []
    for t in range(60):
        v = np.float32(0.93) * v + cur[t]
        s = (v > 1.0).astype(np.float32)
        v = v - s * np.float32(1.0)
        expected.append(s)
    got = lif_run(torch.from_numpy(cur), beta=0.93, threshold=1.0, same_tick_reset=True)
    assert np.array_equal(got.numpy(), np.stack(expected))


def test_latency_semantics_delays_the_output_by_one_tick_per_projection() -> None:
    """With latency only, the output is the snnTorch output shifted by the 5 projections."""
    torch.manual_seed(0)
    model = _gain(PSNN(TINY), 3.0)
    x = _spikes(3, (30, 2, 2, 16, 16))
    with torch.no_grad():
        plain = model(x, "snntorch")
        late = model(x, "latency")
    assert model.n_projections == 5
    assert late.shape[0] == 35
    assert plain.sum() > 0
    assert torch.equal(late[5:], plain)
    assert late[:5].sum() == 0


def test_semantics_switches_change_the_result() -> None:
    """Reset timing alone changes spike trains of a busy network (the switch is real)."""
    torch.manual_seed(0)
    model = _gain(PSNN(TINY), 4.0)
    x = _spikes(4, (40, 1, 2, 16, 16), p=0.4)
    with torch.no_grad():
        _, a = model(x, "snntorch", record=True)
        _, b = model(x, "reset", record=True)
    assert not torch.equal(a["lif1"], b["lif1"])


def test_unknown_semantics_and_bad_input_are_named() -> None:
    """Unknown semantics list the known ones; a wrong input shape names the expected one."""
    with pytest.raises(ValueError, match="chip"):
        get_semantics("loihi")
    assert set(SEMANTICS) == {"snntorch", "chip", "latency", "reset"}
    with pytest.raises(ValueError, match=r"\(2, 16, 16\)"):
        PSNN(TINY)(torch.zeros(5, 1, 2, 32, 32))


def test_delay_one_tick_shifts_and_keeps_length() -> None:
    """delay_one_tick moves every tick one later and drops the last."""
    x = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(delay_one_tick(x), torch.tensor([[0.0, 0.0], [0.0, 1.0], [2.0, 3.0]]))


def test_surrogate_gradient_reaches_the_first_layer() -> None:
    """Backpropagation through time gives a non-zero gradient to conv1 in both semantics."""
    for sem in ("snntorch", "chip"):
        torch.manual_seed(0)
        model = _gain(PSNN(TINY), 3.0)
        out = model(_spikes(5, (20, 2, 2, 16, 16)), sem)
        out.sum().backward()
        assert model.weights["conv1"].weight.grad.abs().sum() > 0
