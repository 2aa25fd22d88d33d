"""Memory model of the SpiNNaker2 chip: PE slices, SRAM per PE by kind, longest run (SPINNAKER2.md section 7).

Exact word layouts are not public, so every fact lives in the chip record (chip.py,
:class:`SpiNNaker2Spec`, with its source tag) and nothing in this module holds a number. The model
reads the spec the network was translated for (``net.spec``) or one passed in; correct a fact there and
every report, default and refusal follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ChipMemoryError
from .api import ChipPlan, MappingReport, PopulationMapping
from .chip import SPINNAKER2, Fact, SpiNNaker2Spec
from .translate import ChipNetwork, Population, Projection

#: every fact of the default chip with its source tag (the record itself is chip.SPINNAKER2)
CONSTANTS: dict[str, Fact] = SPINNAKER2.facts()


def data_bytes(spec: SpiNNaker2Spec = SPINNAKER2) -> int:
    """Data SRAM per PE usable for network data and buffers."""
    return spec.data_bytes


@dataclass
class Slice:
    """One PE: a contiguous range of one population's flattened (C,H,W) neurons."""

    pe: int
    population: str
    lo: int
    hi: int
    static: dict[str, int]

    @property
    def n(self) -> int:
        return self.hi - self.lo


def _targets_fan_in(proj: Projection) -> np.ndarray:
    """Stored synapses per target neuron (nonzero weights, pooled sources expanded), int64 [n_target]."""
    area = proj.pool[0] * proj.pool[1]
    if proj.kind == "dense":
        return np.asarray((proj.weight != 0).sum(axis=0), dtype=np.int64) * area
    # conv: count per output position the kernel taps that land inside the (pooled) input
    _, c_out, kh, kw = proj.weight.shape
    _, h, w = proj.pooled_shape
    _, ho, wo = proj.out_shape
    nz = (proj.weight != 0).sum(axis=0)  # [C_out, kH, kW]: input channels with a nonzero tap
    counts = np.zeros((c_out, ho, wo), dtype=np.int64)
    oy = np.arange(ho)[:, None] * proj.stride[0] - proj.padding[0]
    ox = np.arange(wo)[None, :] * proj.stride[1] - proj.padding[1]
    for ky in range(kh):
        for kx in range(kw):
            inside = ((oy + ky >= 0) & (oy + ky < h) & (ox + kx >= 0) & (ox + kx < w)).astype(np.int64)
            counts += nz[:, ky, kx][:, None, None] * inside[None]
    return counts.ravel() * area


class MemoryModel:
    """Slices every population onto PEs and accounts their SRAM; answers how long a run may be."""

    def __init__(self, net: ChipNetwork, spec: SpiNNaker2Spec | None = None) -> None:
        self.net = net
        #: the chip whose limits apply (default: the one the network was translated for)
        self.spec = net.spec if spec is None else spec
        opts = net.options
        self.conn_delay = int(opts.conn_delay)
        n_in = net.populations[net.input_name].n
        self.input_rate = float(opts.input_rate) if opts.input_rate is not None else self.spec.default_input_activity * n_in
        self.fan_in = {id(p): _targets_fan_in(p) for p in net.projections}
        overrides = dict(opts.max_atoms_per_core)
        unknown = sorted(set(overrides) - set(net.populations))
        if unknown:
            msg = f"option 'max_atoms_per_core' names unknown population(s) {unknown}; populations: {sorted(net.populations)}"
            raise ChipMemoryError(msg)
        order = net.feedforward_order or tuple(net.populations)
        self.atoms: dict[str, int] = {}
        for name in order:
            self.atoms[name] = int(overrides.get(name, self.default_atoms(net.populations[name])))
        self.slices: list[Slice] = []
        for name in order:
            pop = net.populations[name]
            atoms = self.atoms[name]
            for lo in range(0, pop.n, atoms):
                hi = min(pop.n, lo + atoms)
                self.slices.append(Slice(len(self.slices), name, lo, hi, {}))
        for sl in self.slices:
            sl.static = self.static_bytes(net.populations[sl.population], sl.lo, sl.hi)
        self.report = self._report()

    # -- per-slice accounting ---------------------------------------------------------------------------

    def neuron_bytes(self, pop: Population) -> int:
        """SRAM per neuron of ``pop`` (0 for the spike source)."""
        return 0 if pop.neuron is None else pop.neuron.bytes_per_neuron(self.spec, self.conn_delay)

    def n_slices(self, name: str) -> int:
        return math.ceil(self.net.populations[name].n / self.atoms[name])

    def static_bytes(self, pop: Population, lo: int, hi: int) -> dict[str, int]:
        """Bytes of one slice that do not grow with the run: synapses, neuron state, routing."""
        synapses = 0
        routing = 0
        for proj in self.net.incoming(pop.name):
            if proj.kind == "conv":
                synapses += proj.weight.size + self.spec.conv_params_bytes
            else:
                fan = self.fan_in[id(proj)][lo:hi]
                rows = int(np.count_nonzero(np.any(proj.weight[:, lo:hi] != 0, axis=1))) * proj.pool[0] * proj.pool[1]
                synapses += int(fan.sum()) * self.spec.synapse_bytes + rows * self.spec.row_header_bytes
            routing += self.n_slices(proj.source) * self.spec.routing_entry_bytes
        neurons = self.spec.pe_header_bytes
        neurons += (hi - lo) * self.neuron_bytes(pop)
        return {"synapses": synapses, "neurons": neurons, "routing": routing}

    def per_tick_bytes(self, pop: Population, lo: int, hi: int, record: tuple[str, ...], rate: float) -> dict[str, float]:
        """Bytes one slice adds per tick: input spike list (at ``rate`` spikes/tick for its neurons) and recordings."""
        n = hi - lo
        out = {"spike_list": 0.0, "recording": 0.0}
        if pop.is_source:
            out["spike_list"] = rate * n / pop.n * self.spec.spike_list_word_bytes + self.spec.spike_list_tick_bytes
            return out
        if pop.is_output or "spikes" in record:
            out["recording"] += math.ceil(n * self.spec.record_spike_bits / 32) * 4
        if "v" in record:
            out["recording"] += n * self.spec.record_v_bytes
        return out

    def default_atoms(self, pop: Population) -> int:
        """Largest power of two whose slice fits the static SRAM share and the tick's cycle budget."""
        if pop.is_source:
            return self.spec.spike_list_max_atoms
        budget = self.spec.pe_clock_hz * self.spec.sys_tick_s * self.spec.tick_budget_share
        static_cap = self.spec.static_share * self.spec.data_bytes
        best = 1
        atoms = 1
        while atoms <= self.spec.max_atoms:
            lo, hi = 0, min(atoms, pop.n)
            # the densest slice decides: take the slice with the most synapses among equal-size windows
            static = 0
            events = 0.0
            for proj in self.net.incoming(pop.name):
                fan = self.fan_in[id(proj)]
                window = int(np.convolve(fan, np.ones(hi - lo, dtype=np.int64), mode="valid").max()) if fan.size else 0
                if proj.kind == "conv":
                    static += proj.weight.size + self.spec.conv_params_bytes
                else:
                    static += window * self.spec.synapse_bytes
                events += self.spec.design_activity * window
            static += self.spec.pe_header_bytes + (hi - lo) * self.neuron_bytes(pop)
            cycles = (hi - lo) * self.spec.cycles_per_neuron + events * self.spec.cycles_per_event
            if static > static_cap or cycles > budget:
                break
            best = atoms
            if hi == pop.n:
                break
            atoms *= 2
        return best

    # -- run length ---------------------------------------------------------------------------------------

    def slice_limits(self, record: tuple[str, ...], rate: float, counts: dict[int, int] | None = None, ticks: int | None = None) -> list[tuple[Slice, float, dict[str, float], int]]:
        """Per slice: (slice, max ticks, per-tick bytes, static total); ``counts`` = actual input spikes per PE."""
        cap = self.spec.data_bytes
        out = []
        for sl in self.slices:
            pop = self.net.populations[sl.population]
            per = self.per_tick_bytes(pop, sl.lo, sl.hi, record, rate)
            static = sum(sl.static.values())
            if counts is not None and ticks is not None and pop.is_source:
                per["spike_list"] = (counts[sl.pe] * self.spec.spike_list_word_bytes) / max(ticks, 1) + self.spec.spike_list_tick_bytes
            grow = sum(per.values())
            limit = math.inf if grow == 0 else (cap - static) / grow
            out.append((sl, limit, per, static))
        return out

    def _report(self) -> MappingReport:
        record: tuple[str, ...] = ()
        limits = self.slice_limits(record, self.input_rate)
        worst = min(limits, key=lambda x: x[1])
        max_ticks = int(max(0, math.floor(worst[1]))) if math.isfinite(worst[1]) else 2**31 - 1
        buffer = max(worst[2], key=lambda k: worst[2][k])
        limiting = f"PE {worst[0].pe} ({worst[0].population}[{worst[0].lo}:{worst[0].hi}]) {buffer} buffer"
        pops = []
        for name in self.atoms:
            pop = self.net.populations[name]
            rows = []
            first = None
            for sl, _lim, per, _static in limits:
                if sl.population != name:
                    continue
                first = sl.pe if first is None else first
                ticks = min(max_ticks, 10**6)
                row = dict(sl.static)
                row["spike_list"] = round(per["spike_list"] * ticks)
                row["recording"] = round(per["recording"] * ticks)
                row["total"] = sum(row.values())
                rows.append(row)
            pops.append(PopulationMapping(name, pop.model, pop.n, self.atoms[name], len(rows), tuple(rows), first or 0))
        pes = len(self.slices)
        usable = self.spec.pes_usable
        chips: tuple[ChipPlan, ...] = ()
        if pes > usable:
            chips = self._multichip(usable)
        too_big = [(sl, st) for sl, _, _, st in limits if st > self.spec.data_bytes]
        fits = pes <= usable and not too_big and max_ticks > 0
        if too_big:
            sl, st = too_big[0]
            limiting = f"PE {sl.pe} ({sl.population}) static data {st} B > {self.spec.data_bytes} B"
        return MappingReport(tuple(pops), pes, usable, self.input_rate, max_ticks, limiting, fits, chips)

    def _multichip(self, per_chip: int) -> tuple[ChipPlan, ...]:
        """Greedy plan: populations in feed-forward order fill chips of ``per_chip`` PEs; traffic = cut projections."""
        chip_of_slice: dict[int, int] = {}
        chip, used = 0, 0
        for sl in self.slices:
            if used == per_chip:
                chip, used = chip + 1, 0
            chip_of_slice[sl.pe] = chip
            used += 1
        chip_pops: dict[int, list[str]] = {}
        chip_pes: dict[int, int] = {}
        for sl in self.slices:
            c = chip_of_slice[sl.pe]
            chip_pes[c] = chip_pes.get(c, 0) + 1
            if sl.population not in chip_pops.setdefault(c, []):
                chip_pops[c].append(sl.population)
        traffic = dict.fromkeys(chip_pes, 0.0)
        for proj in self.net.projections:
            src_chips = {chip_of_slice[s.pe] for s in self.slices if s.population == proj.source}
            dst_chips = {chip_of_slice[s.pe] for s in self.slices if s.population == proj.target}
            src = self.net.populations[proj.source]
            rate = self.input_rate if src.is_source else self.spec.default_input_activity * src.n
            for c in src_chips:
                if dst_chips - {c}:
                    traffic[c] += rate * (sum(s.n for s in self.slices if s.population == proj.source and chip_of_slice[s.pe] == c) / src.n)
        if max(chip_pes) + 1 > self.spec.chips_per_board:
            msg = f"graph needs {len(self.slices)} PEs, more than a {self.spec.chips_per_board}-chip board ({self.spec.chips_per_board * per_chip} PEs)"
            raise ChipMemoryError(msg)
        return tuple(ChipPlan(c, tuple(chip_pops[c]), chip_pes[c], traffic[c]) for c in sorted(chip_pes))

    # -- refusal --------------------------------------------------------------------------------------------

    def check_chunk(self, ticks: int, record: tuple[str, ...], spikes: np.ndarray) -> None:
        """Raise ChipMemoryError if a run of ``ticks`` with these input ``spikes`` [T, ...] overflows any PE."""
        flat = spikes.reshape(spikes.shape[0], -1)
        counts = {
            sl.pe: int(np.count_nonzero(flat[:, sl.lo : sl.hi]))
            for sl in self.slices
            if self.net.populations[sl.population].is_source
        }
        cap = self.spec.data_bytes
        if len(self.slices) > self.spec.pes_usable:
            msg = f"graph needs {len(self.slices)} PEs but one chip has {self.spec.pes_usable}; see the multi-chip plan in the mapping report"
            raise ChipMemoryError(msg)
        for sl, _lim, per, static in self.slice_limits(tuple(record), self.input_rate, counts, ticks):
            for buffer, per_tick in per.items():
                need = static + sum(per.values()) * ticks
                if per_tick > 0 and need > cap:
                    msg = (
                        f"chunk of {ticks} ticks does not fit PE {sl.pe} ({sl.population}[{sl.lo}:{sl.hi}]): "
                        f"{buffer} buffer needs {int(per_tick * ticks)} B, static data {static} B, total {int(need)} B "
                        f"> {cap} B of data SRAM; use shorter chunks (max_ticks={self.report.max_ticks}) or fewer atoms per core"
                    )
                    raise ChipMemoryError(msg)
