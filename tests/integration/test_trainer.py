"""facesearch-trainer in-process with the real model: a short run on crops of the sample gallery
(only the head changes), checkpoints, determinism, the evaluate and calibrate commands, and the
pretrained model's figures on the seed's Avengers data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from facesearch.embedder import FaceMode
from facesearch.trainer.data import load_dataset
from facesearch.trainer.errors import TrainerError


def test_the_seed_split_file_is_read(avengers, tmp_path):
    ds = load_dataset(avengers, avengers / "seed_split.json")
    assert ds.people == ["chris_evans", "chris_hemsworth", "mark_ruffalo", "robert_downey_jr", "scarlett_johansson"]
    assert (len(ds.train), len(ds.test)) == (221, 52)
    assert any("scarlett_johansson8.png" in n for n in ds.notes)
    assert not {s.sha256 for s in ds.train} & {s.sha256 for s in ds.test}


# -- real runs on four crops per person of the sample gallery ------------------------------------
def small_config(crops, out, cache, **kw):
    from facesearch.trainer.train import TrainConfig

    values = dict(data=crops, out=out, face_mode=FaceMode.CROPPED, batch_size=8, steps_per_epoch=2, epochs=1,
                  augment_copies=2, test_fraction=0.25, cache_dir=cache, progress=False)
    return TrainConfig(**{**values, **kw})


def weights_of(model) -> dict:
    return {f"{layer.name}/{i}": w.copy() for layer in model.layers for i, w in enumerate(layer.get_weights())}


def test_a_short_run_changes_only_the_last_block(sample_crops, tmp_path, trainer_cache):
    from facesearch.trainer.train import Run

    r = Run(small_config(sample_crops, tmp_path / "out", trainer_cache)).prepare()
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


def test_loss_decreases_on_a_fixed_batch(sample_crops, tmp_path, trainer_cache):
    from facesearch.trainer.train import Run

    # a wide margin keeps every triplet active, so the loss can only fall by learning
    config = small_config(sample_crops, tmp_path / "out", trainer_cache, lr=1e-4, margin=2.0, mining="batch-hard")
    r = Run(config).prepare()
    x, y = r.batch()
    losses_seen = [float(np.asarray(r.trained.train_on_batch(x, y)).reshape(-1)[0]) for _ in range(6)]
    assert losses_seen[0] > 0 and losses_seen[-1] < losses_seen[0], losses_seen


def test_the_same_seed_gives_the_same_run(sample_crops, tmp_path, trainer_cache):
    from facesearch.trainer.train import Run

    runs = []
    for name in ("a", "b"):
        config = small_config(sample_crops, tmp_path / name, trainer_cache, steps_per_epoch=3, mining="semi-hard")
        r = Run(config).prepare()
        r.train()
        runs.append(r)
    assert [h["loss"] for h in runs[0].history] == [h["loss"] for h in runs[1].history]
    a, b = weights_of(runs[0].net.head), weights_of(runs[1].net.head)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_interrupt_saves_a_checkpoint_and_resume_continues(sample_crops, tmp_path, trainer_cache, monkeypatch):
    from facesearch.trainer.train import Run

    out = tmp_path / "out"
    r = Run(small_config(sample_crops, out, trainer_cache, epochs=2)).prepare()
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
        Run(small_config(sample_crops, out, trainer_cache, epochs=2)).prepare()
    with pytest.raises(TrainerError, match="other settings"):
        Run(small_config(sample_crops, out, trainer_cache, epochs=2, margin=0.5, resume=True)).prepare().load_checkpoint()
    resumed = Run(small_config(sample_crops, out, trainer_cache, epochs=2, resume=True)).prepare()
    resumed.load_checkpoint()
    assert resumed.step == 3 and len(resumed.history) == 3
    restored = weights_of(resumed.net.head)
    assert all(np.array_equal(saved[k], restored[k]) for k in saved)
    resumed.train()
    assert resumed.step == 4 and [h["step"] for h in resumed.history] == [1, 2, 3, 4]


# -- the pretrained model's figures on the seed's Avengers data ---------------------------------
def test_evaluate_reproduces_the_seeds_figures(avengers, embedder, trainer_cache):
    from facesearch.trainer.evaluate import EvalConfig, evaluate_model

    ev = evaluate_model(EvalConfig(model="facenet-128", data=avengers, split=avengers / "seed_split.json",
                                   face_mode=FaceMode.CROPPED, cache_dir=trainer_cache, progress=False), embedder)
    assert ev["counts"]["train"] + ev["counts"]["test"] == 273
    assert ev["identification"] == {"top1_one_anchor_per_person": 1.0, "top1_whole_gallery": 1.0}
    every = ev["all_images"]    # the seed's medians 1.63 / 6.13, accepted at 3.5: 98.4% / 1.8%
    assert every["genuine"]["median"] == pytest.approx(1.63, abs=0.05)
    assert every["impostor"]["median"] == pytest.approx(6.13, abs=0.05)
    assert every["genuine_accepted"] == pytest.approx(0.984, abs=0.01)
    assert every["impostor_accepted"] == pytest.approx(0.018, abs=0.005)
    rejected = ev["open_set"]["at_cutoff"]["nonmated_rejected"]   # the seed's 0/10 3/10 13/13 9/10 9/9
    assert rejected["mark_ruffalo"] == [13, 13] and rejected["chris_evans"] == [0, 10]
    assert sum(r[0] for r in rejected.values()) == pytest.approx(34, abs=1) and ev["open_set"]["nonmated_probes"] == 52
    assert ev["recommended_max_distance"]["max_distance"] < 3.5   # 3.5 lets strangers through


# -- the evaluate and calibrate commands, in-process --------------------------------------------
def test_evaluate_and_calibrate_commands(sample_crops, trainer_cache, tmp_path, capsys):
    from facesearch.trainer.cli import main

    common = ["--data", str(sample_crops), "--face-mode", "cropped", "--test-fraction", "0.25",
              "--cache-dir", str(trainer_cache), "--target-fpir", "0.2", "--no-progress"]
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
