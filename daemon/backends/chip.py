"""The SpiNNaker2 chip as one frozen record: every hardware fact the toolkit and the backends rely on.

Exact word layouts are not public, so each fact carries its source tag ([P] primary: py-spinnaker2
source, [S] datasheet or paper, [I] inferred) and a note, in the field's metadata. The memory model,
the translation, the quantizer, the exporter and the toolkit's run length all read this record (the
default :data:`SPINNAKER2` or one passed in), so correcting a fact here moves every report, default and
refusal with it, and a variant chip (``dataclasses.replace(SPINNAKER2, weight_bits=4)``) is one line.

numpy only: imported by the daemon and by the toolkit alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from ..errors import BackendError


class Fact(NamedTuple):
    """One hardware fact: its value, source tag and what it is."""

    value: float
    source: str
    note: str


def _fact(value: Any, source: str, note: str) -> Any:
    return field(default=value, metadata={"source": source, "note": note})


@dataclass(frozen=True)
class SpiNNaker2Spec:
    """Limits and costs of one SpiNNaker2 chip (SPINNAKER2.md sections 4, 5 and 7)."""

    # -- PEs and boards
    pes_per_chip: int = _fact(152, "[S]", "ARM Cortex-M4F PEs on one SpiNNaker2 chip")
    pes_usable: int = _fact(148, "[S]", "PEs available to applications (the paper used 147)")
    chips_per_board: int = _fact(48, "[S]", "SpiNNcloud 48-node board")
    # -- SRAM per PE
    pe_sram_bytes: int = _fact(128 * 1024, "[S]", "SRAM per PE")
    code_bytes: int = _fact(32 * 1024, "[S]", "program code")
    heap_stack_bytes: int = _fact(4 * 1024, "[S]", "heap and stack inside the data region")
    log_bytes: int = _fact(1024, "[I]", "log buffer in the data region")
    pe_header_bytes: int = _fact(128, "[I]", "per-PE population header: counters, slice bounds, pointers")
    lif_neuron_bytes: int = _fact(16, "[S/I]", "float32 v, threshold, alpha_decay, i_offset per neuron")
    cuba_extra_bytes: int = _fact(16, "[S/I]", "float32 I_exc, I_inh, exc_decay, inh_decay per neuron (CubaLIF)")
    input_buffer_words: int = _fact(2, "[I]", "int32 synaptic-input ring slots per neuron (plus conn_delay)")
    synapse_bytes: int = _fact(4, "[I]", "one 32-bit word per stored dense synapse (weight, delay, target index); zeros not stored")
    row_header_bytes: int = _fact(8, "[I]", "per source neuron with synapses into the slice: row length and pointer")
    conv_params_bytes: int = _fact(64, "[I]", "conv projection parameters (shapes, stride, padding, pooling)")
    routing_entry_bytes: int = _fact(12, "[I]", "master population table entry per source PE slice (key, mask, address)")
    # -- spike buffers and recording
    spike_list_word_bytes: int = _fact(4, "[S]", "input spike lists: one word per spike")
    spike_list_tick_bytes: int = _fact(4, "[I]", "input spike lists: index of each tick's first spike")
    record_spike_bits: int = _fact(1, "[S]", "spike recording: 1 bit per neuron per tick, padded to 32-bit words")
    record_v_bytes: int = _fact(4, "[S]", "voltage recording: float32 per neuron per tick")
    # -- arithmetic
    weight_bits: int = _fact(8, "[P]", "signed synaptic weight width; s2_nir scales to +-(2^(bits-1) - 1) = +-127")
    accumulator_bits: int = _fact(32, "[S/I]", "signed synaptic-input accumulator per neuron and tick (int32)")
    # -- timing and load
    pe_clock_hz: float = _fact(150e6, "[S]", "PE clock in the SNN flow")
    sys_tick_s: float = _fact(1e-3, "[P]", "tick used to derive atoms-per-core defaults (sys_tick_in_s default)")
    cycles_per_neuron: int = _fact(100, "[I]", "M4F cycles for one neuron update (float32, incl. loop and recording)")
    cycles_per_event: int = _fact(10, "[I]", "cycles per synaptic event (row walk, weight, integer add)")
    design_activity: float = _fact(0.1, "[I]", "fraction of source neurons spiking per tick that a PE must keep up with")
    tick_budget_share: float = _fact(0.5, "[I]", "share of the tick a PE may use at design activity (margin for bursts)")
    static_share: float = _fact(0.5, "[I]", "share of data SRAM a slice's static data may take; the rest is for buffers")
    max_atoms: int = _fact(1024, "[I]", "largest slice the chip's key space and defaults allow")
    spike_list_max_atoms: int = _fact(512, "[I]", "spike_list slice (spike sources split like the published 256-512 conv slices)")
    default_input_activity: float = _fact(0.05, "[S]", "input spikes per tick as a fraction of input neurons (DVS Gesture, 32x32)")
    # -- the toolkit's run length
    run_ticks: int = _fact(600, "[I]", "ticks of one training/evaluation window: about the longest run the paper network fits at default input activity")
    # -- energy model (a model, not a measurement: no per-operation energy of SpiNNaker2 is published as one
    #    number; these are assumptions of the right order for an ARM Cortex-M4F PE in 22 nm FDSOI run near
    #    threshold, with a stated uncertainty factor, used only by the toolkit's energy estimate)
    energy_per_cycle_j: float = _fact(15e-12, "[I]", "dynamic energy of one PE clock cycle (M4F + SRAM access) near threshold in 22FDX; x/÷ energy_uncertainty")
    pe_active_w: float = _fact(1e-3, "[I]", "baseline power of one allocated PE while a run is in progress (leakage, clock tree, timer tick); x/÷ energy_uncertainty")
    energy_uncertainty: float = _fact(3.0, "[I]", "multiplicative uncertainty of energy_per_cycle_j and pe_active_w (the estimate is reported as a range /3 .. x3)")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                msg = f"SpiNNaker2Spec.{f.name} must be a number > 0, found {value!r}"
                raise BackendError(msg)
        # the emulator stores weights in int8 and sums them in int16/int32 arrays
        if not 2 <= self.weight_bits <= 8:
            msg = f"SpiNNaker2Spec.weight_bits must be 2..8 (weights are stored as int8), found {self.weight_bits!r}"
            raise BackendError(msg)
        if self.accumulator_bits not in (16, 32):
            msg = f"SpiNNaker2Spec.accumulator_bits must be 16 or 32, found {self.accumulator_bits!r}"
            raise BackendError(msg)
        if self.data_bytes <= 0:
            msg = f"SpiNNaker2Spec: pe_sram_bytes {self.pe_sram_bytes} leaves no data SRAM after code, heap/stack and log"
            raise BackendError(msg)

    @property
    def weight_max(self) -> int:
        """Largest |weight| (symmetric narrow range, as s2_nir's ``127 / max|W|``): 127 for 8 bits."""
        return int(2 ** (self.weight_bits - 1) - 1)

    @property
    def accumulator_max(self) -> int:
        """Largest |synaptic input| of one neuron in one tick the accumulator holds."""
        return int(2 ** (self.accumulator_bits - 1) - 1)

    @property
    def data_bytes(self) -> int:
        """Data SRAM per PE usable for network data and buffers."""
        return int(self.pe_sram_bytes - self.code_bytes - self.heap_stack_bytes - self.log_bytes)

    def wrap_weights(self, x: np.ndarray) -> np.ndarray:
        """Integers wrapped into the signed ``weight_bits`` range (two's complement, as an int8 cast), int8."""
        span = 2**self.weight_bits
        half = span // 2
        wrapped: np.ndarray = ((np.asarray(x, dtype=np.int64) + half) % span - half).astype(np.int8)
        return wrapped

    def clip_weights(self, x: np.ndarray) -> np.ndarray:
        """Integers clipped to ``+-weight_max``, int8."""
        clipped: np.ndarray = np.clip(x, -self.weight_max, self.weight_max).astype(np.int8)
        return clipped

    def facts(self) -> dict[str, Fact]:
        """Every fact with its source tag and note, in declaration order."""
        return {f.name: Fact(getattr(self, f.name), f.metadata["source"], f.metadata["note"]) for f in dataclasses.fields(self)}

    def table(self) -> str:
        """The facts as a plain text table (name, value, source, note)."""
        rows = [f"{name:<24}{value!s:>10}  {fact_source:<6}{note}" for name, (value, fact_source, note) in self.facts().items()]
        return "\n".join(rows)


#: the chip the project targets
SPINNAKER2 = SpiNNaker2Spec()


def as_spec(value: Any, where: str) -> SpiNNaker2Spec:
    """``value`` if it is a SpiNNaker2Spec, else a BackendError naming ``where``."""
    if not isinstance(value, SpiNNaker2Spec):
        msg = f"{where} must be a SpiNNaker2Spec (e.g. s2gesture.daemon.backends.chip.SPINNAKER2), found {type(value).__name__}"
        raise BackendError(msg)
    return value
