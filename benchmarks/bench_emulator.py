"""Emulator speed on the paper's network (MODEL.md) against snnTorch tick by tick, on one core.

Measures, in one run and on one pinned core: the fast emulator per 600-tick chunk (median of repeats,
wall and CPU time), the same network as an snnTorch ``Leaky`` loop, synaptic events per chunk against
what one core can add per second, the import time of ``s2gesture.daemon.backends``, numba's first-call
compile time (cold cache) and load time (warm cache), and the mapping report. Prints the figures and
writes ``benchmarks/results/emulator.md``.

    .venv/bin/python benchmarks/bench_emulator.py [--repeats 15] [--ticks 600]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
INPUT_ACTIVITY = 0.05


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
    """Pin this process to one CPU (the last one) so every figure is one core's."""
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[-1]


def timed(fn, repeats: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """Median wall and CPU seconds of ``fn()`` over ``repeats`` calls (after one warm-up)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu))


def snntorch_net(graph: object):  # type: ignore[no-untyped-def]
    """The same network (weights, thresholds, beta, subtract reset) as snnTorch modules."""
    import snntorch as snn
    import torch

    nodes = graph.nodes  # type: ignore[attr-defined]
    beta = float(1 - 1e-4 / float(np.asarray(nodes["lif1"].tau).ravel()[0]))

    def conv(name: str) -> torch.nn.Conv2d:
        n = nodes[name]
        w = torch.tensor(np.asarray(n.weight))
        m = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride=int(np.ravel(n.stride)[0]), padding=int(np.ravel(n.padding)[0]), bias=False)
        m.weight.data = w
        return m

    def lin(name: str) -> torch.nn.Linear:
        w = torch.tensor(np.asarray(nodes[name].weight))
        m = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        m.weight.data = w
        return m

    def leaky(name: str) -> snn.Leaky:
        return snn.Leaky(beta=beta, threshold=float(np.asarray(nodes[name].v_threshold).ravel()[0]), reset_mechanism="subtract")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2, self.c3 = conv("conv1"), conv("conv2"), conv("conv3")
            self.f1, self.f2 = lin("fc1"), lin("fc2")
            self.l1, self.l2, self.l3, self.l4, self.l5 = (leaky(n) for n in ("lif1", "lif2", "lif3", "lif4", "lif5"))
            self.pool = torch.nn.LPPool2d(1, 2, 2)  # p = 1: sum pooling

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            m = [lif.init_leaky() for lif in (self.l1, self.l2, self.l3, self.l4, self.l5)]
            out = []
            for t in range(x.shape[0]):
                s1, m[0] = self.l1(self.c1(x[t]), m[0])
                s2, m[1] = self.l2(self.c2(s1), m[1])
                s3, m[2] = self.l3(self.c3(self.pool(s2)), m[2])
                s4, m[3] = self.l4(self.f1(self.pool(s3).flatten(1)), m[3])
                s5, m[4] = self.l5(self.f2(s4), m[4])
                out.append(s5)
            return torch.stack(out)

    return Net().eval()


def core_add_rate() -> float:
    """Integer adds per second one core does in the best case: an L1-resident int16 vector add, compiled."""
    import numba as nb

    @nb.njit(cache=False)
    def adds(acc: np.ndarray, w: np.ndarray, n: int) -> int:
        for _ in range(n):
            for k in range(acc.size):
                acc[k] += w[k]
        return acc.size * n

    acc = np.zeros(2048, np.int16)
    w = np.ones(2048, np.int16)
    adds(acc, w, 1)
    n = 20000
    t0 = time.perf_counter()
    total = adds(acc, w, n)
    return total / (time.perf_counter() - t0)


def subprocess_seconds(code: str, env: dict[str, str]) -> float:
    """Wall seconds of ``python -c code`` minus a bare interpreter start, median of 3."""
    def run(c: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", c], check=True, env=env, capture_output=True)
        return time.perf_counter() - t0

    base = np.median([run("pass") for _ in range(3)])
    return float(np.median([run(code) for _ in range(3)]) - base)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--ticks", type=int, default=600)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "emulator.md")
    args = parser.parse_args(argv)
    cpu = pin_one_core()

    from s2gesture.daemon.backends import get_backend
    from s2gesture.daemon.backends.examples import paper_gesture_graph

    graph = paper_gesture_graph(0)
    emu = get_backend("emulator")
    report = emu.load(graph)
    rng = np.random.default_rng(0)
    x = (rng.random((args.ticks, 2, 32, 32)) < INPUT_ACTIVITY).astype(np.uint8)
    res = emu.run(x)
    activity = {k: float(v.mean()) for k, v in res.spikes.items()}
    emu_wall, emu_cpu = timed(lambda: emu.run(x, record=()), args.repeats)
    emu_rec_wall, _ = timed(lambda: emu.run(x), max(3, args.repeats // 3))
    events = emu.last_events

    import torch

    torch.set_num_threads(1)
    net = snntorch_net(graph)
    xt = torch.tensor(x, dtype=torch.float32).unsqueeze(1)  # [T, 1, 2, 32, 32]

    def snn_run() -> None:
        with torch.no_grad():
            net(xt)

    snn_wall, snn_cpu = timed(snn_run, max(3, args.repeats // 3))

    ref = get_backend("reference")
    ref.load(graph)
    ref_ticks = 60
    ref_wall, _ = timed(lambda: ref.run(x[:ref_ticks], record=()), 1)

    add_rate = core_add_rate()
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
        first = [float(subprocess.run([sys.executable, "-c", code], env=env_cold, capture_output=True, text=True, check=True).stdout) for _ in range(2)]
    jit_cold, jit_warm = first

    chunk_ms = args.ticks * 1.0
    fig = {
        "cpu": cpu,
        "ticks": args.ticks,
        "emu_ms": emu_wall * 1e3,
        "emu_cpu_ms": emu_cpu * 1e3,
        "emu_rec_ms": emu_rec_wall * 1e3,
        "realtime_x": chunk_ms / (emu_wall * 1e3),
        "snn_ms": snn_wall * 1e3,
        "snn_cpu_ms": snn_cpu * 1e3,
        "snn_ratio": snn_wall / emu_wall,
        "events": events,
        "events_per_s": events / emu_wall,
        "add_rate": add_rate,
        "ref_ms_per_tick": ref_wall * 1e3 / (ref_ticks + emu.latency_ticks),
        "import_ms": import_s * 1e3,
        "jit_cold_s": jit_cold,
        "jit_warm_s": jit_warm,
    }
    lines = [
        "## Emulator (paper network, one core)",
        "",
        f"Network: MODEL.md P-SNN (2x32x32 -> 3 conv LIF layers -> 256 -> 11), int8 weights (seed 0), input "
        f"{INPUT_ACTIVITY:.0%} of pixels per tick, {args.ticks}-tick chunk (+{emu.latency_ticks} drain ticks); "
        f"{cpu_model()} ({os.cpu_count()} CPUs, 1-minute load average {os.getloadavg()[0]:.1f} when done), process pinned "
        f"to CPU {cpu}, numba/torch threads = 1; medians of {args.repeats} runs. Compare ratios measured in "
        "the same run: absolute times move with the machine and its load.",
        "",
        "Hidden activity (fraction of neurons spiking per tick): " + ", ".join(f"{k} {v:.1%}" for k, v in activity.items()),
        "",
        "| figure | value |",
        "|---|---|",
        f"| emulator, output spikes only (wall / CPU) | {fig['emu_ms']:.1f} ms / {fig['emu_cpu_ms']:.1f} ms per chunk |",
        f"| emulator, record=('spikes',) (hidden spikes kept, fresh buffers) | {fig['emu_rec_ms']:.1f} ms per chunk |",
        f"| ratio to real time at 1 ms ticks | **{fig['realtime_x']:.0f}x** (target >= 100x) |",
        f"| snnTorch Leaky loop, same network, tick by tick (wall / CPU) | {fig['snn_ms']:.0f} ms / {fig['snn_cpu_ms']:.0f} ms per chunk |",
        f"| emulator speed-up over snnTorch | **{fig['snn_ratio']:.0f}x** (target >= 40x) |",
        f"| synaptic events per chunk | {events / 1e6:.1f} M |",
        f"| events per second | {fig['events_per_s'] / 1e9:.2f} G/s |",
        f"| one core's int16 vector-add rate (L1, compiled) | {add_rate / 1e9:.1f} G adds/s ({fig['events_per_s'] / add_rate:.0%} of it reached) |",
        f"| per-tick reference (reads like the spec) | {fig['ref_ms_per_tick']:.1f} ms per tick |",
        f"| `import s2gesture.daemon.backends` (no torch, no numba) | {fig['import_ms']:.0f} ms |",
        f"| first run, cold numba cache (compile) | {jit_cold:.1f} s |",
        f"| first run in a new process, warm cache (daemon restart) | {jit_warm:.2f} s |",
        f"| mapping: PEs used | {report.pes_used} of {report.pes_available} |",
        f"| mapping: longest run at {report.input_rate:g} input spikes/tick | {report.max_ticks} ticks ({report.limiting}) |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
