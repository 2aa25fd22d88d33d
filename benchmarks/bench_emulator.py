"""Emulator speed on the bundled model as a user would compare it: against the simulators they could pick.

In one run, on one pinned core, on the bundled int8 model (models/pretrained/psnn_int8.nir: 2x32x32 ->
3 conv LIF layers -> 256 -> 11), 600-tick chunks (plus the drain ticks), batch 1:

* the emulator (``record=()``, the daemon's call) at 1 / 5 / 20 % random input and on real
  preprocessed gesture windows (s2gesture synth recordings -> the daemon's preprocessing -> 600 ticks);
* with ``--with-peers`` the same network in snnTorch (``Leaky``, tick by tick, as its tutorials run it),
  in a torch layer-by-layer loop (each layer's currents for all ticks as one conv/linear call, then the
  LIF recurrence; the emulator's own order of work) and in spyx (JAX: spyx ``LIF`` neurons with
  ``jax.lax.conv``, the whole chunk one jitted ``lax.scan``), when those are installed
  (``pip install 's2gesture[peers]'``);
* the machine's limits, measured here: one core's int16 block-add rate (the emulator's scatter
  instruction, 16 lanes, L1 resident) and int8 GEMM rate (torch's fbgemm quantized linear, the best
  int8 GEMM on this CPU), turned into the least time the chunk's work could take: synaptic events /
  adds per second, and the network's dense multiply-adds / int8 MACs per second.

Every figure is measured in alternating rounds (each contender once per round), so a ratio is taken
within a round and reported as median (min-max) over rounds: the machine is shared and noisy.
Prints the figures and writes ``benchmarks/results/emulator.md``.

    taskset -c 1 .venv/bin/python benchmarks/bench_emulator.py [--with-peers] [--rounds 7] [--ticks 600]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "pretrained" / "psnn_int8.nir"
ACTIVITIES = (0.01, 0.05, 0.20)


def cpu_model() -> str:
    """The CPU's model name (Linux), for the record."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def pin_one_core() -> int:
    """Pin this process to one CPU (the last allowed one, unless taskset chose already)."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[-1]


def rounds(fns: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """Wall seconds of each contender per round; contenders alternate within a round (one warm-up first)."""
    for fn in fns.values():
        fn()
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(n):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            out[name].append(time.perf_counter() - t0)
    return out


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def fmt(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """``median (min-max)``."""
    med, lo, hi = spread([v * scale for v in values])
    return f"{med:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


# -- the peers ---------------------------------------------------------------------------------------------


def _params(graph: object) -> dict[str, object]:
    """Weights, strides, paddings, betas and thresholds of the bundled graph, as numpy."""
    nodes = graph.nodes  # type: ignore[attr-defined]
    out: dict[str, object] = {}
    for name in ("conv1", "conv2", "conv3"):
        n = nodes[name]
        out[name] = (np.asarray(n.weight, np.float32), int(np.ravel(n.stride)[0]), int(np.ravel(n.padding)[0]))
    for name in ("fc1", "fc2"):
        out[name] = np.asarray(nodes[name].weight, np.float32)
    for name in ("lif1", "lif2", "lif3", "lif4", "lif5"):
        n = nodes[name]
        beta = float(1 - 1e-4 / float(np.asarray(n.tau).ravel()[0]))
        out[name] = (beta, float(np.asarray(n.v_threshold).ravel()[0]))
    return out


def snntorch_runner(graph: object, x: np.ndarray) -> Callable[[], object]:
    """The network as snnTorch ``Leaky`` modules, stepped tick by tick (its tutorials' loop)."""
    import snntorch as snn
    import torch

    p = _params(graph)

    def conv(name: str) -> torch.nn.Conv2d:
        w, s, pad = p[name]  # type: ignore[misc]
        m = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=s, padding=pad, bias=False)
        m.weight.data = torch.tensor(w)
        return m

    def lin(name: str) -> torch.nn.Linear:
        w = torch.tensor(p[name])
        m = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        m.weight.data = w
        return m

    c1, c2, c3, f1, f2 = conv("conv1"), conv("conv2"), conv("conv3"), lin("fc1"), lin("fc2")
    lifs = [snn.Leaky(beta=p[n][0], threshold=p[n][1], reset_mechanism="subtract") for n in ("lif1", "lif2", "lif3", "lif4", "lif5")]  # type: ignore[index]
    pool = torch.nn.LPPool2d(1, 2, 2)  # p = 1: sum pooling
    xt = torch.tensor(x, dtype=torch.float32).unsqueeze(1)

    def run() -> object:
        with torch.no_grad():
            m = [lif.init_leaky() for lif in lifs]
            out = []
            for t in range(xt.shape[0]):
                s1, m[0] = lifs[0](c1(xt[t]), m[0])
                s2, m[1] = lifs[1](c2(s1), m[1])
                s3, m[2] = lifs[2](c3(pool(s2)), m[2])
                s4, m[3] = lifs[3](f1(pool(s3).flatten(1)), m[3])
                s5, m[4] = lifs[4](f2(s4), m[4])
                out.append(s5)
            return torch.stack(out)

    return run


def torch_layer_runner(graph: object, x: np.ndarray) -> Callable[[], object]:
    """torch, layer by layer: one conv/linear call for all ticks of a layer, then its LIF recurrence."""
    import torch

    p = _params(graph)
    xt = torch.tensor(x, dtype=torch.float32)

    def lif(cur: torch.Tensor, beta: float, thr: float) -> torch.Tensor:
        v = torch.zeros_like(cur[0])
        spikes = torch.empty_like(cur)
        for t in range(cur.shape[0]):
            v = beta * v + cur[t]
            s = (v > thr).float()
            v = v - s * thr
            spikes[t] = s
        return spikes

    def conv(name: str, s: torch.Tensor) -> torch.Tensor:
        w, st, pad = p[name]  # type: ignore[misc]
        return torch.nn.functional.conv2d(s, torch.tensor(w), stride=st, padding=pad)

    w1, w2 = torch.tensor(p["fc1"]), torch.tensor(p["fc2"])

    def run() -> object:
        with torch.no_grad():
            s1 = lif(conv("conv1", xt), *p["lif1"])  # type: ignore[misc]
            s2 = lif(conv("conv2", s1), *p["lif2"])  # type: ignore[misc]
            s3 = lif(conv("conv3", torch.nn.functional.avg_pool2d(s2, 2) * 4), *p["lif3"])  # type: ignore[misc]
            s4 = lif((torch.nn.functional.avg_pool2d(s3, 2) * 4).flatten(1) @ w1.T, *p["lif4"])  # type: ignore[misc]
            return lif(s4 @ w2.T, *p["lif5"])  # type: ignore[misc]

    return run


def spyx_runner(graph: object, x: np.ndarray) -> Callable[[], object]:
    """spyx LIF neurons (JAX) with ``jax.lax`` convolutions, the chunk one jitted ``lax.scan``."""
    import jax
    import jax.numpy as jnp
    import spyx.nn as snn
    from flax import nnx

    p = _params(graph)
    rngs = nnx.Rngs(0)
    shapes = {"lif1": (16, 15, 15), "lif2": (16, 15, 15), "lif3": (8, 7, 7), "lif4": (256,), "lif5": (11,)}
    lifs = {n: snn.LIF(shapes[n], beta=p[n][0], threshold=p[n][1], rngs=rngs) for n in shapes}  # type: ignore[index]
    convs = {n: (jnp.asarray(p[n][0]), p[n][1], p[n][2]) for n in ("conv1", "conv2", "conv3")}  # type: ignore[index]
    fc1, fc2 = jnp.asarray(p["fc1"]), jnp.asarray(p["fc2"])

    def conv(name: str, s: jax.Array) -> jax.Array:
        w, st, pad = convs[name]
        return jax.lax.conv_general_dilated(s[None], w, (st, st), [(pad, pad), (pad, pad)])[0]

    def pool(s: jax.Array) -> jax.Array:
        return jax.lax.reduce_window(s, 0.0, jax.lax.add, (1, 2, 2), (1, 2, 2), "VALID")

    def step(state: tuple[jax.Array, ...], xt: jax.Array) -> tuple[tuple[jax.Array, ...], jax.Array]:
        v1, v2, v3, v4, v5 = state
        s1, v1 = lifs["lif1"](conv("conv1", xt), v1)
        s2, v2 = lifs["lif2"](conv("conv2", s1), v2)
        s3, v3 = lifs["lif3"](conv("conv3", pool(s2)), v3)
        s4, v4 = lifs["lif4"](fc1 @ pool(s3).ravel(), v4)
        s5, v5 = lifs["lif5"](fc2 @ s4, v5)
        return (v1, v2, v3, v4, v5), s5

    @jax.jit
    def chunk(xs: jax.Array) -> jax.Array:
        state = tuple(jnp.zeros(shapes[n]) for n in shapes)
        return jax.lax.scan(step, state, xs)[1]

    xj = jnp.asarray(x, dtype=jnp.float32)
    return lambda: chunk(xj).block_until_ready()


# -- the limits ----------------------------------------------------------------------------------------------


def block_add_rate() -> float:
    """Integer adds per second of one core's best case: the emulator's 16-lane int16 block add, L1 resident."""
    import numba as nb

    from s2gesture.daemon.backends.kernels import BLOCK, add_block

    @nb.njit(boundscheck=False)
    def adds(acc: np.ndarray, w: np.ndarray, n: int) -> int:  # pragma: no cover - compiled
        m = acc.size // BLOCK
        for r in range(n):
            for b in range(m):
                add_block(acc, np.uint64(b * BLOCK), w, np.uint64(((b + r) % m) * BLOCK))
        return n * m * BLOCK

    acc = np.zeros(2048, np.int16)
    w = np.ones(2048, np.int16)
    adds(acc, w, 1)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        total = adds(acc, w, 20000)
        best = max(best, total / (time.perf_counter() - t0))
    return best


def int8_gemm_rate() -> float:
    """int8 multiply-adds per second of one core: torch's fbgemm quantized linear (u8 x s8 -> int32), best of 5."""
    import warnings

    import torch
    import torch.ao.nn.quantized as nnq

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lin = nnq.Linear(1024, 1024)
        xq = torch.quantize_per_tensor(torch.rand(2048, 1024), 0.01, 0, torch.quint8)
    lin(xq)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        lin(xq)
        best = max(best, 2048 * 1024 * 1024 / (time.perf_counter() - t0))
    return best


def dense_macs(net: object, ticks: int) -> int:
    """Multiply-adds of the network's dense formulation over ``ticks`` (every synapse, every tick)."""
    total = 0
    for proj in net.projections:  # type: ignore[attr-defined]
        if proj.kind == "conv":
            c_in, _c_out, kh, kw = proj.weight.shape
            total += int(np.prod(proj.out_shape)) * c_in * kh * kw
        else:
            total += int(proj.weight.size)
    return total * ticks


# -- inputs --------------------------------------------------------------------------------------------------


def gesture_windows(ticks: int, n: int) -> list[np.ndarray]:
    """``n`` windows of ``ticks`` from synthetic gestures through the daemon's preprocessing (the model card's input)."""
    from s2gesture.daemon.card import read_model
    from s2gesture.daemon.preprocess import PreprocessSpec, preprocess_recording
    from s2gesture.models import synth

    card = read_model(MODEL).card
    spec = PreprocessSpec.from_card(card.input, synth.SENSOR_SIZE)
    windows = []
    for i in range(n):
        rec = synth.recording(seed=7, user=1 + i % 5, session=0, lighting="lab", label=i % 11, duration_s=ticks * spec.dt_us / 1e6 + 0.5)
        spikes = preprocess_recording(rec, spec)
        windows.append(np.ascontiguousarray(spikes[200 : 200 + ticks]))
    return windows


def subprocess_seconds(code: str, env: dict[str, str]) -> float:
    """Wall seconds of ``python -c code`` minus a bare interpreter start, median of 3."""

    def run(c: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", c], check=True, env=env, capture_output=True)
        return time.perf_counter() - t0

    base = statistics.median(run("pass") for _ in range(3))
    return float(statistics.median(run(code) for _ in range(3)) - base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--with-peers", action="store_true", help="also time snnTorch, a torch layer loop and spyx (those installed)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per input (default 7)")
    parser.add_argument("--peer-rounds", type=int, default=3, help="rounds for the slow peers (default 3)")
    parser.add_argument("--ticks", type=int, default=600)
    parser.add_argument("--windows", type=int, default=6, help="gesture windows (default 6)")
    parser.add_argument("--no-startup", action="store_true", help="skip the import / compile timings (fresh processes)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "emulator.md")
    args = parser.parse_args(argv)
    cpu = pin_one_core()

    from s2gesture.daemon.backends import get_backend, options_from_card
    from s2gesture.daemon.card import read_model

    model = read_model(MODEL)
    # 20 % random input overflows the chip's input spike buffers at 600 ticks: emulate it anyway
    emu = get_backend("emulator", **options_from_card(model.card), check_memory=False)
    report = emu.load(model.graph)
    net = emu.net
    T = args.ticks
    rng = np.random.default_rng(0)
    inputs = {f"random {a:.0%}": (rng.random((T, *emu.input_shape)) < a).astype(np.uint8) for a in ACTIVITIES}
    windows = gesture_windows(T, args.windows)
    wi = [0]

    def next_window() -> np.ndarray:
        wi[0] = (wi[0] + 1) % len(windows)
        return windows[wi[0]]

    peers: dict[str, Callable[[object, np.ndarray], Callable[[], object]]] = {}
    missing: list[str] = []
    if args.with_peers:
        import torch

        torch.set_num_threads(1)
        for name, mod, runner in (("snnTorch", "snntorch", snntorch_runner), ("torch layer loop", "torch", torch_layer_runner), ("spyx (JAX)", "spyx", spyx_runner)):
            try:
                __import__(mod)
                peers[name] = runner
            except ImportError:
                missing.append(f"{name} (`{mod}` not installed: pip install 's2gesture[peers]')")

    rows = []
    results: dict[str, dict[str, list[float]]] = {}
    events: dict[str, int] = {}
    activity: dict[str, str] = {}
    cases = {**inputs, "gesture windows": windows[0]}
    for case, x in cases.items():
        fns: dict[str, Callable[[], object]] = {}
        if case == "gesture windows":
            fns["emulator"] = lambda: emu.run(next_window(), record=())
        else:
            fns["emulator"] = lambda x=x: emu.run(x, record=())
        for pname, runner in peers.items():
            fns[pname] = runner(model.graph, x)
        res = emu.run(x)
        events[case] = emu.last_events
        activity[case] = ", ".join(f"{k} {float(v.mean()):.1%}" for k, v in res.spikes.items())
        fast = rounds({"emulator": fns["emulator"]}, args.rounds)
        slow = rounds(fns, args.peer_rounds) if peers else {}
        results[case] = {"emulator": fast["emulator"], **{k: v for k, v in slow.items() if k != "emulator"}}
        if peers:
            results[case]["emulator (peer rounds)"] = slow["emulator"]
        print(f"{case}: emulator {fmt(fast['emulator'], 1e3, 2)} ms", flush=True)

    add_rate = block_add_rate()
    try:
        gemm_rate = int8_gemm_rate()
    except Exception as exc:  # torch missing or no fbgemm: the dense limit is then unknown
        print(f"int8 GEMM rate not measured: {exc}", file=sys.stderr)
        gemm_rate = float("nan")
    macs = dense_macs(net, T + emu.latency_ticks)

    import_s = jit_cold = jit_warm = float("nan")
    if not args.no_startup:
        env = dict(os.environ)
        import_s = subprocess_seconds("import s2gesture.daemon.backends", env)
        with tempfile.TemporaryDirectory() as cache:
            env_cold = dict(env, NUMBA_CACHE_DIR=cache)
            code = (
                "import time, numpy as np\n"
                "from s2gesture.daemon.backends import get_backend\n"
                "from s2gesture.daemon.backends.examples import paper_gesture_graph\n"
                "e = get_backend('emulator'); e.load(paper_gesture_graph(0))\n"
                "x = np.zeros((10, 2, 32, 32), np.uint8); x[:, 0, ::7, ::5] = 1\n"
                "t = time.perf_counter(); e.run(x, record=()); print(time.perf_counter() - t)\n"
            )
            jit_cold, jit_warm = (
                float(subprocess.run([sys.executable, "-c", code], env=env_cold, capture_output=True, text=True, check=True).stdout)
                for _ in range(2)
            )

    chunk_ms = T * 1.0
    rows.append("| input | emulator ms per chunk | x real time | synaptic events | limit: events / block adds | limit: dense MACs / int8 GEMM | fraction of the lower limit |")
    rows.append("|---|---|---|---|---|---|---|")
    for case, r in results.items():
        e = r["emulator"]
        med = statistics.median(e)
        t_add = events[case] / add_rate
        t_gemm = macs / gemm_rate
        lower = min(t_add, t_gemm)
        rows.append(
            f"| {case} | {fmt(e, 1e3, 2)} | **{chunk_ms / (med * 1e3):.0f}x** ({chunk_ms / (max(e) * 1e3):.0f}-{chunk_ms / (min(e) * 1e3):.0f}) "
            f"| {events[case] / 1e6:.1f} M | {t_add * 1e3:.2f} ms | {t_gemm * 1e3:.2f} ms | **{lower / med:.0%}** |"
        )
    peer_rows = []
    if peers:
        peer_rows.append("| input | " + " | ".join(f"{p} ms" for p in peers) + " | " + " | ".join(f"emulator vs {p}" for p in peers) + " |")
        peer_rows.append("|---|" + "---|" * (2 * len(peers)))
        for case, r in results.items():
            own = r["emulator (peer rounds)"]
            cells = [fmt(r[p], 1e3, 0) for p in peers]
            ratios = []
            for p in peers:
                rs = [b / a for a, b in zip(own, r[p], strict=True)]
                ratios.append(f"**{statistics.median(rs):.0f}x** ({min(rs):.0f}-{max(rs):.0f})")
            peer_rows.append(f"| {case} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")

    lines = [
        "## Emulator (bundled int8 model, one core)",
        "",
        f"Model: `models/pretrained/psnn_int8.nir` (2x32x32 -> conv5x5/2 LIF 16x15x15 -> conv3x3 LIF 16x15x15 -> "
        f"pool, conv3x3 LIF 8x7x7 -> pool, 256 -> 11), {T}-tick chunks (+{emu.latency_ticks} drain ticks), batch 1, "
        f"`record=()`. {cpu_model()}, {os.cpu_count()} CPUs shared with other work (1-minute load average "
        f"{os.getloadavg()[0]:.1f} at the end), process pinned to CPU {cpu}, every library on one thread. "
        f"Figures: median (min-max) over {args.rounds} rounds; peers alternate with the emulator in "
        f"{args.peer_rounds} rounds and each ratio is taken within a round. Gesture windows: {len(windows)} "
        "synthetic recordings (s2gesture synth, 128x128) through the daemon's preprocessing, ticks 200-800.",
        "",
        *rows,
        "",
        f"Limits measured in this run: one core's int16 block add **{add_rate / 1e9:.1f} G adds/s** (16 lanes, L1), "
        f"int8 GEMM **{gemm_rate / 1e9:.0f} G MAC/s** (fbgemm u8 x s8, 2048x1024x1024); the dense formulation of the "
        f"network is {macs / 1e6:.0f} M MACs per chunk. 'fraction of the lower limit' = the smaller of the two limit "
        "times / the emulator's median time.",
        "",
        "Hidden activity (fraction of neurons spiking per tick): "
        + "; ".join(f"{case}: {a}" for case, a in activity.items()),
        "",
    ]
    if peers:
        lines += [
            "### Against the simulators a user could pick (same run, same core)",
            "",
            *peer_rows,
            "",
            "snnTorch: `Leaky` modules stepped tick by tick; torch layer loop: each layer's currents for all ticks "
            "in one conv/linear call, then its LIF recurrence (the emulator's order of work, in float32); spyx: spyx "
            "`LIF` neurons (spike from the previous voltage, spyx's rule) with `jax.lax` convolutions, the chunk "
            "one jitted `lax.scan`. The peers compute float32 LIF dynamics, not the chip's arithmetic bit for bit.",
            "",
        ]
    if missing:
        lines += ["Not measured: " + "; ".join(missing) + ".", ""]
    lines += [
        "| startup | value |",
        "|---|---|",
        f"| `import s2gesture.daemon.backends` (no torch, no numba) | {import_s * 1e3:.0f} ms |",
        f"| first run, cold numba cache (compile) | {jit_cold:.1f} s |",
        f"| first run in a new process, warm cache (daemon restart) | {jit_warm:.2f} s |",
        f"| mapping: PEs used | {report.pes_used} of {report.pes_available} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
