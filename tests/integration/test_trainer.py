"""facesearch-trainer: losses and mining against brute force, the split, a real short run
(only the head changes), checkpoints, determinism, evaluation against DESIGN §3, and an
export that the server loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from keras import ops

from facesearch.client import FaceSearchClient
from facesearch.embedder import FaceMode
from facesearch.testing import ServerProcess
from facesearch.trainer import losses, metrics
from facesearch.trainer.data import load_dataset
from facesearch.trainer.errors import TrainerError
from facesearch.trainer.sampling import BatchSampler

from tests.conftest import AVENGERS

PEOPLE = ["chris_evans", "chris_hemsworth", "mark_ruffalo", "robert_downey_jr", "scarlett_johansson"]


def unit(rng, n, d=8):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def value(t) -> float:
    return float(ops.convert_to_numpy(t))


# -- losses and mining: keras.ops against plain-numpy brute force -------------------------------
def brute_force(e, y, margin, mining):
    d = ((e[:, None] - e[None]) ** 2).sum(-1)
    out = []
    for a in range(len(e)):
        pos = [p for p in range(len(e)) if p != a and y[p] == y[a]]
        neg = [n for n in range(len(e)) if y[n] != y[a]]
        if not pos or not neg:
            continue
        if mining == "batch-hard":
            out.append(max(0.0, max(d[a, pos]) - min(d[a, neg]) + margin))
            continue
        for p in pos:
            farther = [d[a, n] for n in neg if d[a, n] > d[a, p]]
            chosen = min(farther) if farther else max(d[a, neg])
            out.append(max(0.0, d[a, p] - chosen + margin))
    return float(np.mean(out))


@pytest.mark.parametrize("mining", ["batch-hard", "semi-hard"])
def test_online_mining_matches_brute_force(mining):
    rng = np.random.default_rng(1)
    e, y = unit(rng, 24), rng.integers(0, 4, 24).astype(np.float32)
    got = value(losses.triplet_loss(mining, 0.9)(y, e))
    assert got == pytest.approx(brute_force(e, y, 0.9, mining), rel=1e-4, abs=1e-5)
    assert got > 0


def test_random_triplet_loss_is_the_seeds():
    rng = np.random.default_rng(2)
    e = unit(rng, 30)
    a, p, n = e[0::3], e[1::3], e[2::3]
    expected = np.maximum(((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(1) + 0.9, 0).mean()
    assert value(losses.triplet_loss("random", 0.9)(np.zeros(30), e)) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="unknown mining"):
        losses.triplet_loss("hardest", 0.9)


def test_batches_are_balanced_and_seeded():
    labels = np.repeat(np.arange(5), [30, 3, 10, 2, 8])
    s = BatchSampler(labels, "random", 64)
    ids, y = s.sample(np.random.default_rng(0))
    t = ids.reshape(-1, 3)
    assert (labels[t[:, 0]] == labels[t[:, 1]]).all() and (t[:, 0] != t[:, 1]).all()
    assert (labels[t[:, 0]] != labels[t[:, 2]]).all()
    # anchors are drawn per class, not per image: the small classes get their share
    assert np.bincount(labels[t[:, 0]], minlength=5).min() >= 4
    again, _ = s.sample(np.random.default_rng(0))
    assert (again == ids).all()
    pk, y = BatchSampler(labels, "batch-hard", 16, 4).sample(np.random.default_rng(0))
    assert len(pk) == 16 and sorted(np.bincount(y.astype(int))[np.bincount(y.astype(int)) > 0]) == [4, 4, 4, 4]
    with pytest.raises(TrainerError, match="two identities"):
        BatchSampler(np.zeros(5), "random", 8)


# -- evaluation maths --------------------------------------------------------------------------
def test_thresholds_and_calibration():
    neg = np.array([1.0, 2.0, 3.0, 4.0])
    assert metrics.threshold_at(neg, 0.0) < 1.0 and metrics.threshold_at(neg, 0.25) < 2.0
    assert metrics.threshold_at(neg, 0.25) >= 1.0
    d = np.array([0.5, 1.0, 1.5, 3.0, 3.5, 4.0])
    same = np.array([True, True, True, False, False, False])
    t, acc = metrics._best_threshold(d, same)
    assert 1.5 < t < 3.0 and acc == 1.0
    cv = metrics.cross_validated_accuracy(np.tile(d, 5), np.tile(same, 5), folds=5)
    assert cv["accuracy"] == 1.0 and 1.5 < cv["threshold"] < 3.0


def test_seed_split_file_is_read(tmp_path):
    ds = load_dataset(AVENGERS, AVENGERS / "seed_split.json")
    assert ds.people == PEOPLE and (len(ds.train), len(ds.test)) == (221, 52)
    assert any("scarlett_johansson8.png" in n for n in ds.notes)
    assert not {s.sha256 for s in ds.train} & {s.sha256 for s in ds.test}
    again = load_dataset(AVENGERS, test_fraction=0.2, seed=3)
    assert [s.path for s in again.test] == [s.path for s in load_dataset(AVENGERS, test_fraction=0.2, seed=3).test]
    bad = tmp_path / "split.json"
    bad.write_text("[1, 2]")
    with pytest.raises(TrainerError, match="cannot read the split"):
        load_dataset(AVENGERS, bad)


# -- real runs on a small copy of the Avengers crops -------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    for person in PEOPLE:
        (root / person).mkdir()
        for f in sorted((AVENGERS / person).iterdir())[:4]:
            (root / person / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("trainer-cache")


def small_config(tiny, out, cache, **kw):
    from facesearch.trainer.train import TrainConfig

    values = dict(data=tiny, out=out, face_mode=FaceMode.CROPPED, batch_size=8, steps_per_epoch=2, epochs=1,
                  augment_copies=2, test_fraction=0.25, cache_dir=cache, progress=False)
    return TrainConfig(**{**values, **kw})


def weights_of(model) -> dict:
    return {f"{layer.name}/{i}": w.copy() for layer in model.layers for i, w in enumerate(layer.get_weights())}


def test_a_short_run_changes_only_the_last_block(tiny, tmp_path, cache):
    from facesearch.trainer.train import Run

    r = Run(small_config(tiny, tmp_path / "out", cache)).prepare()
    before = weights_of(r.net.full)
    r.train()
    after = weights_of(r.net.full)
    trainable = {layer.name for layer in r.net.trainable_layers()}
    assert "Bottleneck" in trainable and "Block8_6_Conv2d_1x1" in trainable
    assert not any(n.startswith(("Block8_5", "Conv2d_1a")) or "BatchNorm" in n for n in trainable)
    changed = {k.split("/")[0] for k in before if not np.array_equal(before[k], after[k])}
    assert changed and changed <= trainable, changed - trainable
    assert "Bottleneck" in changed
    assert r.step == 2 and len(r.history) == 2 and (tmp_path / "out" / "checkpoint" / "state.json").is_file()


def test_loss_decreases_on_a_fixed_batch(tiny, tmp_path, cache):
    from facesearch.trainer.train import Run

    # a wide margin keeps every triplet active, so the loss can only fall by learning
    r = Run(small_config(tiny, tmp_path / "out", cache, lr=1e-4, margin=2.0, mining="batch-hard")).prepare()
    x, y = r.batch()
    losses_seen = [float(np.asarray(r.trained.train_on_batch(x, y)).reshape(-1)[0]) for _ in range(6)]
    assert losses_seen[0] > 0 and losses_seen[-1] < losses_seen[0], losses_seen


def test_the_same_seed_gives_the_same_run(tiny, tmp_path, cache):
    from facesearch.trainer.train import Run

    runs = []
    for name in ("a", "b"):
        r = Run(small_config(tiny, tmp_path / name, cache, steps_per_epoch=3, mining="semi-hard")).prepare()
        r.train()
        runs.append(r)
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    a, b = weights_of(runs[0].net.head), weights_of(runs[1].net.head)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_interrupt_saves_a_checkpoint_and_resume_continues(tiny, tmp_path, cache, monkeypatch):
    from facesearch.trainer.train import Run

    out = tmp_path / "out"
    r = Run(small_config(tiny, out, cache, epochs=2)).prepare()
    calls = {"n": 0}
    real_batch = r.batch

    def interrupted():
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_batch()

    monkeypatch.setattr(r, "batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        r.train()
    saved = weights_of(r.net.head)
    assert r.step == 3 and json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 3

    with pytest.raises(TrainerError, match="unfinished run"):
        Run(small_config(tiny, out, cache, epochs=2)).prepare()
    with pytest.raises(TrainerError, match="other settings"):
        Run(small_config(tiny, out, cache, epochs=2, margin=0.5, resume=True)).prepare().load_checkpoint()
    resumed = Run(small_config(tiny, out, cache, epochs=2, resume=True)).prepare()
    resumed.load_checkpoint()
    assert resumed.step == 3 and len(resumed.history) == 3
    restored = weights_of(resumed.net.head)
    assert all(np.array_equal(saved[k], restored[k]) for k in saved)
    resumed.train()
    assert resumed.step == 4 and [h["step"] for h in resumed.history] == [1, 2, 3, 4]


# -- evaluation of the pretrained model: DESIGN §3 -----------------------------------------------
def test_evaluate_reproduces_the_design_figures(embedder, cache):
    from facesearch.trainer.evaluate import EvalConfig, evaluate_model

    ev = evaluate_model(EvalConfig(model="facenet-128", data=AVENGERS, split=AVENGERS / "seed_split.json",
                                   face_mode=FaceMode.CROPPED, cache_dir=cache, progress=False), embedder)
    assert ev["counts"]["train"] + ev["counts"]["test"] == 273
    assert ev["identification"] == {"top1_one_anchor_per_person": 1.0, "top1_whole_gallery": 1.0}
    every = ev["all_images"]    # DESIGN: medians 1.63 / 6.13, accepted at 3.5: 98.4% / 1.8%
    assert every["genuine"]["median"] == pytest.approx(1.63, abs=0.05)
    assert every["impostor"]["median"] == pytest.approx(6.13, abs=0.05)
    assert every["genuine_accepted"] == pytest.approx(0.984, abs=0.01)
    assert every["impostor_accepted"] == pytest.approx(0.018, abs=0.005)
    rejected = ev["open_set"]["at_cutoff"]["nonmated_rejected"]   # DESIGN: 0/10 3/10 13/13 9/10 9/9
    assert rejected["mark_ruffalo"] == [13, 13] and rejected["chris_evans"] == [0, 10]
    assert sum(r[0] for r in rejected.values()) == pytest.approx(34, abs=1) and ev["open_set"]["nonmated_probes"] == 52
    assert ev["recommended_max_distance"]["max_distance"] < 3.5   # 3.5 lets strangers through (DESIGN §3)


# -- the CLI end to end, and the server serving its export ------------------------------------
def trainer_cli(*args, timeout=900, env=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "facesearch.trainer", *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.fixture(scope="module")
def exported(tiny, cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "model"
    r = trainer_cli("train", "--data", tiny, "--out", out, "--face-mode", "cropped", "--epochs", 1, "--batch-size", 8,
                    "--steps-per-epoch", 2, "--augment-copies", 2, "--test-fraction", 0.25, "--cache-dir", cache,
                    "--model-id", "avengers-ft", "--no-progress")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "top-1, one anchor per person" in r.stdout and "exported avengers-ft" in r.stdout
    return out


def test_export_holds_weights_manifest_report_and_plots(exported):
    manifest = json.loads((exported / "model.json").read_text())
    assert manifest["model_id"] == "avengers-ft" and manifest["base_model"] == "facenet-128"
    assert manifest["dimension"] == 128 and manifest["preprocessing"]["standardization"] == "per_image"
    assert manifest["training"]["margin"] == 0.9 and manifest["training"]["mining"] == "random"
    assert set(manifest["metrics"]) == {"before", "after"} and len(manifest["weights_sha256"]) == 64
    assert isinstance(manifest["recommended_max_distance"], float)
    report = json.loads((exported / "report.json").read_text())
    assert report["steps"] == 2 and len(report["history"]) == 2
    for png in ("distances.png", "roc.png", "loss.png"):
        assert (exported / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (exported / "checkpoint").exists()


def test_the_server_serves_the_export_and_galleries_never_mix(exported, tmp_path, tiny, embedder):
    from facesearch.embedder import decode
    from facesearch.gallery import Gallery, GalleryConfig, NewFace

    crops = {p: sorted((tiny / p).iterdir()) for p in PEOPLE[:2]}
    mixed = tmp_path / "facenet-128-gallery"
    g = Gallery.open(GalleryConfig(data_dir=mixed), model_id="facenet-128", dimension=128)
    g.add_faces(PEOPLE[0], [NewFace(embedder.embed_crops([decode(crops[PEOPLE[0]][0].read_bytes())])[0])])
    g.close()
    with pytest.raises(RuntimeError, match="embedded by 'facenet-128'.*not 'avengers-ft'"):
        ServerProcess(mixed, env={"FACESEARCH_MODEL": str(exported)}).start()

    server = ServerProcess(tmp_path / "served", env={"FACESEARCH_MODEL": str(exported)})
    server.start()
    try:
        with FaceSearchClient(server.target, timeout=120) as client:
            assert client.info().model_id == "avengers-ft"
            for person, files in crops.items():
                client.enroll(person, [f.read_bytes() for f in files[:3]], face_mode=FaceMode.CROPPED)
            reply = client.identify(crops[PEOPLE[1]][3].read_bytes(), face_mode=FaceMode.CROPPED)
            assert reply.model_id == "avengers-ft" and reply.faces[0].matches[0].identity_id == PEOPLE[1]
    finally:
        server.stop()


def test_the_same_training_code_runs_under_jax(tiny, cache, tmp_path, embedder):
    """keras/keras.ops only: KERAS_BACKEND=jax trains, and TensorFlow serves what it exported."""
    out = tmp_path / "jax-model"
    r = trainer_cli("train", "--data", tiny, "--out", out, "--face-mode", "cropped", "--epochs", 1, "--batch-size", 8,
                    "--steps-per-epoch", 2, "--augment-copies", 2, "--test-fraction", 0.25, "--cache-dir", cache,
                    "--mining", "semi-hard", "--margin", 2.0, "--lr", 1e-4, "--model-id", "jax-ft", "--no-progress",
                    env={"KERAS_BACKEND": "jax"})
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["hardware"]["backend"] == "jax" and len(report["history"]) == 2
    assert all(np.isfinite(h["loss"]) and h["loss"] > 0 for h in report["history"])
    from facesearch.embedder import Embedder, EmbedderConfig, decode

    served = Embedder.load(EmbedderConfig.from_env(model=str(out)))
    crops = [decode(p.read_bytes()) for p in sorted((tiny / PEOPLE[0]).iterdir())[:2]]
    e = served.embed_crops(crops)
    assert served.model_id == "jax-ft" and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-4)
    assert not np.allclose(e, embedder.embed_crops(crops), atol=1e-6)   # the trained head changed something


def test_evaluate_and_calibrate_commands(tiny, cache, tmp_path, capsys):
    from facesearch.trainer.cli import main

    common = ["--data", str(tiny), "--face-mode", "cropped", "--test-fraction", "0.25", "--cache-dir", str(cache),
              "--target-fpir", "0.2", "--no-progress"]
    assert main(["evaluate", "--model", "facenet-128", "--out", str(tmp_path / "eval"), *common]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())["evaluation"]
    assert report["model_id"] == "facenet-128" and report["counts"] == {
        "people": 5, "train": 15, "test": 5, "genuine_pairs": 15, "impostor_pairs": 70}  # 10 test-test, 60 test-train
    assert {"distances.png", "roc.png"} <= {p.name for p in (tmp_path / "eval").iterdir()}
    assert "top-1, one anchor per person" in capsys.readouterr().out

    assert main(["calibrate", "--model", "facenet-128", *common]) == 0
    out, err = capsys.readouterr()
    cutoff = float(out.splitlines()[0])      # the evaluation's recommended cutoff, floored to 2 decimals
    assert cutoff == np.floor(report["recommended_max_distance"]["max_distance"] * 100) / 100
    assert 0 < cutoff < 12 and f"FACESEARCH_MAX_DISTANCE={cutoff:.2f}" in err and "of 5 probes" in err


def test_cli_errors_are_clear(tmp_path):
    r = trainer_cli("calibrate", "--data", tmp_path / "nowhere", "--model", "facenet-128")
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr
