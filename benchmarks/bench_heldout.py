"""What the bundled model scores on people nobody tuned on: through the live daemon and offline, decision for decision.

Data (generated here, generator seeds never used for training, validation or tuning):

- gestures: ``--users`` users (seed ``--seed``, default 58113), each under all five lightings, the 11
  gestures of 3 s each (the gesture starts with the recording);
- distractor footage: ``--distractor-minutes`` of "none" scenes (seed ``--distractor-seed``, default 58114),
  10 s each, the kinds rotating: idle, walk-by, camera shake, flicker, background clutter.

Both go through a real ``s2gestured`` (default configuration, emulator, lossless input) with
``s2gesture eval``'s client, and offline through the same chunking and decision code; the finals must
agree one for one. Reported: final accuracy with a 95 % interval that resamples users (cluster
bootstrap), per lighting and the worst user; onset -> first correct gesture (median, p90, event time);
wrong onsets per recording; false gesture decisions per 10 minutes of distractors and how many end "none".
Writes benchmarks/results/heldout.md and heldout.json (``--out`` elsewhere; the model card's metrics come from
the JSON). ``--baseline NAME=PATH`` scores other models offline on the same recordings, in the same run;
``--without-anti-flicker`` scores ``--model`` with the daemon's anti-flicker filter off, in the same way.

Usage: python benchmarks/bench_heldout.py [--model PATH] [--baseline NAME=PATH ...] [--without-anti-flicker] [--users 20] [--no-live] [--quick]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import write_section  # benchmarks/ is sys.path[0] when a script runs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "heldout.md"
GESTURE_S = 3.0
DISTRACTOR_S = 10.0


def _gesture_job(args: tuple[int, int, int]) -> list[Any]:
    from s2gesture.models.synth import N_CLASSES, recording, session_lightings

    seed, user, sessions = args
    return [recording(seed, user, s, lighting, label, GESTURE_S)
            for s, lighting in enumerate(session_lightings(user, sessions)) for label in range(N_CLASSES)]  # fmt: skip


def _distractor_job(args: tuple[int, int, str]) -> Any:
    from s2gesture.models.synth import NONE_LABEL, recording, session_lightings

    seed, user, kind = args
    return recording(seed, user, 0, session_lightings(user, 1)[0], NONE_LABEL, DISTRACTOR_S, distractor=kind)


def generate(users: int, sessions: int, seed: int, n_distractors: int, distractor_seed: int) -> tuple[list[Any], list[Any]]:
    """The held-out recordings, generated on two processes (deterministic whatever the worker count)."""
    from s2gesture.models.synth import DISTRACTORS

    kinds = list(DISTRACTORS)
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context(method)) as pool:
        gestures = [r for part in pool.map(_gesture_job, [(seed, u, sessions) for u in range(1, users + 1)]) for r in part]
        distractors = list(pool.map(_distractor_job, [(distractor_seed, 1000 + k, kinds[k % len(kinds)])
                                                      for k in range(n_distractors)]))  # fmt: skip
    return gestures, distractors


def offline(model_path: Path, recordings: list[Any], anti_flicker_hz: tuple[int, ...] | None = None) -> list[dict[str, Any]]:
    """Per recording, what a default-configured daemon decides: final class, onsets, first correct onset time.

    ``anti_flicker_hz``: None = the daemon's default filter, () = off.
    """
    from tune_decision import chunk_table  # the daemon's windows and scores, as the tuning computes them

    from s2gesture.daemon.backends import get_backend, options_from_card
    from s2gesture.daemon.card import read_model
    from s2gesture.daemon.preprocess import PreprocessSpec, preprocess_recording
    from s2gesture.models.evaluate import daemon_chunk_plan, daemon_policy

    model = read_model(model_path)
    backend = get_backend("emulator", **options_from_card(model.card))
    backend.load(model.graph)
    plan = daemon_chunk_plan(backend.max_ticks)
    hz = {} if anti_flicker_hz is None else {"anti_flicker_hz": anti_flicker_hz}
    out = []
    try:
        for rec in recordings:
            spec = PreprocessSpec.from_card(model.card.input, rec.sensor_size, **hz)
            spikes = preprocess_recording(rec, spec)
            pol = daemon_policy(model.card.none_index)
            onsets, ttc = [], None
            scores, ends = chunk_table(spikes, backend, plan, spec.dt_us)
            for row, t_end in zip(scores, ends, strict=True):
                d = pol.update(row, max(0, int(t_end) - plan.window * spec.dt_us), int(t_end))
                if d is not None:
                    onsets.append(d.class_id)
                    if d.class_id == rec.label and ttc is None:
                        ttc = t_end / 1e3
            out.append({"final": pol.final().class_id, "onsets": onsets, "ttc_ms": ttc})
    finally:
        backend.close()
    return out


def live(model_path: Path, recordings: list[Any], workdir: Path) -> Any:
    """The recordings through a real daemon (default configuration, lossless input) with `s2gesture eval`'s client."""
    from s2gesture.clients.eval import evaluate_live
    from s2gesture.daemon.testing import run_daemon

    inp, outp = f"ipc://{workdir}/in", f"ipc://{workdir}/out"
    daemon = run_daemon(["--mode", "lossless", "--input-bind", inp, "--output-bind", outp, "--model", str(model_path),
                         "--log-format", "json"], input=inp, output=outp, log_path=workdir / "daemon.log",
                        clean_env=True)  # fmt: skip
    try:
        return evaluate_live(recordings, input_endpoint=inp, output_endpoint=outp, timeout_s=60, final_timeout_s=300)
    finally:
        daemon.stop()


def main(argv: list[str] | None = None) -> int:
    """Generate, run offline and live, compare, report."""
    parser = argparse.ArgumentParser(prog="bench_heldout.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "pretrained" / "psnn_int8.nir"))
    parser.add_argument("--users", type=int, default=20, help="held-out users (each under all 5 lightings)")
    parser.add_argument("--seed", type=int, default=58113, help="generator seed of the gesture users")
    parser.add_argument("--distractor-seed", type=int, default=58114)
    parser.add_argument("--distractor-minutes", type=float, default=10.0)
    parser.add_argument("--no-live", action="store_true", help="offline only (no daemon)")
    parser.add_argument("--quick", action="store_true", help="2 users x 1 lighting, 1 minute of distractors")
    parser.add_argument("--baseline", action="append", default=[], metavar="NAME=PATH",
                        help="also score this model offline on the same recordings and tabulate it beside --model "
                        "(repeatable), e.g. the previous bundled model from `git show REV:models/pretrained/psnn_int8.nir`")  # fmt: skip
    parser.add_argument("--without-anti-flicker", action="store_true",
                        help="also score --model offline with the daemon's anti-flicker filter off (input.anti_flicker_hz = [])")  # fmt: skip
    parser.add_argument("--out", default=str(RESULTS),
                        help="result section (.md; the figures go to the .json beside it), e.g. for a second pair of seeds")  # fmt: skip
    parser.add_argument("--write-card", action="store_true",
                        help="also record the figures in the model file's card (metrics.heldout), e.g. for the bundled model")  # fmt: skip
    args = parser.parse_args(argv)
    sessions = 1 if args.quick else 5
    if args.quick:
        args.users, args.distractor_minutes = 2, 1.0
    from s2gesture.daemon.card import read_model
    from s2gesture.daemon.flicker import DEFAULT_HZ

    model_path = Path(args.model)
    card = read_model(model_path).card
    for spec in args.baseline:  # a typo fails here, before minutes of generation
        _baseline_arg(spec)
    t0 = time.perf_counter()
    n_distractors = max(1, round(args.distractor_minutes * 60 / DISTRACTOR_S))
    gestures, distractors = generate(args.users, sessions, args.seed, n_distractors, args.distractor_seed)
    gen_s = time.perf_counter() - t0
    print(f"{len(gestures)} gesture + {len(distractors)} distractor recordings in {gen_s:.0f} s", flush=True)
    t1 = time.perf_counter()
    off_g, off_d = offline(model_path, gestures), offline(model_path, distractors)
    off_s = time.perf_counter() - t1
    print(f"offline in {off_s:.0f} s", flush=True)
    labels = np.array([int(r.label) for r in gestures])
    result: dict[str, Any] = {
        "model": card.name, "model_file": model_path.name, "classes": list(card.classes),
        "gesture_seed": args.seed, "distractor_seed": args.distractor_seed, "users": args.users,
        "lightings_per_user": sessions, "anti_flicker_hz": list(DEFAULT_HZ), "n_gesture_recordings": len(gestures), "gesture_s": GESTURE_S,
        **score(off_g, off_d, gestures, distractors, card), "offline_s": off_s,
    }  # fmt: skip
    baselines = []
    for spec in args.baseline:
        name, path = _baseline_arg(spec)
        base_card = read_model(path).card
        t = time.perf_counter()
        scored = score(offline(path, gestures), offline(path, distractors), gestures, distractors, base_card)
        baselines.append({"name": name, "model_file": str(path), **scored})
        print(f"baseline {name} offline in {time.perf_counter() - t:.0f} s", flush=True)
    if args.without_anti_flicker:
        t = time.perf_counter()
        scored = score(offline(model_path, gestures, ()), offline(model_path, distractors, ()), gestures, distractors, card)
        baselines.append({"name": f"{model_path.name}, anti-flicker off", "model_file": str(model_path), **scored})
        print(f"without anti-flicker offline in {time.perf_counter() - t:.0f} s", flush=True)
    if baselines:
        result["baselines"] = baselines
    if not args.no_live:
        t2 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="s2g-heldout-") as tmp:
            res = live(model_path, gestures + distractors, Path(tmp))
        live_finals = [s.predicted if s.predicted is not None else -2 for s in res.segments]
        offline_finals = [o["final"] for o in off_g + off_d]
        rep = res.report()
        result["live"] = {
            "agree_with_offline": int(sum(a == b for a, b in zip(live_finals, offline_finals, strict=True))),
            "n": len(live_finals), "accuracy_gestures": float(np.mean(np.array(live_finals[: len(gestures)]) == labels)),
            "time_to_first_correct_ms": rep["time_to_first_correct_ms"], "wrong_onsets_per_segment": rep.get("wrong_onsets_per_segment"),
            "none_segments": rep.get("none_segments"), "pred_latency_ms": rep["pred_latency_ms"], "wall_s": time.perf_counter() - t2,
        }  # fmt: skip
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    write_section(out, report_md(result).splitlines())
    if args.write_card and not args.quick:
        write_card_metrics(model_path, result)
        print(f"recorded in the card of {model_path}")
    return 0


def score(off_g: list[dict[str, Any]], off_d: list[dict[str, Any]], gestures: list[Any], distractors: list[Any],
          card: Any) -> dict[str, Any]:
    """One model's figures from its offline decisions on the gesture and distractor recordings."""
    from s2gesture.models import userstats

    none = card.none_index
    labels = np.array([int(r.label) for r in gestures])
    finals = np.array([o["final"] for o in off_g])
    correct = finals == labels
    sessions_of = [userstats.session_of(r.name, r.meta) for r in gestures]
    stats = userstats.accuracy_stats(correct, [u for u, _ in sessions_of], [li for _, li in sessions_of])
    ttc = [o["ttc_ms"] for o in off_g if o["ttc_ms"] is not None]
    wrong = sum(sum(c != lab for c in o["onsets"]) for o, lab in zip(off_g, labels, strict=True)) / len(off_g)
    minutes = len(distractors) * DISTRACTOR_S / 60
    by_kind: dict[str, int] = {}
    for rec, o in zip(distractors, off_d, strict=True):
        # a distractor's false decisions: every onset, and a final that names a gesture
        n_false = len(o["onsets"]) + (o["final"] not in (-1, none))
        by_kind[rec.meta["distractor"]] = by_kind.get(rec.meta["distractor"], 0) + n_false
    false = sum(by_kind.values())
    return {
        "accuracy": float(correct.mean()), **{k: stats[k] for k in ("user_ci", "per_lighting", "worst_user", "summary")},
        "final_none_on_gestures": int((finals == none).sum()) if none is not None else 0,
        "time_to_first_correct_ms": {"p50": float(np.median(ttc)) if ttc else None,
                                     "p90": float(np.percentile(ttc, 90)) if ttc else None, "n": len(ttc)},
        "wrong_onsets_per_recording": wrong,
        "distractor_minutes": minutes, "false_decisions": int(false), "false_per_10min": false / minutes * 10,
        "false_by_kind": by_kind,
        "distractor_final_none": int(sum(o["final"] == none for o in off_d)) if none is not None else 0,
        "n_distractors": len(distractors), "n_gestures": len(gestures), "errors": confusion_summary(labels, finals, card.classes),
    }  # fmt: skip


def _baseline_arg(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` (or a bare PATH, named after its file) of a model to compare against on the same recordings."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).stem, spec
    if not Path(path).is_file():
        raise SystemExit(f"--baseline {spec!r}: expected NAME=PATH of a model file (.nir), found no file {path!r}")
    return name, Path(path)


#: the same arm circling the other way (right arm cw/ccw, left arm cw/ccw), by class index
DIRECTION_PAIRS = ({3, 4}, {5, 6})


def confusion_summary(labels: np.ndarray, finals: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """How many errors swap a circle's direction, and the most frequent (true, answered) pairs."""
    wrong = labels != finals
    swaps = sum({int(a), int(b)} in DIRECTION_PAIRS for a, b in zip(labels[wrong], finals[wrong], strict=True))
    pairs: dict[tuple[int, int], int] = {}
    for a, b in zip(labels[wrong], finals[wrong], strict=True):
        pairs[(int(a), int(b))] = pairs.get((int(a), int(b)), 0) + 1
    name = {i: c for i, c in enumerate(classes)} | {-1: "(no answer)"}
    top = sorted(pairs.items(), key=lambda kv: -kv[1])[:5]
    return {"n_errors": int(wrong.sum()), "direction_swaps": int(swaps),
            "top": [{"true": name[a], "answered": name[b], "n": n} for (a, b), n in top]}  # fmt: skip


def write_card_metrics(model_path: Path, result: dict[str, Any]) -> None:
    """Put the held-out figures on the model's card (``metrics.heldout``), keeping everything else."""
    import dataclasses

    from s2gesture.daemon.card import read_model, write_model

    model = read_model(model_path)
    keep = ("gesture_seed", "distractor_seed", "users", "lightings_per_user", "n_gesture_recordings", "accuracy",
            "user_ci", "worst_user", "per_lighting", "time_to_first_correct_ms", "wrong_onsets_per_recording",
            "distractor_minutes", "false_per_10min", "false_by_kind", "anti_flicker_hz")  # fmt: skip
    heldout = {k: result[k] for k in keep} | {"measured_by": "benchmarks/bench_heldout.py",
                                              "live_agrees_with_offline": result.get("live", {}).get("agree_with_offline")}  # fmt: skip
    card = dataclasses.replace(model.card, metrics={**model.card.metrics, "heldout": heldout})
    write_model(model_path, model.graph, card)


def report_md(r: dict[str, Any]) -> str:
    """The BENCHMARKS.md section."""
    ci = r["user_ci"]
    t = r["time_to_first_correct_ms"]
    lines = [
        f"## Held-out users and distractor footage (bench_heldout.py, seeds {r['gesture_seed']} / {r['distractor_seed']})",
        "",
        f"Model `{r['model']}` ({r['model_file']}, classes: {len(r['classes'])}), emulator, the daemon's default "
        f"configuration. {r['users']} users generated with seed {r['gesture_seed']} x {r['lightings_per_user']} lightings x 11 "
        f"gestures of {r['gesture_s']:g} s ({r['n_gesture_recordings']} recordings), and {r['distractor_minutes']:.0f} min of "
        f"distractor scenes (seed {r['distractor_seed']}); neither seed was used for training, validation or tuning.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| final accuracy, 95 % interval over users | {100 * r['accuracy']:.1f} % [{100 * ci['lo']:.1f}, {100 * ci['hi']:.1f}] | >= 93 % |",
        f"| worst user | {r['worst_user']['user']} {100 * r['worst_user']['acc']:.1f} % | >= 85 % |",
        f"| onset -> first correct gesture, median / p90 (event time) | {t['p50']:.0f} / {t['p90']:.0f} ms ({t['n']} recordings) | <= 150 / 300 ms |"
        if t["p50"] is not None else "| onset -> first correct gesture | no correct onset | <= 150 / 300 ms |",
        f"| wrong onsets per recording | {r['wrong_onsets_per_recording']:.2f} | <= 0.1 |",
        f"| false gesture decisions per 10 min of distractors | {r['false_per_10min']:.1f} ({r['false_decisions']} in {r['distractor_minutes']:.0f} min; "
        f"by kind: {', '.join(f'{k} {v}' for k, v in r['false_by_kind'].items())}) | <= 1 |",
        f"| distractor recordings whose final decision is `none` | {r['distractor_final_none']} of {r['n_distractors']} | |",
        f"| gesture recordings whose final decision is `none` | {r['final_none_on_gestures']} of {r['n_gesture_recordings']} | |",
        "",
        "Per lighting: " + ", ".join(f"{x['lighting']} {100 * x['acc']:.1f} %" for x in r["per_lighting"]) + ".",
    ]
    if "errors" in r:
        e = r["errors"]
        lines += ["", f"Errors: {e['n_errors']}, of which {e['direction_swaps']} answer the same arm circling the other way; "
                  "most frequent: " + "; ".join(f"{t['true']} -> {t['answered']} {t['n']}" for t in e["top"]) + "."]  # fmt: skip
    if "live" in r:
        lv = r["live"]
        lt = lv["time_to_first_correct_ms"]
        lines += ["", f"Through the live daemon: {lv['agree_with_offline']} of {lv['n']} final decisions identical to the "
                  f"offline run; accuracy {100 * lv['accuracy_gestures']:.1f} %; onset -> first correct gesture p50 "
                  f"{lt.get('p50', float('nan')):.0f} ms, p90 {lt.get('p90', float('nan')):.0f} ms; daemon latency per "
                  f"prediction p50 {lv['pred_latency_ms'].get('p50', float('nan')):.2f} ms; {lv['wall_s']:.0f} s wall."]  # fmt: skip
    if r.get("baselines"):
        lines += ["", "Against other models or settings on the same recordings, measured offline in the same run (`--baseline`, `--without-anti-flicker`):", "",
                  "| model | accuracy [95 % CI over users] | worst user | onset -> first correct, p50 / p90 | wrong onsets/rec "
                  "| false decisions/10 min | distractors ending `none` | gestures ending `none` | errors swapping a circle's direction |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in [{"name": f"{r['model_file']} (this run's model)", **r}, *r["baselines"]]:
            lines.append(_comparison_row(row))
    return "\n".join(lines) + "\n"


def _comparison_row(m: dict[str, Any]) -> str:
    """One model's line of the comparison table."""
    ci, t, e = m["user_ci"], m["time_to_first_correct_ms"], m["errors"]
    ttc = f"{t['p50']:.0f} / {t['p90']:.0f} ms" if t["p50"] is not None else "no correct onset"
    return (f"| {m['name']} | {100 * m['accuracy']:.1f} % [{100 * ci['lo']:.1f}, {100 * ci['hi']:.1f}] | "
            f"{100 * m['worst_user']['acc']:.1f} % | {ttc} | {m['wrong_onsets_per_recording']:.2f} | "
            f"{m['false_per_10min']:.0f} | {m['distractor_final_none']} of {m['n_distractors']} | "
            f"{m['final_none_on_gestures']} of {m['n_gestures']} | "
            f"{e['direction_swaps']} of {e['n_errors']} |")  # fmt: skip


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
