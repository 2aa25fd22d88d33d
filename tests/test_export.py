"""NIR export: graph structure, card, identity translation, round trip through read_model and the emulator."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from s2gesture.daemon.backends import get_backend, options_from_card
from s2gesture.daemon.card import read_model
from s2gesture.daemon.errors import ModelCardError
from s2gesture.models.export import export_model, make_card, to_nir_graph
from s2gesture.models.network import PSNN, PSNNConfig
from s2gesture.models.quantize import quantize_ptq

SMALL = PSNNConfig(channels=(4, 4, 4), hidden=16)


def _int_model(seed: int = 0, cfg: PSNNConfig = SMALL) -> tuple[PSNN, dict]:
    torch.manual_seed(seed)
    model = PSNN(cfg)
    with torch.no_grad():
        for layer in model.weights.values():
            layer.weight.mul_(3.0)
    return quantize_ptq(model, 100.0)


def _input(seed: int, T: int = 40, p: float = 0.03) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((T, 2, 32, 32)) < p).astype(np.uint8)


def test_graph_has_the_p_snn_nodes_in_order(tmp_path) -> None:
    """The exported graph is Input, Conv2d, LIF, ..., SumPool2d, Flatten, Affine, LIF, Output with integer weights."""
    qmodel, record = _int_model()
    graph = to_nir_graph(qmodel)
    kinds = [type(graph.nodes[dst]).__name__ for _, dst in graph.edges]
    assert kinds == [
        "Conv2d", "LIF", "Conv2d", "LIF", "SumPool2d", "Conv2d", "LIF", "SumPool2d",
        "Flatten", "Affine", "LIF", "Affine", "LIF", "Output",
    ]  # fmt: skip
    w = graph.nodes["conv2"].weight
    assert np.array_equal(w, np.rint(w)) and np.abs(w).max() == 127
    assert graph.nodes["lif1"].v_threshold[0, 0, 0] == pytest.approx(record["thresholds"]["conv1"], rel=1e-6)
    # FORWARD integrator with dt = 1e-4: alpha_decay = 1 - dt/tau = beta
    lif = graph.nodes["lif4"]
    assert 1 - 1e-4 / float(lif.tau[0]) == pytest.approx(0.93, abs=1e-6)


def test_export_refuses_float_weights() -> None:
    """A float (unquantized) model is refused with a message that says to quantize first."""
    with pytest.raises(ValueError, match="quantize"):
        to_nir_graph(PSNN(SMALL))


def test_round_trip_gives_identical_emulator_outputs(tmp_path) -> None:
    """export -> read_model -> emulator equals the emulator on the in-memory graph, and the torch chip simulator."""
    qmodel, record = _int_model(1)
    path = tmp_path / "m.nir"
    written = export_model(qmodel, path, make_card("t", record, semantics="snntorch"))
    loaded = read_model(path)
    assert loaded.hash == written.hash
    assert loaded.card.conversion.scale_weights is False
    assert loaded.card.quantization["scheme"] == "ptq"
    x = _input(2)
    outs = []
    for graph in (to_nir_graph(qmodel), loaded.graph):
        backend = get_backend("emulator", **options_from_card(loaded.card))
        backend.load(graph)
        outs.append(backend.run(x, record=("spikes",)))
        backend.close()
    assert np.array_equal(outs[0].output_spikes, outs[1].output_spikes)
    with torch.no_grad():
        out, rec = qmodel(torch.from_numpy(x[:, None]).float(), "chip", record=True)
    assert outs[1].output_spikes.sum() > 0
    assert np.array_equal(out[:, 0].numpy(), outs[1].output_spikes)
    for name in ("lif1", "lif2", "lif3", "lif4"):
        assert np.array_equal(rec[name][:, 0].reshape(rec[name].shape[0], -1).numpy(), outs[1].spikes[name])


HETERO = PSNNConfig(channels=(4, 4, 4), hidden=16, tau_ticks=((2.0, 30.0), (3.0, 60.0), (4.0, 90.0), (5.0, 300.0), (9.0, 9.0)))


def test_per_channel_time_constants_run_bit_for_bit_on_the_emulator(tmp_path) -> None:
    """A model whose channels decay differently: the graph carries one tau per channel, the emulator's spikes in
    every layer equal the torch chip simulator's, and the file rebuilds the same decays."""
    from s2gesture.models.evaluate import load_variant

    qmodel, record = _int_model(4, HETERO)
    graph = to_nir_graph(qmodel)
    tau1 = graph.nodes["lif1"].tau
    assert len(set(tau1[:, 0, 0].tolist())) == 4 and np.all(tau1 == tau1[:, :1, :1])
    assert len(set(graph.nodes["lif4"].tau.tolist())) == 16
    card = make_card("h", record, semantics="chip", tau_ticks=HETERO.tau_ticks)
    assert card.semantics["tau_ticks_per_layer"][3] == [5.0, 300.0] and "beta" not in card.semantics
    export_model(qmodel, tmp_path / "h.nir", card)
    loaded = read_model(tmp_path / "h.nir")
    backend = get_backend("emulator", **options_from_card(loaded.card))
    backend.load(loaded.graph)
    # the chip's per-neuron decays are the model's, exactly
    chip_alpha = backend.net.populations["lif1"].alpha_decay.reshape(4, -1)
    assert np.array_equal(chip_alpha[:, 0], qmodel.lif_beta(0).reshape(-1).numpy())
    for i, name in enumerate(("lif1", "lif2", "lif3", "lif4", "lif5")):  # thresholds reach it unscaled
        assert np.all(backend.net.populations[name].threshold == np.float32(qmodel.thresholds[i]))
    x = _input(5, T=120, p=0.05)
    res = backend.run(x, record=("spikes",))
    backend.close()
    with torch.no_grad():
        out, rec = qmodel(torch.from_numpy(x[:, None]).float(), "chip", record=True)
    assert res.output_spikes.sum() > 0
    assert np.array_equal(out[:, 0].numpy(), res.output_spikes)
    for name in ("lif1", "lif2", "lif3", "lif4"):
        assert np.array_equal(rec[name][:, 0].reshape(rec[name].shape[0], -1).numpy(), res.spikes[name])
    # the same weights with one decay everywhere spike differently: the time constants are really used
    uniform = PSNN(SMALL)
    uniform.load_state_dict({k: v for k, v in qmodel.state_dict().items() if not k.startswith("beta_")})
    with torch.no_grad():
        assert not torch.equal(uniform(torch.from_numpy(x[:, None]).float(), "chip"), out)
    back = load_variant(tmp_path / "h.nir").model
    assert back.cfg.tau_ticks is not None
    for i in range(5):
        assert torch.equal(back.lif_beta(i), qmodel.lif_beta(i))


def test_chip_tau_r_gives_exact_decays_and_unit_r_factor() -> None:
    """For many time constants the chosen float32 tau and r convert to alpha_decay == beta and r_factor == 1
    exactly (the chip converter's float32 expressions), and one beta keeps snnTorch's export values."""
    from s2gesture.daemon.nirnodes import chip_tau_r, exportable_betas

    raw = (1 - 1 / np.geomspace(1.5, 2000.0, 4000)).astype(np.float32)
    with pytest.raises(ValueError, match="pick another beta"):
        chip_tau_r(raw, 1e-4)  # some short time constants have no exact conversion as they are
    beta = exportable_betas(raw)
    # the nudge is tiny: a few float32 ulps of the decay
    assert np.max(np.abs(beta.view(np.int32) - raw.view(np.int32))) <= 256 and np.mean(beta != raw) < 0.1
    for dt in (1e-4,):
        tau, r = chip_tau_r(beta, dt)
        q = np.float32(dt) / tau
        assert np.array_equal(np.float32(1) - q, beta)
        assert np.all(q * r == np.float32(1))
    tau, r = chip_tau_r(0.93, 1e-4)
    assert tau == np.float32(1e-4 / 0.07) and r == np.float32(np.float32(1e-4 / 0.07) / np.float32(1e-4))


def test_time_constant_spread_is_checked() -> None:
    """tau_ticks needs a pair per LIF layer, each above one tick and in order; the message says which."""
    with pytest.raises(ValueError, match=r"one \(shortest, longest\) pair per LIF layer"):
        PSNN(PSNNConfig(tau_ticks=((2.0, 3.0),)))
    with pytest.raises(ValueError, match="> 1 tick"):
        PSNN(PSNNConfig(tau_ticks=((0.5, 3.0),) * 5))
    assert PSNNConfig.from_dict(HETERO.to_dict()) == HETERO
    assert "tau_ticks" not in SMALL.to_dict()


def test_graph_without_card_is_refused_and_card_option_serves_it(tmp_path) -> None:
    """A foreign graph has no card: read_model names the missing card; supplying one on the side works."""
    qmodel, _ = _int_model(2)
    path = tmp_path / "foreign.nir"
    nir.write(path, to_nir_graph(qmodel))
    with pytest.raises(ModelCardError, match="--card"):
        read_model(path)
    card_path = tmp_path / "card.json"
    card_path.write_text(json.dumps({"name": "foreign"}))
    with pytest.raises(ModelCardError, match="classes"):
        read_model(path, card=card_path)
    card_path.write_text(json.dumps({"name": "foreign", "classes": [str(i) for i in range(11)]}))
    assert read_model(path, card=card_path).card.name == "foreign"


def test_shipped_pretrained_model_is_a_valid_int8_p_snn() -> None:
    """models/pretrained/psnn_int8.nir reads with its card, holds int8 weights and fits the chip for 600 ticks."""
    from pathlib import Path

    import s2gesture.models

    path = Path(s2gesture.models.__file__).parent / "pretrained" / "psnn_int8.nir"
    model = read_model(path)
    card = model.card
    assert card.conversion.scale_weights is False and card.conversion.reset == "SUBTRACT"
    assert card.semantics["trained_for"] == "chip" and card.quantization["bits"] == 8
    assert card.metrics["test_recordings"] > 0 and "recipe" in card.training
    # the card records the recipe's settings the model was trained with (chip stage: epochs, "none" weight)
    from s2gesture.models import pretrained_recipe as recipe

    trained = card.training["config"]  # the last stage's
    assert trained["semantics"] == "chip" and trained["epochs"] == recipe.stages()[-1].epochs
    assert trained["class_weight"][card.none_index] == recipe.NONE_WEIGHT
    assert card.training["data"]["extra_none"] == list(recipe.EXTRA_NONE)
    stages = [(st["name"], st["epochs"], st["train_users"]) for st in card.training["stages"]]
    expected = [("float", recipe.EPOCHS, recipe.TRAIN_USERS), ("chip", recipe.CHIP_EPOCHS, recipe.TRAIN_USERS)]
    for i, (epochs, users) in enumerate(recipe.WARM_RESTARTS):
        expected.append((f"chip{i + 2}", epochs, users or recipe.TRAIN_USERS))
    assert stages == expected
    assert card.metrics["heldout"]["users"] >= 20
    for name in ("conv1", "conv2", "conv3", "fc1", "fc2"):
        w = np.asarray(model.graph.nodes[name].weight)
        assert np.array_equal(w, np.rint(w)) and np.abs(w).max() <= 127
    backend = get_backend("emulator", **options_from_card(card))
    report = backend.load(model.graph)
    assert report.fits and backend.max_ticks >= 600
    backend.close()
