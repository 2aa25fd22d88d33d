"""Where the dense formulation of a layer's integer input beats the event-driven scatter, measured.

For each layer of the bundled model (models/pretrained/psnn_int8.nir) and random inputs of rising
activity, times the layer's compiled kernel with the input forced event driven (``synaptic_input=
"scatter"``, plain or grouped as the plan says) and dense (``"dense"``), both bit-exact. From the times
it fits the cost of one scatter block add and one dense (source, target block) pair, the constants
``emulator.COST_GROUPED_BLOCK`` / ``COST_DENSE_PAIR`` are these ratios, and prints each layer's
crossover (the source activity above which dense is faster). One pinned core; run it twice, the machine
is shared.

    .venv/bin/python benchmarks/measure_crossover.py [--ticks 600] [--repeats 5]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ACTIVITIES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def layer_times(emu, x: np.ndarray, repeats: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median seconds of each population's kernel call over ``repeats`` runs of chunk ``x``."""
    from s2gesture.daemon.backends import kernels

    orig = kernels.KERNELS["lif_layer"]
    names = [n for n in emu.net.feedforward_order if n in emu.plans]
    times: dict[str, list[float]] = collections.defaultdict(list)
    calls = [0]

    def timed(*args):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = orig(*args)
        times[names[calls[0] % len(names)]].append(time.perf_counter() - t0)
        calls[0] += 1
        return out

    emu.run(x, record=())
    kernels.KERNELS["lif_layer"] = timed
    try:
        for _ in range(repeats):
            emu.run(x, record=())
    finally:
        kernels.KERNELS["lif_layer"] = orig
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})

    from s2gesture.daemon.backends import get_backend, options_from_card
    from s2gesture.daemon.card import read_model

    model = read_model(ROOT / "models" / "pretrained" / "psnn_int8.nir")
    opts = options_from_card(model.card)
    emus = {m: get_backend("emulator", **opts, check_memory=False, synaptic_input=m) for m in ("scatter", "dense")}
    for e in emus.values():
        e.load(model.graph)
    plans = emus["scatter"].plans
    rng = np.random.default_rng(0)
    rows: list[tuple[str, float, float, float, int, int]] = []
    src_act: dict[tuple[str, float], float] = {}
    zero = layer_times(emus["scatter"], np.zeros((args.ticks, *emus["scatter"].input_shape), np.uint8), args.repeats)
    for act in ACTIVITIES:
        x = (rng.random((args.ticks, *emus["scatter"].input_shape)) < act).astype(np.uint8)
        res = emus["scatter"].run(x)
        src_spikes = {"lif1": x.reshape(args.ticks, -1)}
        names = [n for n in emus["scatter"].net.feedforward_order if n in plans]
        for prev, name in itertools.pairwise(names):
            src_spikes[name] = res.spikes[prev][: args.ticks + 10]
        ts = {m: layer_times(e, x, args.repeats) for m, e in emus.items()}
        for name in names:
            plan = plans[name]
            spk = src_spikes[name]
            n_spikes = int(spk.sum())
            bps = plan.runs.blocks[0][-1] / max(1, plan.runs.src_ptr.size - 1)
            active = int(np.count_nonzero(spk.reshape(spk.shape[0], -1).any(axis=1)))
            rows.append((name, act, ts["scatter"][name] - zero[name], ts["dense"][name] - zero[name], int(n_spikes * bps), active * plan.dense.pairs if plan.dense else 0))
            src_act[(name, act)] = float(spk.mean())
            print(f"input {act:4.0%} {name}: source activity {spk.mean():6.2%}  scatter {ts['scatter'][name]*1e3:6.2f} ms  dense {ts['dense'][name]*1e3:6.2f} ms  ({'grouped' if plan.grouped else 'plain'} scatter)")
    # cost per unit: least squares through the origin, per scatter kind
    out = []
    for kind in (False, True):
        sel = [r for r in rows if plans[r[0]].grouped == kind and r[4] > 0]
        blocks = np.array([r[4] for r in sel], float)
        secs = np.array([r[2] for r in sel])
        out.append(float(blocks @ secs / (blocks @ blocks)))
    sel = [r for r in rows if r[5] > 0]
    pairs = np.array([r[5] for r in sel], float)
    dsecs = np.array([r[3] for r in sel])
    pair_cost = float(pairs @ dsecs / (pairs @ pairs))
    print(f"\nplain scatter: {out[0] * 1e9:.2f} ns per block add; grouped: {out[1] * 1e9:.2f} ns ({out[1] / out[0]:.2f} of plain)")
    print(f"dense: {pair_cost * 1e9:.2f} ns per (source, target block) pair ({pair_cost / out[0]:.2f} of a plain block add)")
    implied = []
    for name, plan in plans.items():
        if plan.dense is None:
            continue
        bps = plan.runs.blocks[0][-1] / max(1, plan.runs.src_ptr.size - 1)
        per_block = out[1] if plan.grouped else out[0]
        n_src = plan.runs.src_ptr.size - 1
        # equal cost when spikes/tick * bps * per_block == pairs * pair_cost
        cross = plan.dense.pairs * pair_cost / (bps * per_block) / n_src
        # the crossover actually observed: where (scatter - dense) changes sign, interpolated in activity
        mine = [(src_act[(name, r[1])], r[2] - r[3]) for r in rows if r[0] == name]
        seen = None
        for (a0, d0), (a1, d1) in itertools.pairwise(mine):
            if d0 < 0 <= d1:
                seen = a0 + (a1 - a0) * (-d0) / (d1 - d0)
                break
        if seen is None and mine and mine[0][1] >= 0:
            seen = mine[0][0]  # dense already faster at the lowest activity measured
        note = "never within the range measured" if seen is None else f"{seen:.1%}"
        if seen is not None:
            # the dense pair cost (in plain block adds) that puts the model's crossover where it was seen
            implied.append(seen * n_src * bps * (per_block / out[0]) / plan.dense.pairs)
        print(f"{name}: fitted model: dense faster above {cross:.1%} source activity; observed: {note} ({plan.dense.pairs} pairs/tick, {bps:.1f} blocks per spike)")
    if implied:
        print(f"dense pair cost that reproduces the observed crossovers: {statistics.median(implied):.2f} of a plain block add (median over layers; emulator.COST_DENSE_PAIR)")
    print(f"grouped block cost: {out[1] / out[0]:.2f} of a plain block add (emulator.COST_GROUPED_BLOCK)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
