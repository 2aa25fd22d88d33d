"""Memory model and mapping (SPINNAKER2.md section 7) and the ``s2gesture map`` command."""

from __future__ import annotations

import numpy as np
import pytest

from s2gesture.daemon.backends import ChipOptions, get_backend
from s2gesture.daemon.backends.examples import paper_gesture_graph
from s2gesture.daemon.backends.memory import CONSTANTS, MemoryModel, data_bytes
from s2gesture.daemon.backends.translate import translate
from s2gesture.daemon.errors import ChipMemoryError
from s2gesture.daemon.testing import tiny_gesture_graph, write_tiny_model
from s2gesture.models.mapping import cli


def _memory(graph: object, **options: object) -> MemoryModel:
    return MemoryModel(translate(graph, ChipOptions(**options)))  # type: ignore[arg-type]


def test_every_constant_has_a_source_tag() -> None:
    """All numbers of the memory model sit in the chip record, each tagged [P], [S] or [I]."""
    assert all(c.source.strip("[]").replace("/", "") and c.source.startswith("[") and c.note for c in CONSTANTS.values())
    assert CONSTANTS["pes_usable"].value == 148


def test_paper_network_report_is_derived() -> None:
    """The paper network maps onto one chip, and its run limit comes from the input spike-list buffers."""
    report = _memory(paper_gesture_graph(0)).report
    assert report.fits and report.pes_used <= 148
    assert [p.name for p in report.populations] == ["input", "lif1", "lif2", "lif3", "lif4", "lif5"]
    assert report.input_rate == pytest.approx(0.05 * 2048)
    assert "input" in report.limiting and "spike_list" in report.limiting
    assert 300 < report.max_ticks < 3000
    for pop in report.populations:
        assert pop.pes == -(-pop.neurons // pop.max_atoms_per_core)
        assert all(b["total"] <= data_bytes() for b in pop.bytes_per_pe)


def test_max_ticks_falls_with_the_input_rate() -> None:
    """Doubling the input rate roughly halves the longest run when spike lists are the limit."""
    slow = _memory(paper_gesture_graph(0), input_rate=50.0).report.max_ticks
    fast = _memory(paper_gesture_graph(0), input_rate=100.0).report.max_ticks
    assert fast < slow and slow / fast == pytest.approx(2.0, rel=0.1)


def test_atoms_override_changes_the_slicing() -> None:
    """max_atoms_per_core per population overrides the derived default and changes PE counts."""
    base = _memory(tiny_gesture_graph(0)).report
    small = _memory(tiny_gesture_graph(0), max_atoms_per_core={"lif1": 10}).report
    lif1 = next(p for p in small.populations if p.name == "lif1")
    assert lif1.pes == 90 and lif1.max_atoms_per_core == 10
    assert small.pes_used == base.pes_used - next(p for p in base.populations if p.name == "lif1").pes + 90


def test_unknown_population_in_override_is_refused() -> None:
    """Overriding atoms of a population that does not exist names the populations that do."""
    with pytest.raises(ChipMemoryError, match=r"unknown population\(s\) \['lif9'\].*'lif1'"):
        _memory(tiny_gesture_graph(0), max_atoms_per_core={"lif9": 4})


def test_chunk_that_does_not_fit_names_pe_and_buffer() -> None:
    """A chunk longer than the input spike lists can hold is refused, naming the PE, buffer and sizes."""
    emu = get_backend("emulator")
    report = emu.load(tiny_gesture_graph(0))
    rng = np.random.default_rng(0)
    x = (rng.random((report.max_ticks + 200, 2, 32, 32)) < 0.05).astype(np.uint8)
    with pytest.raises(ChipMemoryError, match=r"does not fit PE 0 \(input\[0:512\]\): spike_list buffer needs \d+ B.*> \d+ B"):
        emu.run(x)
    emu.run(x[: emu.max_ticks // 2])  # half the limit fits


def test_voltage_recording_counts_against_sram() -> None:
    """Recording v costs 4 B per neuron per tick, so a chunk that fits for spikes may not fit with v."""
    emu = get_backend("emulator", max_atoms_per_core={"lif1": 900})
    emu.load(tiny_gesture_graph(0))
    x = np.zeros((100, 2, 32, 32), np.uint8)
    emu.run(x, record=("spikes",))
    with pytest.raises(ChipMemoryError, match="recording buffer"):
        emu.run(x, record=("spikes", "v"))
    unchecked = get_backend("emulator", max_atoms_per_core={"lif1": 900}, check_memory=False)
    unchecked.load(tiny_gesture_graph(0))
    assert unchecked.run(x, record=("spikes", "v")).voltages["lif1"].shape == (102, 900)


def test_graph_too_big_for_one_chip_gets_a_multichip_plan() -> None:
    """A graph needing more than 148 PEs is reported with populations per chip and traffic between chips."""
    report = _memory(paper_gesture_graph(0), max_atoms_per_core={"lif1": 16, "lif2": 16}).report
    assert not report.fits and report.pes_used > 148
    assert len(report.chips) >= 2 and sum(c.pes for c in report.chips) == report.pes_used
    assert all(c.pes <= 148 for c in report.chips)
    assert report.chips[0].spikes_out_per_tick > 0
    assert "chip 1:" in report.table()
    emu = get_backend("emulator", max_atoms_per_core={"lif1": 16, "lif2": 16})
    emu.load(paper_gesture_graph(0))
    with pytest.raises(ChipMemoryError, match="multi-chip plan"):
        emu.run(np.zeros((10, 2, 32, 32), np.uint8))


def test_map_command_prints_table_and_saves_png(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`s2gesture map MODEL.nir --rate R` prints the per-population table and writes a PNG."""
    model = tmp_path / "tiny.nir"
    write_tiny_model(model)
    png = tmp_path / "map.png"
    assert cli([str(model), "--rate", "40", "--atoms", "lif1=100", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    assert "lif1" in out and "input rate 40 spikes/tick" in out and "PEs used" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_map_command_json(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """--json prints the MappingReport as JSON."""
    import json

    model = tmp_path / "tiny.nir"
    write_tiny_model(model)
    assert cli([str(model), "--json", "--png", str(tmp_path / "m.png")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["pes_available"] == 148 and data["populations"][0]["name"] == "input"


def test_fan_out_counts_stored_synapses_per_source_neuron() -> None:
    """Dense fan-out is the non-zero weights of each source row; a conv's totals equal its non-zero taps x valid positions."""
    from s2gesture.models.mapping import fan_out

    net = translate(paper_gesture_graph(0), ChipOptions())
    by = {(p.source, p.target): p for p in net.projections}
    fc2 = next(p for (s, _t), p in by.items() if p.kind == "dense" and net.populations[s].n == 256)
    assert np.array_equal(fan_out(fc2), (fc2.weight != 0).sum(axis=1))
    conv1 = next(p for (s, _t), p in by.items() if s == net.input_name)
    fan = fan_out(conv1)
    # brute force: every output position and tap that lands on an input pixel, for non-zero weights
    c_in, _c_out, kh, kw = conv1.weight.shape
    _, h, w = conv1.src_shape
    _, ho, wo = conv1.out_shape
    brute = np.zeros((c_in, h, w), dtype=np.int64)
    nz = (conv1.weight != 0).sum(axis=1)
    for oy in range(ho):
        for ox in range(wo):
            for ky in range(kh):
                for kx in range(kw):
                    iy, ix = oy * conv1.stride[0] - conv1.padding[0] + ky, ox * conv1.stride[1] - conv1.padding[1] + kx
                    if 0 <= iy < h and 0 <= ix < w:
                        brute[:, iy, ix] += nz[:, ky, kx]
    assert np.array_equal(fan, brute.reshape(-1))
    assert (fan_out(conv1, dense=True) >= fan).all()


def test_map_prints_an_energy_estimate_that_grows_with_the_input_rate(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`map` shows the energy model (said to be a model) beside TrueNorth; more input spikes cost more energy."""
    import json

    model = tmp_path / "tiny.nir"
    write_tiny_model(model)
    assert cli([str(model), "--png", str(tmp_path / "m.png")]) == 0
    out = capsys.readouterr().out
    assert "a model, not a measurement" in out and "TrueNorth" in out
    energies = []
    for rate in ("10", "100"):
        assert cli([str(model), "--json", "--rate", rate, "--png", str(tmp_path / "m.png")]) == 0
        energies.append(json.loads(capsys.readouterr().out)["energy_per_window"])
    assert energies[1]["dynamic_j"] > energies[0]["dynamic_j"] and energies[1]["baseline_j"] == energies[0]["baseline_j"]
    assert energies[0]["facts"]["energy_per_cycle_j"]["source"] == "[I]"
