"""The trainer's steps/s on a GPU against the CPU, through Keras on JAX (no TensorFlow needed).

    KERAS_BACKEND=jax python -m bench.trainer_gpu [--batch-size 128] [--steps 20] [--full-steps 10]

Each JAX platform (cpu; gpu where JAX sees one, in float32 and in mixed float16 as
`--mixed-precision` trains) runs in a child process of its own, one after the other. Each times
what a training step of `facesearch-trainer` runs, on both of its paths:
- head: the trainable head on cached features (the trainer's default), cut at Block8_6 as
  trainer/network.py cuts it;
- full: the whole network per step (`--no-feature-cache`);
- and the feature pass: the frozen base's images/s at batch 64, paid once per data set.
The network is FaceNet's (embedder/facenet_arch.py) with random weights and random inputs, since a
step's cost depends on neither; the loss and optimiser are the trainer's (random triplets, margin
0.9, Adam). So no weights file or data set is needed: it runs on a bare machine with JAX, keras
and keras-facenet. Writes bench/results/trainer_gpu.json, with each path's gpu/cpu ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench import common

ROOT = Path(__file__).resolve().parent.parent
TRAINABLE_FROM = "Block8_6"
MARGIN, LR = 0.9, 1e-5


def _facenet_arch():
    """embedder/facenet_arch.py by its path: importing facesearch.embedder would load OpenCV and the
    rest of the embedder, which a bare GPU machine need not have."""
    spec = importlib.util.spec_from_file_location("facenet_arch", ROOT / "embedder" / "facenet_arch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trainer():
    """facesearch.trainer's network and losses, from the installed package or from this checkout."""
    try:
        from facesearch.trainer import losses, network
    except ModuleNotFoundError:   # a checkout not installed: its folders are facesearch's subpackages
        import facesearch

        facesearch.__path__.append(str(ROOT))
        from facesearch.trainer import losses, network
    return losses, network


def _rate(step, count: int) -> float:
    step()   # compile, untimed
    step()
    t = time.perf_counter()
    for _ in range(count):
        step()
    return count / (time.perf_counter() - t)


def child(args: argparse.Namespace) -> dict:
    import jax
    import keras
    import numpy as np

    if args.precision != "float32":
        keras.mixed_precision.set_global_policy(args.precision)
    losses, network = _trainer()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    net = network.split(_facenet_arch().build_inception_resnet_v1(128), TRAINABLE_FROM)
    images = 3 * args.batch_size
    labels = np.repeat(np.arange(args.batch_size) % 5, 3).astype(np.float32)
    out: dict = {"platform": args.platform, "precision": args.precision,
                 "device": str(jax.devices()[0].device_kind), "devices": len(jax.devices())}

    batch = rng.standard_normal((64, 160, 160, 3), dtype=np.float32)
    out["feature_pass_images_per_s"] = 64 * _rate(lambda: np.asarray(net.base.predict_on_batch(batch)),
                                                   args.feature_batches)

    def steps(model, x, count):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=LR), loss=losses.triplet_loss("random", MARGIN))
        loss = []
        rate = _rate(lambda: loss.append(float(np.asarray(model.train_on_batch(x, labels)).reshape(-1)[0])), count)
        if not all(np.isfinite(loss)):
            raise SystemExit(f"{model.name}: a non-finite loss {loss}")
        return {"steps_per_s": rate, "triplets_per_s": rate * args.batch_size, "images_per_step": images,
                "steps": count, "last_loss": loss[-1]}

    features = rng.standard_normal((images, *net.feature_shape), dtype=np.float32)
    out["head"] = steps(net.head, features, args.steps)
    out["full"] = steps(net.full, rng.standard_normal((images, 160, 160, 3), dtype=np.float32), args.full_steps)
    return out


def run_child(platform_name: str, precision: str, args: argparse.Namespace) -> dict | None:
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS=platform_name, PYTHONUNBUFFERED="1")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    full_steps = args.cpu_full_steps if platform_name == "cpu" else args.full_steps
    cmd = [sys.executable, "-m", "bench.trainer_gpu", "--child", platform_name, "--precision", precision,
           "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--full-steps", str(full_steps),
           "--feature-batches", str(args.feature_batches)]
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        print(f"  {platform_name} {precision}: failed ({proc.returncode})\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    row["wall_s"] = time.perf_counter() - t
    print(f"  {platform_name} {precision} on {row['device']}: head {row['head']['steps_per_s']:.2f} steps/s, "
          f"full {row['full']['steps_per_s']:.2f} steps/s, feature pass {row['feature_pass_images_per_s']:.0f} "
          f"images/s ({row['wall_s']:.0f} s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128, help="triplets a step, as the trainer's [128]")
    parser.add_argument("--steps", type=int, default=20, help="timed steps of the head path [20]")
    parser.add_argument("--full-steps", type=int, default=10, help="timed steps of the full path on a GPU [10]")
    parser.add_argument("--cpu-full-steps", type=int, default=3, help="timed steps of the full path on the CPU [3]")
    parser.add_argument("--feature-batches", type=int, default=5, help="timed batches of 64 of the feature pass [5]")
    parser.add_argument("--no-mixed", action="store_true", help="skip the GPU's mixed float16 run")
    parser.add_argument("--timeout", type=float, default=480, help="seconds each child may take [480]")
    parser.add_argument("--commit", default="", help="recorded in the results where git cannot say [git's HEAD]")
    parser.add_argument("--out", type=Path, default=common.RESULTS / "trainer_gpu.json")
    parser.add_argument("--child", choices=("cpu", "cuda"), help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="float32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.platform = args.child
        print(json.dumps(child(args)))
        return

    import jax   # which platforms there are; the children do the work

    has_gpu = any(d.platform == "gpu" for d in jax.devices())
    runs = [("cpu", "float32")]
    if has_gpu:
        runs += [("cuda", "float32")] + ([] if args.no_mixed else [("cuda", "mixed_float16")])
    machine = common.machine()
    machine["commit"] = args.commit or machine["commit"]   # a copy of the tree without .git says it here
    result: dict = {"machine": machine, "batch_size": args.batch_size, "runs": []}
    for name, precision in runs:
        row = run_child(name, precision, args)
        if row:
            result["runs"].append(row)
    cpu = next((r for r in result["runs"] if r["platform"] == "cpu"), None)
    for r in result["runs"]:
        if cpu and r is not cpu:
            r["vs_cpu"] = {path: r[path]["steps_per_s"] / cpu[path]["steps_per_s"] for path in ("head", "full")}
            r["vs_cpu"]["feature_pass"] = r["feature_pass_images_per_s"] / cpu["feature_pass_images_per_s"]
            print(f"  {r['platform']} {r['precision']} against the CPU: head {r['vs_cpu']['head']:.1f}x, "
                  f"full {r['vs_cpu']['full']:.1f}x, feature pass {r['vs_cpu']['feature_pass']:.1f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    if len(result["runs"]) < len(runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
