"""``s2gesture evaluate``'s model runs before and after parallel workers, in the same run.

Usage: ``python benchmarks/bench_evaluate.py --data ROOT --float model.pt --quantized a.nir b.nir [--old OLD.py]``.
Times :func:`s2gesture.models.evaluate.evaluate` (float + the int8 variants, default ablations, 3 seeds) with
1 worker and with every core, and, given ``--old`` (a copy of evaluate.py before the change, e.g.
``git show REV:models/evaluate.py > old.py``), the previous implementation on the same inputs. Prints JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--float", dest="float_model", required=True)
    p.add_argument("--quantized", nargs="+", required=True)
    p.add_argument("--old", help="evaluate.py before the change (baseline)")
    p.add_argument("--limit", type=int, default=22)
    args = p.parse_args()
    from s2gesture.daemon.preprocess import PreprocessSpec
    from s2gesture.models import evaluate as ev
    from s2gesture.models.binned import load_split
    from s2gesture.models.train import load_model_file, setup_torch

    setup_torch(0, 2)
    test = load_split(args.data, "test", PreprocessSpec(sensor_size=(128, 128)), limit=args.limit, progress=False)
    float_model, _ = load_model_file(args.float_model)
    variants = [ev.load_variant(q) for q in args.quantized]
    out: dict[str, object] = {"recordings": len(test), "variants": len(variants), "seeds": 3}
    runs = {"new_1_worker": dict(workers=1), "new_all_cores": dict(workers=ev.default_workers())}
    if args.old:
        spec = importlib.util.spec_from_file_location("s2gesture.models._evaluate_old", args.old)
        old = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[spec.name] = old  # type: ignore[union-attr]
        spec.loader.exec_module(old)  # type: ignore[union-attr]
        t0 = time.perf_counter()
        base = old.evaluate(float_model, variants, test, seeds=(0, 1, 2), progress=lambda s: None)
        out["old_s"] = time.perf_counter() - t0
    for name, kw in runs.items():
        t0 = time.perf_counter()
        rep = ev.evaluate(float_model, variants, test, seeds=(0, 1, 2), progress=lambda s: None, bar=False, **kw)
        out[f"{name}_s"] = time.perf_counter() - t0
        if args.old:
            same = all(a["first_window_acc"] == b["first_window_acc"] and a["seed_window_acc"] == b["seed_window_acc"]
                       and a["full_recording_acc"] == b["full_recording_acc"] for a, b in zip(base["rows"], rep["rows"], strict=True))  # fmt: skip
            out[f"{name}_same_results_as_old"] = same
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
