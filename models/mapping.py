"""``s2gesture map MODEL.nir``: where a model lives on SpiNNaker2 (PEs, SRAM per PE) and how long a run may be.

Prints the memory model's table (SPINNAKER2.md section 7) and saves a PNG: SRAM per PE stacked by kind
against the data-SRAM limit, and the chip's usable PEs coloured by population (limits from the chip record,
``SpiNNaker2Spec``). Needs no torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

KINDS = ("synapses", "neurons", "routing", "spike_list", "recording")
EXAMPLES = ("paper", "nmnist", "tiny")


def load_graph(path: str | None, example: str | None) -> tuple[Any, dict[str, Any]]:
    """The NIR graph and backend options: from a model file (its card when present) or a built-in example."""
    from s2gesture.daemon.backends import options_from_card

    if example:
        from s2gesture.daemon.backends import examples
        from s2gesture.daemon.testing import tiny_gesture_graph

        builders = {"paper": examples.paper_gesture_graph, "nmnist": examples.nmnist_graph, "tiny": tiny_gesture_graph}
        options: dict[str, Any] = {"scale_weights": True} if example == "nmnist" else {}
        return builders[example](0), options
    from s2gesture.daemon.card import read_model
    from s2gesture.daemon.errors import ModelCardError

    file = Path(str(path))
    if not file.is_file():
        msg = f"model file {file} does not exist; pass a .nir (e.g. from `s2gesture export`) or --example paper"
        raise ModelCardError(msg)
    try:
        model = read_model(file)
        return model.graph, options_from_card(model.card)
    except ModelCardError as card_error:
        import nir

        # a plain NIR file without our card: the chip converter's published deployment settings
        try:
            return nir.read(file), {}
        except Exception as exc:  # h5py and nir raise OSError, KeyError, TypeError... for a file that is not NIR
            msg = (
                f"{file}: expected a NIR graph (HDF5, from `s2gesture export` or nir.write), found a file nir "
                f"cannot read ({type(exc).__name__}); as a model card file: {card_error}"
            )
            raise ModelCardError(msg) from exc


def build_report(graph: Any, options: dict[str, Any], spec: Any = None) -> tuple[Any, Any]:
    """(MappingReport, MemoryModel) for chip ``spec`` (default SPINNAKER2) without compiling the emulator."""
    from s2gesture.daemon.backends import SPINNAKER2, ChipOptions
    from s2gesture.daemon.backends.memory import MemoryModel
    from s2gesture.daemon.backends.translate import translate

    memory = MemoryModel(translate(graph, ChipOptions(**options), SPINNAKER2 if spec is None else spec))
    return memory.report, memory


#: published figures of other hardware on DVS Gesture, for comparison beside our estimate
PEERS: dict[str, dict[str, Any]] = {
    "TrueNorth": {
        "accuracy_pct": 94.59,
        "power_w_max": 0.2,
        "latency_s": 0.105,
        "energy_j_max": 0.2 * 0.105,
        "source": "[S] Amir et al., CVPR 2017: gesture onset found in 105 ms 'while consuming less than 200 mW'; "
        "energy per classification <= 200 mW x 105 ms = 21 mJ (derived from the two published figures, an upper bound)",
    },
}


def _axis_mask(n_in: int, n_out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """``[k, n_in]``: whether input position i feeds some output through kernel tap j (conv geometry)."""
    mask = np.zeros((k, n_in), dtype=bool)
    for j in range(k):
        for i in range(n_in):
            o, rem = divmod(i + pad - j, stride)
            mask[j, i] = rem == 0 and 0 <= o < n_out
    return mask


def fan_out(proj: Any, *, dense: bool = False) -> np.ndarray:
    """Synapses each source neuron of ``proj`` drives (flattened C,H,W order of the source, before pooling).

    Counts non-zero integer weights only (zeros are not stored on the chip, so they cost no event), or every
    connection with ``dense`` (NeuroBench's dense operation count). A pooled source neuron drives what its
    pooled position drives; neurons cut off by the floor of the pooling drive nothing.
    """
    nz = np.ones(proj.weight.shape, dtype=np.int64) if dense else (proj.weight != 0).astype(np.int64)
    pooled = proj.pooled_shape
    if proj.kind == "conv":
        _, hp, wp = pooled
        _, ho, wo = proj.out_shape
        per_tap = nz.sum(axis=1)  # [C_in, kH, kW]
        my = _axis_mask(hp, ho, per_tap.shape[1], proj.stride[0], proj.padding[0])
        mx = _axis_mask(wp, wo, per_tap.shape[2], proj.stride[1], proj.padding[1])
        fan_p = np.einsum("cyx,yi,xj->cij", per_tap, my.astype(np.int64), mx.astype(np.int64))
    else:
        fan_p = nz.sum(axis=1).reshape(pooled)
    if proj.pool == (1, 1):
        return fan_p.reshape(-1)
    c, h, w = proj.src_shape
    py, px = proj.pool
    fan = np.zeros((c, h, w), dtype=np.int64)
    hh, ww = pooled[1] * py, pooled[2] * px
    fan[:, :hh, :ww] = np.repeat(np.repeat(fan_p, py, axis=1), px, axis=2)
    return fan.reshape(-1)


def activity_counts(net: Any, window: np.ndarray, spikes: dict[str, np.ndarray]) -> dict[str, Any]:
    """What one chip run does: spikes per population, synaptic events per projection, neuron updates.

    ``window`` is the input ``[T, C, H, W]``; ``spikes`` the emulator's recorded spikes per population
    (``RunResult.spikes``, ``[ticks, n]``). A synaptic event is one source spike reaching one stored synapse
    (NeuroBench's effective accumulate, AC); a neuron update is one neuron on one tick (the chip updates every
    neuron every tick).
    """
    src = {net.input_name: np.asarray(window).reshape(window.shape[0], -1)} | {k: np.asarray(v) for k, v in spikes.items()}
    ticks = max((int(v.shape[0]) for v in spikes.values()), default=int(window.shape[0]))
    per_proj, dense = {}, {}
    for proj in net.projections:
        counts = src[proj.source].sum(axis=0, dtype=np.int64)
        per_proj[f"{proj.source}->{proj.target}"] = int(counts @ fan_out(proj))
        dense[f"{proj.source}->{proj.target}"] = int(fan_out(proj, dense=True).sum()) * int(src[proj.source].shape[0])
    neurons = {name: pop.n for name, pop in net.populations.items() if not pop.is_source}
    fired = {name: int(np.asarray(spikes[name]).sum()) for name in neurons if name in spikes}
    return {
        "ticks": ticks,
        "input_spikes": int(src[net.input_name].sum()),
        "spikes": fired,
        "synaptic_events": per_proj,
        "dense_synaptic_ops": dense,
        "neuron_updates": int(sum(neurons.values())) * ticks,
        "neurons": neurons,
    }


def energy_estimate(events: float, neuron_updates: float, ticks: float, pes: int, spec: Any = None) -> dict[str, Any]:
    """Energy of one run on SpiNNaker2 from its operation counts: a model, not a measurement.

    dynamic = (events x cycles_per_event + neuron_updates x cycles_per_neuron) x energy_per_cycle_j;
    baseline = pes x pe_active_w x ticks x sys_tick_s (the run in real time, 1 ms ticks). Each figure comes
    from the chip record with its source tag; the range is the record's uncertainty factor either way.
    """
    from s2gesture.daemon.backends import SPINNAKER2

    spec = SPINNAKER2 if spec is None else spec
    cycles = events * spec.cycles_per_event + neuron_updates * spec.cycles_per_neuron
    dynamic = cycles * spec.energy_per_cycle_j
    baseline = pes * spec.pe_active_w * ticks * spec.sys_tick_s
    total = dynamic + baseline
    facts = spec.facts()
    used = ("cycles_per_event", "cycles_per_neuron", "energy_per_cycle_j", "pe_active_w", "sys_tick_s", "energy_uncertainty")
    return {
        "model_not_measurement": True,
        "energy_j": total,
        "energy_j_low": total / spec.energy_uncertainty,
        "energy_j_high": total * spec.energy_uncertainty,
        "dynamic_j": dynamic,
        "baseline_j": baseline,
        "cycles": cycles,
        "pes": pes,
        "ticks": ticks,
        "inputs": {"synaptic_events": events, "neuron_updates": neuron_updates},
        "facts": {k: {"value": facts[k].value, "source": facts[k].source, "note": facts[k].note} for k in used},
    }


def assumed_activity_energy(graph: Any, options: dict[str, Any], report: Any, spec: Any = None) -> dict[str, Any]:
    """Energy of one ``run_ticks`` window at the memory model's assumed activity (input rate, design activity)."""
    from s2gesture.daemon.backends import SPINNAKER2, ChipOptions
    from s2gesture.daemon.backends.translate import translate

    spec = SPINNAKER2 if spec is None else spec
    net = translate(graph, ChipOptions(**options), spec)
    ticks = spec.run_ticks
    events = 0.0
    for proj in net.projections:
        src = net.populations[proj.source]
        rate = report.input_rate / src.n if src.is_source else spec.design_activity
        events += float(fan_out(proj).sum()) * rate * ticks
    updates = sum(p.n for p in net.populations.values() if not p.is_source) * ticks
    out = energy_estimate(events, updates, ticks, report.pes_used, spec)
    out["activity"] = f"input {report.input_rate:g} spikes/tick, every other population at design_activity {spec.design_activity:g}"
    return out


def energy_lines(est: dict[str, Any], what: str) -> list[str]:
    """The estimate as lines for a terminal, beside TrueNorth's published figure."""
    tn = PEERS["TrueNorth"]
    return [
        f"energy per {what} on SpiNNaker2 (a model, not a measurement): {1e3 * est['energy_j']:.3g} mJ "
        f"(range {1e3 * est['energy_j_low']:.3g} .. {1e3 * est['energy_j_high']:.3g} mJ; dynamic {1e3 * est['dynamic_j']:.3g} mJ "
        f"from {est['inputs']['synaptic_events']:.3g} synaptic events and {est['inputs']['neuron_updates']:.3g} neuron updates, "
        f"baseline {1e3 * est['baseline_j']:.3g} mJ for {est['pes']} PEs x {est['ticks']} ms)",
        f"TrueNorth (published, DVS Gesture): <= {1e3 * tn['energy_j_max']:.3g} mJ per classification "
        f"(< {1e3 * tn['power_w_max']:.0f} mW x {1e3 * tn['latency_s']:.0f} ms; Amir et al. 2017)",
    ]


def save_png(report: Any, path: Path, title: str, spec: Any = None) -> None:
    """Two panels: bytes per PE stacked by kind (with the SRAM limit) and the PE grid by population."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from s2gesture.daemon.backends import SPINNAKER2

    data_kib = (SPINNAKER2 if spec is None else spec).data_bytes / 1024

    rows = []
    owner = []
    for pi, pop in enumerate(report.populations):
        for b in pop.bytes_per_pe:
            rows.append([b[k] for k in KINDS])
            owner.append(pi)
    data = np.array(rows, dtype=float).reshape(-1, len(KINDS)) / 1024
    n_pe = data.shape[0]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 7.5), gridspec_kw={"height_ratios": [1.3, 1]})
    bottom = np.zeros(n_pe)
    colors = plt.get_cmap("tab10").colors
    for k, kind in enumerate(KINDS):
        ax1.bar(np.arange(n_pe), data[:, k], bottom=bottom, width=0.85, label=kind, color=colors[k])
        bottom += data[:, k]
    ax1.axhline(data_kib, color="black", linestyle="--", linewidth=1)
    ax1.text(n_pe - 0.5, data_kib, "data SRAM per PE", ha="right", va="bottom", fontsize=8)
    ax1.set_xlim(-0.7, max(n_pe, 1) - 0.3)
    ax1.set_ylabel("KiB per PE")
    ax1.set_xlabel("PE (in population order)")
    ax1.legend(ncol=5, fontsize=8, loc="upper right", framealpha=0.9)
    ax1.set_ylim(0, data_kib * 1.18)
    fig.suptitle(title, fontsize=10)
    cols = 20
    total = max(int(report.pes_available), n_pe)
    grid = np.full((-(-total // cols), cols), np.nan)
    for pe in range(n_pe):
        grid[pe // cols, pe % cols] = owner[pe]
    pop_cmap = plt.get_cmap("Set2", max(len(report.populations), 1))
    ax2.imshow(grid, cmap=pop_cmap, vmin=-0.5, vmax=len(report.populations) - 0.5, aspect="equal")
    for pe in range(report.pes_available, grid.size):
        ax2.add_patch(plt.Rectangle(((pe % cols) - 0.5, (pe // cols) - 0.5), 1, 1, color="0.25"))
    ax2.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax2.set_yticks(np.arange(-0.5, grid.shape[0], 1), minor=True)
    ax2.grid(which="minor", color="white", linewidth=1)
    ax2.tick_params(which="both", length=0)
    ax2.set_xticks([])
    ax2.set_yticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color=pop_cmap(i)) for i in range(len(report.populations))]
    labels = [f"{p.name} ({p.pes} PE)" for p in report.populations]
    ax2.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax2.set_title(f"{report.pes_used} of {report.pes_available} PEs (grey: not usable / beyond one chip)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cli(argv: list[str] | None = None) -> int:
    """Entry point of ``s2gesture map``."""
    parser = argparse.ArgumentParser(prog="s2gesture map", description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="model file (.nir with or without a model card)")
    parser.add_argument("--example", choices=EXAMPLES, help="map a built-in example graph instead of a file")
    parser.add_argument("--rate", type=float, default=None, help="input spikes per tick (default: 5 %% of input neurons)")
    parser.add_argument("--atoms", action="append", default=[], metavar="POP=N", help="neurons per PE for a population (repeatable)")
    parser.add_argument("--png", type=Path, default=None, help="where to save the picture (default: MODEL.map.png)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    args = parser.parse_args(argv)
    if bool(args.model) == bool(args.example):
        parser.error("give a MODEL file or --example NAME")
    from s2gesture.daemon.errors import S2GestureError

    try:
        graph, options = load_graph(args.model, args.example)
        if args.rate is not None:
            options["input_rate"] = args.rate
        atoms = {}
        for item in args.atoms:
            name, _, value = item.partition("=")
            if not value.isdigit():
                parser.error(f"--atoms expects POP=N with an integer N, found {item!r}")
            atoms[name] = int(value)
        if atoms:
            options["max_atoms_per_core"] = atoms
        report, memory = build_report(graph, options)
    except S2GestureError as exc:
        print(f"s2gesture map: error: {exc}", file=sys.stderr)
        return 2
    energy = assumed_activity_energy(graph, options, report)
    if args.json:
        print(json.dumps(report.to_dict() | {"energy_per_window": energy}, indent=1))
    else:
        print(report.table())
        for line in energy_lines(energy, f"{energy['ticks']}-tick window at {energy['activity']}"):
            print(line)
    png = args.png or Path(f"{args.model or args.example}.map.png")
    name = args.model or f"example '{args.example}'"
    save_png(report, png, f"{name}: input {report.input_rate:g} spikes/tick, max run {report.max_ticks} ticks", memory.spec)
    print(f"picture: {png}", file=sys.stderr)
    if not report.fits:
        # the table and picture still show where it overflows; the exit code says it cannot run
        why = (
            f"{report.pes_used} PEs needed, {report.pes_available} usable"
            if report.pes_used > report.pes_available
            else f"max run {report.max_ticks} ticks (limited by {report.limiting})"
        )
        print(f"s2gesture map: {name} cannot run on one SpiNNaker2 chip: {why}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
