"""The chip record: every hardware fact tagged with its source, and a variant chip moving the quantizer,
the translation, the exporter and the memory model with it."""

from __future__ import annotations

import dataclasses

import nir
import numpy as np
import pytest

from s2gesture.daemon.backends import SPINNAKER2, ChipOptions, SpiNNaker2Spec, get_backend
from s2gesture.daemon.backends.memory import CONSTANTS, MemoryModel
from s2gesture.daemon.backends.translate import translate
from s2gesture.daemon.errors import BackendError, ChipMemoryError
from s2gesture.daemon.testing import tiny_gesture_graph
from s2gesture.models.quantize import ptq_scale, quantize_weight

FOUR_BIT = dataclasses.replace(SPINNAKER2, weight_bits=4)
SMALL_SRAM = dataclasses.replace(SPINNAKER2, pe_sram_bytes=64 * 1024)


def test_every_fact_has_a_source_tag_and_a_note() -> None:
    """Each field of the spec carries a [P]/[S]/[I] tag and a note, and the memory model's table is the spec's."""
    facts = SPINNAKER2.facts()
    assert set(facts) == {f.name for f in dataclasses.fields(SpiNNaker2Spec)}
    for name, fact in facts.items():
        assert fact.source.startswith("[") and fact.source.endswith("]") and set(fact.source[1:-1]) <= set("PSI/"), name
        assert fact.note, name
    assert facts == CONSTANTS
    assert name in SPINNAKER2.table()


def test_derived_limits_follow_the_facts() -> None:
    """The weight range, the accumulator range and the data SRAM are derived from the facts, not stored."""
    assert SPINNAKER2.weight_max == 2 ** (SPINNAKER2.weight_bits - 1) - 1
    assert FOUR_BIT.weight_max == 7
    assert SMALL_SRAM.data_bytes == SPINNAKER2.data_bytes - 64 * 1024
    wrapped = FOUR_BIT.wrap_weights(np.array([7, 8, -8, -9, 23]))
    assert wrapped.tolist() == [7, -8, -8, 7, 7]


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"weight_bits": 12}, "weight_bits"), ({"pe_sram_bytes": 1024}, "no data SRAM"), ({"pes_usable": 0}, "pes_usable"), ({"accumulator_bits": 24}, "accumulator_bits")],
)
def test_impossible_specs_are_refused(change: dict[str, int], needle: str) -> None:
    """A spec the backends cannot model is refused naming the field."""
    with pytest.raises(BackendError, match=needle):
        dataclasses.replace(SPINNAKER2, **change)


def test_backend_spec_option_must_be_a_spec() -> None:
    """A backend's 'spec' option takes a SpiNNaker2Spec and says so for anything else."""
    with pytest.raises(BackendError, match="option 'spec' must be a SpiNNaker2Spec"):
        get_backend("emulator", spec={"weight_bits": 4})
    assert get_backend("emulator", spec=FOUR_BIT).spec is FOUR_BIT


def test_quantizer_follows_the_weight_width() -> None:
    """The PTQ scale and clip use the spec's weight range: 4-bit weights land in [-7, 7], 8-bit in [-127, 127]."""
    w = np.random.default_rng(0).normal(0, 0.1, size=(8, 4, 3, 3)).astype(np.float32)
    q8 = quantize_weight(w, ptq_scale(w, 100.0))
    q4 = quantize_weight(w, ptq_scale(w, 100.0, spec=FOUR_BIT), spec=FOUR_BIT)
    assert np.abs(q8).max() == SPINNAKER2.weight_max
    assert np.abs(q4).max() == FOUR_BIT.weight_max
    assert ptq_scale(w, 100.0) / ptq_scale(w, 100.0, spec=FOUR_BIT) == pytest.approx(127 / 7)
    # clipping at 99th percentile: more weights clip to the narrower range
    s4 = ptq_scale(w, 99.0, spec=FOUR_BIT)
    assert np.count_nonzero(np.abs(quantize_weight(w, s4, spec=FOUR_BIT)) == 7) > 0


def test_translation_scales_weights_to_the_spec_range() -> None:
    """With scale_weights the chip translation maps max|W| to the spec's largest weight (7 for 4 bits)."""
    rng = np.random.default_rng(1)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([6])}),
            "w": nir.Linear(rng.normal(0, 0.3, (5, 6)).astype(np.float32)),
            "lif": nir.LIF(tau=np.full(5, 2e-3, np.float32), r=np.ones(5, np.float32), v_leak=np.zeros(5, np.float32), v_threshold=np.ones(5, np.float32)),
            "output": nir.Output(output_type={"output": np.array([5])}),
        },
        edges=[("input", "w"), ("w", "lif"), ("lif", "output")],
    )
    opts = ChipOptions(scale_weights=True)
    w8 = translate(graph, opts).projections[0].weight
    w4 = translate(graph, opts, FOUR_BIT).projections[0].weight
    assert np.abs(w8).max() == 127 and np.abs(w4).max() == 7
    assert translate(graph, opts, FOUR_BIT).populations["lif"].w_scale == pytest.approx(7 / np.abs(graph.nodes["w"].weight).max())


def test_smaller_sram_shortens_runs_and_refuses_chunks_the_default_chip_takes() -> None:
    """Halving the PE SRAM shortens max_ticks, and a chunk that fits the default chip is refused before running."""
    graph = tiny_gesture_graph(0)
    default = MemoryModel(translate(graph, ChipOptions()))
    small = MemoryModel(translate(graph, ChipOptions(), SMALL_SRAM))
    assert small.report.max_ticks < default.report.max_ticks
    big, little = get_backend("emulator"), get_backend("emulator", spec=SMALL_SRAM)
    big.load(graph)
    little.load(graph)
    rng = np.random.default_rng(2)
    x = (rng.random((little.max_ticks + 100, 2, 32, 32)) < 0.05).astype(np.uint8)
    assert x.shape[0] < big.max_ticks
    assert big.fits(x) and not little.fits(x)
    with pytest.raises(ChipMemoryError, match="spike_list buffer"):
        little.run(x)
    # memory limits change what is refused, never the arithmetic of what runs
    short = x[: little.max_ticks // 2]
    assert np.array_equal(big.run(short).output_spikes, little.run(short).output_spikes)


def test_exporter_refuses_weights_beyond_the_spec_range() -> None:
    """An integer model with 8-bit weights exports for the 8-bit chip but not for a 4-bit one."""
    torch = pytest.importorskip("torch")
    from s2gesture.models.export import to_nir_graph
    from s2gesture.models.network import PSNN, PSNNConfig
    from s2gesture.models.quantize import quantize_ptq

    torch.manual_seed(0)
    model = PSNN(PSNNConfig(channels=(4, 4, 4), hidden=16))
    q8, rec8 = quantize_ptq(model)
    q4, rec4 = quantize_ptq(model, spec=FOUR_BIT)
    assert rec8["bits"] == 8 and rec4["bits"] == 4
    assert max(float(w.detach().abs().max()) for _, w in q4.iter_weights()) == 7
    to_nir_graph(q8)
    to_nir_graph(q4, spec=FOUR_BIT)
    with pytest.raises(ValueError, match=r"4-bit integers in \[-7, 7\]"):
        to_nir_graph(q8, spec=FOUR_BIT)
