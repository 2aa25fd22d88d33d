"""``s2gesture demo``: the whole system in one command, on this machine, in a minute or two.

1. starts ``s2gestured`` as a child process: emulator backend, the bundled pretrained model
   (``models/pretrained/psnn_int8.nir``; a clearly announced random test model when it is missing),
   lossless input and output on ipc:// sockets in a private temporary folder (no ports to collide);
2. waits for its status heartbeat (no sleeps; numba's first compile can take a while);
3. generates a few synthetic recordings of test users (seeded, in memory);
4. replays them losslessly, one segment each, and prints every final decision as it arrives: the true
   gesture, the recognised one and the confidence;
5. prints the accuracy and the timings, stops the daemon with SIGTERM and checks it exits cleanly.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from s2gesture.daemon import wire
from s2gesture.daemon.testing import RunningDaemon, run_daemon

from . import bus

DAEMON_START_TIMEOUT_S = 120.0
DAEMON_STOP_TIMEOUT_S = 20.0


@dataclass
class Daemon:
    """The demo's s2gestured (a :class:`~s2gesture.daemon.testing.RunningDaemon`) and what it serves."""

    running: RunningDaemon
    model_note: str

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        """The child process."""
        return self.running.proc

    @property
    def input(self) -> str:
        """The daemon's input endpoint."""
        return self.running.input

    @property
    def output(self) -> str:
        """The daemon's output endpoint."""
        return self.running.output

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the daemon's log (for error messages)."""
        return self.running.log_tail(lines)


def choose_model(workdir: Path, requested: str | None) -> tuple[Path, str]:
    """The model to serve and a note on it: the given one, the bundled one, or a tiny random stand-in."""
    if requested:
        path = Path(requested)
        if not path.is_file():
            msg = f"--model {path} does not exist"
            raise bus.ClientError(msg)
        return path, f"serving {path}"
    from s2gesture.daemon.pipeline import default_model_path

    bundled = default_model_path()
    if bundled.is_file():
        return bundled, f"serving the bundled model {bundled}"
    from s2gesture.daemon.testing import write_tiny_model

    stand_in = workdir / "tiny_random.nir"
    write_tiny_model(stand_in, seed=0, name="tiny-random (no pretrained model found)")
    note = (
        f"WARNING: the bundled model {bundled} is missing, so the demo serves a tiny model with RANDOM "
        "weights: the pipeline runs end to end but the predictions mean nothing. Create the real one "
        "with `make pretrained` (or pass --model PATH)."
    )
    return stand_in, note


def write_config(workdir: Path, model: Path) -> tuple[Path, str, str]:
    """A daemon config for the demo (lossless ipc input, ipc output); returns its path and the endpoints."""
    input_ep = f"ipc://{workdir}/in"
    output_ep = f"ipc://{workdir}/out"
    config = workdir / "s2gestured.toml"
    config.write_text(
        "schema_version = 1\n"
        "[input]\nmode = \"lossless\"\n"
        f"bind = [\"{input_ep}\"]\n"
        "[output]\n"
        f"bind = [\"{output_ep}\"]\n"
        "status_interval_s = 0.5\n"
        "[model]\n"
        f"path = \"{model}\"\n"
        "[backend]\nname = \"emulator\"\n"
        "[log]\nformat = \"json\"\n"
    )
    return config, input_ep, output_ep


@contextmanager
def running_daemon(workdir: Path, model: str | None, out: TextIO) -> Iterator[Daemon]:
    """Start s2gestured for the demo and always stop it (SIGTERM, then SIGKILL after a timeout)."""
    model_path, note = choose_model(workdir, model)
    config, input_ep, output_ep = write_config(workdir, model_path)
    # the demo's own config must win over whatever S2G_* the user's shell exports
    running = run_daemon(["--config", str(config)], input=input_ep, output=output_ep,
                         log_path=workdir / "s2gestured.log", clean_env=True)
    daemon = Daemon(running, note)
    try:
        yield daemon
    finally:
        stop_daemon(daemon, out)


def stop_daemon(daemon: Daemon, out: TextIO) -> int | None:
    """SIGTERM and wait; returns the exit code (SIGKILL and None when it does not stop in time)."""
    code = daemon.running.stop(DAEMON_STOP_TIMEOUT_S)
    if code is None:
        print(f"s2gestured did not stop within {DAEMON_STOP_TIMEOUT_S:g} s of SIGTERM; killed it", file=out)
    return code


def wait_until_serving(daemon: Daemon, timeout_s: float) -> wire.Status:
    """The daemon's first heartbeat in a serving state; raises ClientError if the process dies first."""
    ctx = bus.context()
    sub = bus.open_output(ctx, daemon.output, topics=())
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if daemon.proc.poll() is not None:
                msg = f"s2gestured exited with code {daemon.proc.returncode} while starting; its log:\n{daemon.log_tail()}"
                raise bus.ClientError(msg)
            try:
                # short waits so a daemon that dies while loading is noticed at once
                return bus.wait_for_status(sub, min(0.5, max(0.01, deadline - time.monotonic())), states=bus.SERVING_STATES)
            except bus.NoDaemonError:
                if time.monotonic() >= deadline:
                    msg = f"s2gestured sent no heartbeat within {timeout_s:g} s; its log:\n{daemon.log_tail()}"
                    raise bus.NoDaemonError(msg) from None
    finally:
        sub.close()
        ctx.term()


def build_parser() -> argparse.ArgumentParser:
    """The ``s2gesture demo`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="s2gesture demo",
        description="Start s2gestured on the emulator, replay synthetic gestures through it and print what it recognises.",
    )
    parser.add_argument("--count", type=int, default=11, help="synthetic recordings to replay (default 11: one per class)")
    parser.add_argument("--none", type=int, default=1, metavar="N",
                        help="then N scenes of nobody gesturing (a person walking by, camera shake, ...; default 1): "
                        "the bundled model answers 'none' for them")  # fmt: skip
    parser.add_argument("--seed", type=int, default=2024, help="seed of the synthetic test users (default 2024)")
    parser.add_argument("--duration-s", type=float, default=6.0, help="seconds per synthetic recording (default 6)")
    parser.add_argument("--speed", type=float, default=math.inf, help="replay at this multiple of real time (default: as fast as possible)")
    parser.add_argument("--model", help="serve this .nir model instead of the bundled one")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (daemon log, config, report)")
    # --- live view (s2gesture view) ---
    parser.add_argument(
        "--view",
        nargs="?",
        const="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="serve the live web page on HOST:PORT (default 127.0.0.1:8080) while replaying; the replay then runs in real time",
    )
    # --- end live view ---
    return parser


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """The demo; returns the exit code."""
    from . import eval as live_eval
    from . import replay

    if args.none < 0:
        msg = f"--none must be >= 0 scenes, found {args.none}"
        raise bus.ClientError(msg)
    if args.count < 1:
        msg = f"--count must be >= 1, found {args.count}"
        raise bus.ClientError(msg)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="s2g-demo-"))
    try:
        with running_daemon(workdir, args.model, out) as daemon:
            print("s2gesture demo: starting s2gestured (emulator backend, lossless input) ...", file=out)
            print(f"  {daemon.model_note}", file=out, flush=True)
            t_gen = time.monotonic()
            # generate while the daemon loads: both take seconds, and there are two cores
            recordings = replay.synthetic_recordings(args.count, args.seed, duration_s=args.duration_s, none=args.none)
            gen_s = time.monotonic() - t_gen
            print(
                f"generated {len(recordings)} synthetic test-user recordings (seed {args.seed}) in {gen_s:.1f} s",
                file=out,
                flush=True,
            )
            status = wait_until_serving(daemon, DAEMON_START_TIMEOUT_S)
            ready_s = time.monotonic() - started
            print(
                f"s2gestured {status.state} after {ready_s:.1f} s: backend {status.backend}, "
                f"model {status.model_name}, window {status.window_ticks} ticks, stride {status.stride_ticks}",
                file=out,
                flush=True,
            )
            print(f"\n{'#':>3}  {'true gesture':<28} {'recognised':<28} conf   ok", file=out)

            def on_final(res: live_eval.SegmentResult, final: wire.Gesture) -> None:
                index = list(results_order).index(res.segment) + 1 if res.segment in results_order else 0
                ok = "yes" if res.correct else "no"
                true_label = labels[res.label] if 0 <= res.label < len(labels) else str(res.label)
                print(
                    f"{index:>3}  {true_label:<28} {res.predicted_label or '-':<28} {res.confidence or 0:.2f}   {ok}",
                    file=out,
                    flush=True,
                )

            from s2gesture.daemon.card import CLASSES_WITH_NONE

            labels = list(CLASSES_WITH_NONE)  # the generator's labels: 11 gestures, then 11 = "none"
            results_order = [s.segment_id for s in replay.place_segments(recordings, gap_us=500_000)]
            t_replay = time.monotonic()
            # --- live view: the page and a copy of the feed; a page is only worth watching in real time ---
            from .view import demo_view

            speed = 1.0 if args.view is not None and math.isinf(args.speed) else args.speed
            with demo_view(args.view, daemon.output, daemon.input, workdir, args.model, out) as input_endpoint:
                result = live_eval.evaluate_live(
                    recordings,
                    input_endpoint=input_endpoint,
                    output_endpoint=daemon.output,
                    stream="demo",
                    speed=speed,
                    timeout_s=10.0,
                    final_timeout_s=60.0,
                    on_final=on_final,
                )
            # --- end live view ---
            replay_s = time.monotonic() - t_replay
        code = daemon.proc.returncode
        report = result.report()
        lat = report["pred_latency_ms"]
        print(
            f"\naccuracy: {result.accuracy * 100:.1f} % ({report['correct']} of {report['n_segments']} recordings)",
            file=out,
        )
        if lat.get("n"):
            print(f"daemon latency per prediction: p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms", file=out)
        print(
            f"replayed {result.replay.events:,} events in {replay_s:.1f} s; s2gestured stopped with exit code {code}; "
            f"demo wall time {time.monotonic() - started:.1f} s",
            file=out,
        )
        if args.keep:
            print(f"daemon log and config kept in {workdir}", file=out)
        if code != 0:
            return 1
        return 0 if result.n_decided == len(result.segments) else 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def cli(argv: list[str] | None = None) -> int:
    """``s2gesture demo``: 0 when every recording got a decision and the daemon stopped cleanly."""
    from s2gesture.daemon.errors import S2GestureError

    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except S2GestureError as exc:
        print(f"s2gesture demo: {exc}", file=sys.stderr)
        return 1
