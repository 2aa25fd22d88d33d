"""The ``spinnaker2`` backend: the same graph on a real chip through py-spinnaker2 (SPINNAKER2.md section 2).

py-spinnaker2 is not on PyPI and is imported only in :meth:`SpiNNaker2Backend.load`. The pure parts
(ConversionConfig derivation, atoms-per-core plan, spike-list encoding, result decoding) are plain
functions here, tested without the package. The loaded network is reused across runs (``net.reset()``),
so the ~6 s per-run host overhead of the public demos is paid once; the remaining per-run overhead is
measured and logged for every chunk.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import structlog

from ..errors import BackendError
from .api import RunResult
from .base import TranslatedBackend
from .memory import MemoryModel
from .options import ChipOptions
from .translate import ChipNetwork

log = structlog.get_logger(__name__)

INSTALL_HINT = (
    "py-spinnaker2 is not installed; it is not on PyPI. Install it from source into this environment:\n"
    "  git clone https://gitlab.com/spinnaker2/py-spinnaker2.git\n"
    "  pip install -e py-spinnaker2\n"
    "(see docs/board.md; the emulator backend needs none of this)"
)

#: this backend's own options and their defaults (besides ChipOptions)
OWN_OPTIONS: dict[str, Any] = {
    "host": None,  # board IP; None: $S2G_SPINNAKER2_HOST
    "sys_tick_s": 1e-3,  # wall-clock length of one tick on the chip
    "timeout_s": 2.0,  # reachability check
    "board": "chip",  # "chip": SpiNNaker2Chip(eth_ip=host); "48node": SpiNNcloud48NodeBoard(stm_ip=host)
    "reuse_hardware": True,  # keep the hardware object between runs where py-spinnaker2 allows
}

#: ChipOptions switches describing unknown chip behaviour: the board does what it does, so they do not apply
EMULATOR_ONLY = ("threshold_op", "fma", "cuba_current", "dense_rounding")


def conversion_config_kwargs(opts: ChipOptions, record: tuple[str, ...] = ("spikes",)) -> dict[str, Any]:
    """``s2_nir.ConversionConfig`` arguments from our options (enums as their names, mapped at load)."""
    return {
        "dt": float(opts.dt),
        "output_record": ["spikes"] + (["v"] if "v" in record else []),
        "conn_delay": int(opts.conn_delay),
        "scale_weights": bool(opts.scale_weights),
        "integrator": opts.integrator,
        "reset": opts.reset,
        "weight_scale_percentile": float(opts.weight_scale_percentile),
    }


def atoms_plan(memory: MemoryModel) -> dict[str, int]:
    """Neurons per PE for every population, from the memory model (what ``set_max_atoms_per_core`` gets)."""
    return dict(memory.atoms)


def encode_spike_lists(spikes: np.ndarray) -> dict[int, list[int]]:
    """0/1 ``[T, *input_shape]`` -> ``{neuron: [tick, ...]}`` over the flattened (C,H,W), C-order index."""
    flat = np.asarray(spikes).reshape(spikes.shape[0], -1)
    neurons, ticks = np.nonzero(flat.T)  # sorted by neuron, then tick
    out: dict[int, list[int]] = {}
    if neurons.size == 0:
        return out
    bounds = np.flatnonzero(np.diff(neurons)) + 1
    for group_n, group_t in zip(np.split(neurons, bounds), np.split(ticks, bounds), strict=True):
        out[int(group_n[0])] = group_t.astype(int).tolist()
    return out


def decode_spikes(spike_dict: Mapping[int, Any], n: int, ticks: int) -> np.ndarray:
    """``{neuron: [tick, ...]}`` (``get_spikes()``) -> uint8 ``[ticks, n]``; ticks outside the run are errors."""
    out = np.zeros((ticks, n), dtype=np.uint8)
    for neuron, times in spike_dict.items():
        t = np.asarray(times, dtype=np.int64)
        if not 0 <= int(neuron) < n:
            msg = f"board returned spikes for neuron {neuron}, outside the population of {n}"
            raise BackendError(msg)
        if t.size and (t.min() < 0 or t.max() >= ticks):
            msg = f"board returned spike times {t.min()}..{t.max()} for neuron {neuron}, outside the run of {ticks} ticks"
            raise BackendError(msg)
        out[t, int(neuron)] = 1
    return out


def decode_voltages(v_dict: Mapping[int, Any], n: int, ticks: int) -> np.ndarray:
    """``{neuron: array(ticks)}`` (``get_voltages()``) -> float32 ``[ticks, n]`` (chip units)."""
    out = np.zeros((ticks, n), dtype=np.float32)
    for neuron, trace in v_dict.items():
        arr = np.asarray(trace, dtype=np.float32).ravel()
        if arr.size != ticks:
            msg = f"board returned {arr.size} voltages for neuron {neuron}, expected one per tick ({ticks})"
            raise BackendError(msg)
        out[:, int(neuron)] = arr
    return out


def reachable(host: str, timeout_s: float) -> bool:
    """Whether ``host`` answers within ``timeout_s``: one ICMP echo (``ping``), else a TCP connect to port 22."""
    ping = shutil.which("ping")
    if ping:
        try:
            done = subprocess.run([ping, "-c", "1", "-W", str(max(1, round(timeout_s))), host], capture_output=True, timeout=timeout_s + 1)
            return done.returncode == 0
        except (subprocess.TimeoutExpired, OSError):
            return False
    try:
        with socket.create_connection((host, 22), timeout=timeout_s):
            return True
    except OSError:
        return False


def import_sdk() -> Any:
    """Import py-spinnaker2's ``hardware``, ``snn`` and ``s2_nir``, or raise BackendError with install steps."""
    try:
        from spinnaker2 import hardware, s2_nir, snn  # type: ignore[import-not-found]
    except ImportError as exc:
        raise BackendError(INSTALL_HINT) from exc
    return hardware, snn, s2_nir


class SpiNNaker2Backend(TranslatedBackend):
    """Runs chunks on a SpiNNaker2 chip; same interface and latency convention as the emulator."""

    name = "spinnaker2"

    def __init__(self, **options: Any) -> None:
        super().__init__(options, OWN_OPTIONS)
        own = self.own
        self.host: str | None = own["host"] or os.environ.get("S2G_SPINNAKER2_HOST") or None
        self.sys_tick_s = float(own["sys_tick_s"])
        self.timeout_s = float(own["timeout_s"])
        self.board = str(own["board"])
        if self.board not in ("chip", "48node"):
            msg = f"option 'board' is {self.board!r}; expected 'chip' or '48node'"
            raise BackendError(msg)
        self.reuse_hardware = bool(own["reuse_hardware"])
        self._sdk: Any = None
        self._s2net: Any = None
        self._inp: Any = None
        self._outp: Any = None
        self._hw: Any = None
        self._runs = 0
        #: host overhead of the last run in seconds (wall time minus ticks * sys_tick_s)
        self.last_overhead_s = 0.0

    def load(self, graph: Any) -> Any:
        """Translate and map the graph (for the report), then build it with s2_nir.from_nir on the board."""
        import copy

        report = self._translate(graph)
        ignored = [k for k in EMULATOR_ONLY if getattr(self.options, k) != getattr(ChipOptions(), k)]
        if ignored:
            log.warning("spinnaker2.emulator_only_options", options=ignored, note="the board's own arithmetic applies")
        self._sdk = import_sdk()
        _, _, s2_nir = self._sdk
        self._require_host()
        graph = copy.deepcopy(graph)
        graph.infer_types()
        kwargs = conversion_config_kwargs(self.options)
        kwargs["integrator"] = s2_nir.IntegratorMethod[kwargs["integrator"]]
        kwargs["reset"] = s2_nir.ResetMethod[kwargs["reset"]]
        cfg = s2_nir.ConversionConfig(**kwargs)
        self._s2net, self._inp, self._outp = s2_nir.from_nir(graph, cfg)
        plan = atoms_plan(self._mapping())
        for pop in self._s2net.populations:
            if pop.name in plan and hasattr(pop, "set_max_atoms_per_core"):
                pop.set_max_atoms_per_core(plan[pop.name])
        return report

    def _require_host(self) -> str:
        if not self.host:
            msg = "no SpiNNaker2 host: pass host='192.168.1.x' or set S2G_SPINNAKER2_HOST"
            raise BackendError(msg)
        if not reachable(self.host, self.timeout_s):
            msg = f"SpiNNaker2 board at {self.host} does not answer within {self.timeout_s:g} s; check power, cable and IP (option 'host' / S2G_SPINNAKER2_HOST)"
            raise BackendError(msg)
        return self.host

    def _hardware(self) -> Any:
        hardware = self._sdk[0]
        if self._hw is not None and self.reuse_hardware:
            return self._hw
        host = self._require_host()
        hw = hardware.SpiNNaker2Chip(eth_ip=host) if self.board == "chip" else hardware.SpiNNcloud48NodeBoard(stm_ip=host)
        if self.reuse_hardware:
            self._hw = hw
        return hw

    def _run(self, net: ChipNetwork, arr: np.ndarray, record: tuple[str, ...]) -> RunResult:
        """Encode the chunk as spike lists, run ``T + latency_ticks`` ticks on the board, decode."""
        ticks = arr.shape[0] + net.latency_ticks
        if "v" in record:
            for pop in self._outp:
                if "v" not in pop.record:
                    pop.record = [*pop.record, "v"]
        if self._runs:
            self._s2net.reset()
        self._inp[0].params = encode_spike_lists(arr)
        hw = self._hardware()
        start = time.perf_counter()
        hw.run(self._s2net, ticks, sys_tick_in_s=self.sys_tick_s)
        wall = time.perf_counter() - start
        self._runs += 1
        self.last_overhead_s = wall - ticks * self.sys_tick_s
        log.info("spinnaker2.run", ticks=ticks, wall_s=round(wall, 4), overhead_s=round(self.last_overhead_s, 4), run=self._runs)
        spikes_by_pop: dict[str, np.ndarray] = {}
        voltages: dict[str, np.ndarray] = {}
        for pop in self._outp:
            n = net.populations[pop.name].n
            spikes_by_pop[pop.name] = decode_spikes(pop.get_spikes(), n, ticks)
            if "v" in record:
                voltages[pop.name] = decode_voltages(pop.get_voltages(), n, ticks)
        out = np.concatenate([spikes_by_pop[n] for n in net.output_names], axis=1)
        return RunResult(out, spikes_by_pop if "spikes" in record else {}, voltages, ticks)

    def close(self) -> None:
        self._hw = None
        self._s2net = None
        self.net = None
