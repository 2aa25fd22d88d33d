"""Training memory with the packed, packed on-disk cache, measured on N generated recordings and extrapolated.

Usage: ``python benchmarks/bench_train_memory.py --out DIR [--n 40] [--duration-s 6]``. Generates N synthetic
recordings (tonic layout), builds the cache (child process, peak RSS), trains one epoch at the default
batch and window (child process, peak RSS, anonymous vs file-backed pages), and in the same run measures the
previous way (every recording unpacked to uint8 in memory). Prints JSON with the per-recording slopes and
the extrapolation to 1,000 recordings.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

CHILD = {
    "build": "from s2gesture.models.binned import load_split\nfrom s2gesture.daemon.preprocess import PreprocessSpec\n"
    "d = load_split(ROOT, 'train', PreprocessSpec(sensor_size=(128, 128)), cache_dir=CACHE, progress=False)\n",
    "train": "from s2gesture.models.binned import load_split\nfrom s2gesture.daemon.preprocess import PreprocessSpec\n"
    "from s2gesture.models.network import PSNN, PSNNConfig\nfrom s2gesture.models.train import TrainConfig, train_model\n"
    "d = load_split(ROOT, 'train', PreprocessSpec(sensor_size=(128, 128)), cache_dir=CACHE, progress=False)\n"
    "train_model(PSNN(PSNNConfig()), d, None, TrainConfig(epochs=1), OUT, progress=False, verbose=False)\n",
    "unpacked": "import numpy as np\nfrom s2gesture.models.binned import load_split\nfrom s2gesture.daemon.preprocess import PreprocessSpec\n"
    "d = load_split(ROOT, 'train', PreprocessSpec(sensor_size=(128, 128)), cache_dir=CACHE, progress=False)\n"
    "held = [np.asarray(s) for s in d.spikes]  # the previous cache: every recording unpacked in memory\n",
}
TAIL = (
    "\nimport json, resource\nst = {l.split(':')[0]: int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(('RssAnon', 'RssFile'))}\n"
    "print(json.dumps({'max_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "
    "'anon_mb': st['RssAnon'] / 1024, 'file_mb': st['RssFile'] / 1024}))\n"
)


def child(kind: str, root: Path, cache: Path, out: Path) -> dict[str, float]:
    code = f"ROOT, CACHE, OUT = {str(root)!r}, {str(cache)!r}, {str(out)!r}\n" + CHILD[kind] + TAIL
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=44, help="recordings to generate (a multiple of 11)")
    p.add_argument("--duration-s", type=float, default=6.0)
    args = p.parse_args()
    from s2gesture.models import synth

    out = Path(args.out)
    root, cache = out / "data", out / "cache"
    users = max(1, args.n // 11)
    if not (root / "DVSGesture").is_dir():
        synth.generate(root, users, 0, 17, duration_s=args.duration_s, repeats=1, workers=2, progress=False)
    result: dict[str, object] = {"recordings": users * 11, "duration_s": args.duration_s}
    for kind in ("build", "train", "unpacked"):
        result[kind] = child(kind, root, cache, out / "run")
    packed = sum(f.stat().st_size for f in cache.rglob("bits.bin"))
    n = users * 11
    result["packed_cache_mb"] = packed / 2**20
    result["packed_mb_per_recording"] = packed / 2**20 / n
    base = result["train"]  # type: ignore[assignment]
    result["extrapolated_1000"] = {
        "train_anon_mb": base["anon_mb"],  # type: ignore[index]
        "train_max_rss_mb": base["max_rss_mb"],  # type: ignore[index]
        "cache_on_disk_mb": 1000 * packed / 2**20 / n,
        "unpacked_in_memory_mb": 1000 * (result["unpacked"]["anon_mb"] - result["build"]["anon_mb"]) / n,  # type: ignore[index]
        "note": "the cache is read with pread (never mapped), so training RSS is the batch's and the model's "
        "whatever the number of recordings: run with two --n to see it stay; the previous way held every "
        "recording unpacked (the last figure)",
    }
    result["self_max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
