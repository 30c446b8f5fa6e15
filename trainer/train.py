"""The training run: data, frozen-base features, triplet steps, checkpoints, export."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from tqdm import tqdm

from facesearch.embedder import EmbedderConfig, FaceMode
from facesearch.embedder.models import FUSED_MODEL_ID, LoadedModel, load_model, write_export
from facesearch.embedder.preprocess import preprocess
from facesearch.embedder.weights import WeightsCache

from . import device, metrics, report
from .augment import augment
from .crops import CropCache
from .data import DataConfig, Dataset, load_dataset
from .errors import TrainerError
from .features import compute_features, feature_key
from .losses import triplet_loss
from .network import DEFAULT_TRAINABLE_FROM, SplitModel, split
from .sampling import BatchSampler

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint"
# A resumed run must agree with its checkpoint on these.
_RESUME_KEYS = ("data", "split", "test_fraction", "batch_size", "steps_per_epoch", "margin", "lr", "mining",
                "trainable_from", "seed", "face_mode", "augment_copies", "feature_cache", "images_per_identity",
                "model")


@dataclass(kw_only=True)
class TrainConfig(DataConfig):
    out: Path
    epochs: int = 20
    batch_size: int = 128
    steps_per_epoch: int | None = None      # None: ceil(train images / batch size)
    margin: float = 0.9
    lr: float = 1e-5
    mining: str = "random"
    trainable_from: str = DEFAULT_TRAINABLE_FROM
    augment_copies: int = 4                 # fixed augmented copies per image (copy 0 is the image)
    feature_cache: bool = True              # the fast path: run only the head per step
    images_per_identity: int = 4            # K of the P x K batches (semi-hard, batch-hard)
    model_id: str | None = None
    mixed_precision: bool = False
    resume: bool = False

    def as_json(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = str(Path(v).resolve()) if isinstance(v, Path) else FaceMode(v).name.lower() if f.name == "face_mode" else v
        return out


class Run:
    """One training run: prepare(), [load_checkpoint()], train(), evaluate(), export()."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.history: list[dict] = []
        self.step = 0
        self.hardware = {}
        self.timings: dict[str, float] = {}

    # -- set-up -------------------------------------------------------------
    def prepare(self) -> "Run":
        cfg = self.cfg
        if cfg.epochs < 1 or cfg.batch_size < 2 or (cfg.steps_per_epoch is not None and cfg.steps_per_epoch < 1):
            raise TrainerError("--epochs, --steps-per-epoch must be >= 1 and --batch-size >= 2")
        if cfg.mining != "random" and cfg.batch_size < 2 * cfg.images_per_identity:
            raise TrainerError(f"--batch-size {cfg.batch_size} holds fewer than two identities of "
                               f"{cfg.images_per_identity} images; raise it or lower --images-per-identity")
        if cfg.model == FUSED_MODEL_ID:
            raise TrainerError(f"{FUSED_MODEL_ID} cannot be fine-tuned: it fuses FaceNet with SFace, an ONNX "
                               "model the trainer does not train. Fine-tune facenet-128 (--model facenet-128) "
                               "and serve that export; evaluate and calibrate take the fused model")
        self._check_out()
        self.hardware = device.setup(cfg.seed, cfg.mixed_precision)
        t = time.perf_counter()
        dataset = load_dataset(cfg.data, cfg.split, cfg.test_fraction, cfg.seed)
        embedder_config = cfg.embedder_config()
        crop_cache = CropCache(cfg.cache_dir, cfg.face_mode, embedder_config)
        self.crops, rejected = crop_cache.load(dataset.train + dataset.test, cfg.progress)
        self.crop_folder = crop_cache.folder
        self.dataset: Dataset = dataset.without(set(rejected))
        self.dataset.notes += [f"no usable face, skipped: {why}" for why in rejected.values()]
        self.train_y = self.dataset.labels(self.dataset.train)
        self.test_y = self.dataset.labels(self.dataset.test)
        self.sampler = BatchSampler(self.train_y, cfg.mining, cfg.batch_size, cfg.images_per_identity)
        self.steps_per_epoch = cfg.steps_per_epoch or max(1, math.ceil(len(self.dataset.train) / cfg.batch_size))
        self.timings["data_s"] = time.perf_counter() - t

        t = time.perf_counter()
        self.base_model: LoadedModel = load_model(cfg.model, WeightsCache(embedder_config.cache_dir),
                                                  download_timeout=embedder_config.download_timeout)
        self.net: SplitModel = split(self.base_model.keras_model, cfg.trainable_from)
        self.features = None
        if cfg.feature_cache:
            key = feature_key(self.base_model.model_id, cfg.trainable_from, cfg.augment_copies, cfg.seed,
                              self.crop_folder)
            samples = self.dataset.train + self.dataset.test
            self.features = compute_features(
                self.net.base, samples, self.crops, copies=cfg.augment_copies, seed=cfg.seed,
                folder=cfg.cache_dir / "features" / key, image_size=self.base_model.image_size,
                standardization=self.base_model.standardization, progress=cfg.progress)
        self.timings["features_s"] = time.perf_counter() - t
        self.trained = self.net.head if cfg.feature_cache else self.net.full
        self.trained.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.lr),
                             loss=triplet_loss(cfg.mining, cfg.margin))
        self.trained.optimizer.build(self.trained.trainable_variables)
        self.rng = np.random.default_rng(cfg.seed)
        return self

    def _check_out(self) -> None:
        out, cfg = self.cfg.out, self.cfg
        has_checkpoint = (out / CHECKPOINT / "state.json").is_file()
        if cfg.resume and not has_checkpoint:
            raise TrainerError(f"--resume: {out} holds no checkpoint to resume from")
        if not cfg.resume and has_checkpoint:
            raise TrainerError(f"{out} holds an unfinished run; continue it with --resume, or choose another --out")
        if not cfg.resume and (out / "model.json").exists():
            raise TrainerError(f"{out} already holds an exported model; choose another --out")

    # -- evaluation ---------------------------------------------------------
    def embeddings(self, which: str) -> np.ndarray:
        """Embeddings of train or test images with the current weights (copy 0: no augmentation)."""
        samples = self.dataset.train if which == "train" else self.dataset.test
        if self.features is not None:
            offset = 0 if which == "train" else len(self.dataset.train)
            x = self.features[offset:offset + len(samples), 0]
            return np.asarray(self.net.head.predict(x, batch_size=128, verbose=0), dtype=np.float32)
        x = preprocess([self.crops[s.sha256] for s in samples], self.base_model.image_size,
                       self.base_model.standardization)
        return np.asarray(self.net.full.predict(x, batch_size=32, verbose=0), dtype=np.float32)

    def evaluate(self) -> dict | None:
        if len(self.dataset.test) == 0:
            return None
        train_e, test_e = self.embeddings("train"), self.embeddings("test")
        return metrics.evaluate(train_e, self.train_y, test_e, self.test_y, self.dataset.people,
                                cutoff=self.cfg.cutoff, target_fpir=self.cfg.target_fpir, seed=self.cfg.seed)

    # -- training -----------------------------------------------------------
    def batch(self) -> tuple[np.ndarray, np.ndarray]:
        ids, labels = self.sampler.sample(self.rng)
        if self.features is not None:
            copies = self.rng.integers(self.cfg.augment_copies, size=len(ids))
            x = self.features[ids, copies]
        else:
            images = [augment(self.crops[self.dataset.train[i].sha256], self.rng) for i in ids]
            x = preprocess(images, self.base_model.image_size, self.base_model.standardization)
        return x, labels.astype(np.float32)

    def train(self) -> None:
        total = self.cfg.epochs * self.steps_per_epoch
        t = time.perf_counter()
        start_step = self.step
        try:
            while self.step < total:
                epoch = self.step // self.steps_per_epoch
                in_epoch = self.steps_per_epoch - self.step % self.steps_per_epoch
                bar = tqdm(total=in_epoch, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", unit="step",
                           disable=not self.cfg.progress)
                for _ in range(in_epoch):
                    x, y = self.batch()
                    loss = float(np.asarray(self.trained.train_on_batch(x, y)).reshape(-1)[0])
                    if not math.isfinite(loss):
                        raise TrainerError(f"the loss became {loss} at step {self.step}; lower --lr")
                    self.step += 1
                    self.history.append({"step": self.step, "epoch": epoch + 1, "loss": loss})
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                bar.close()
                self.save_checkpoint()
        except KeyboardInterrupt:
            self.save_checkpoint()
            raise
        finally:
            elapsed = time.perf_counter() - t
            steps = self.step - start_step
            self.timings["train_s"] = elapsed
            self.timings["steps_per_s"] = steps / elapsed if elapsed > 0 and steps else 0.0
            self.timings["triplets_per_s"] = self.timings["steps_per_s"] * self.sampler.triplets_per_batch()

    # -- checkpoints --------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Trainable weights, optimizer state, RNG and history; replaced atomically."""
        folder, tmp = self.cfg.out / CHECKPOINT, self.cfg.out / f".{CHECKPOINT}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        np.savez(tmp / "weights.npz", **{f"{layer.name}/{i}": w for layer in self.net.trainable_layers()
                                        for i, w in enumerate(layer.get_weights())})
        np.savez(tmp / "optimizer.npz", *[np.asarray(v) for v in self.trained.optimizer.variables])
        state = {"step": self.step, "steps_per_epoch": self.steps_per_epoch, "config": self.cfg.as_json(),
                 "rng": self.rng.bit_generator.state, "history": self.history}
        (tmp / "state.json").write_text(json.dumps(state))
        old = self.cfg.out / f".{CHECKPOINT}.old"
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
        return folder

    def load_checkpoint(self) -> None:
        folder = self.cfg.out / CHECKPOINT
        state = json.loads((folder / "state.json").read_text())
        now, then = self.cfg.as_json(), state["config"]
        differ = [k for k in _RESUME_KEYS if now.get(k) != then.get(k)]
        if differ:
            raise TrainerError("--resume with other settings than the checkpoint's: " + ", ".join(
                f"{k}={now.get(k)!r} (checkpoint: {then.get(k)!r})" for k in differ))
        with np.load(folder / "weights.npz") as w:
            for layer in self.net.trainable_layers():
                layer.set_weights([w[f"{layer.name}/{i}"] for i in range(len(layer.weights))])
        with np.load(folder / "optimizer.npz") as o:
            for i, var in enumerate(self.trained.optimizer.variables):
                var.assign(o[f"arr_{i}"])
        self.step, self.history = int(state["step"]), list(state["history"])
        self.rng.bit_generator.state = state["rng"]
        keras.utils.set_random_seed(self.cfg.seed + self.step)
        log.info("resumed from step %d of %s", self.step, folder)

    # -- export -------------------------------------------------------------
    def export(self, evaluations: dict) -> Path:
        cfg = self.cfg
        digest = hashlib.sha256()
        for layer in self.net.trainable_layers():
            for w in layer.get_weights():
                digest.update(np.ascontiguousarray(w).tobytes())
        model_id = cfg.model_id or f"{self.base_model.model_id}-ft-{digest.hexdigest()[:8]}"
        after = evaluations.get("after") or {}
        recommended = (after.get("recommended_max_distance") or {}).get("max_distance")
        loaded = dataclasses.replace(self.base_model, model_id=model_id, keras_model=self.net.full)
        write_export(
            loaded, cfg.out, model_id, base_model=self.base_model.model_id,
            preprocessing={"image_size": self.base_model.image_size,
                           "standardization": self.base_model.standardization, "input": "RGB face crop"},
            training={**cfg.as_json(), "steps": self.step, "steps_per_epoch": self.steps_per_epoch,
                      "hardware": self.hardware},
            metrics={label: _headline(ev) for label, ev in evaluations.items() if ev},
            recommended_max_distance=None if recommended is None else math.floor(recommended * 100) / 100,
        )
        return cfg.out


def _headline(ev: dict) -> dict:
    return {"top1_one_anchor_per_person": ev["identification"]["top1_one_anchor_per_person"],
            "top1_whole_gallery": ev["identification"]["top1_whole_gallery"],
            "verification_accuracy": ev["verification"]["accuracy"],
            "open_set_fnir_at_fpir_0.01": ev["open_set"]["fnir_at_fpir"]["0.01"]["fnir"],
            "best_cutoff": ev["best_cutoff"]}


def run(cfg: TrainConfig) -> dict:
    """The whole `train` command: evaluate before, train, evaluate after, export; returns the report."""
    r = Run(cfg).prepare()
    evaluations = {"before": r.evaluate()}      # the base model's weights: a resumed run loads its own next
    if cfg.resume:
        r.load_checkpoint()
    r.train()
    evaluations["after"] = r.evaluate()
    r.export(evaluations)
    doc = {"model_id": json.loads((cfg.out / "model.json").read_text())["model_id"], "config": cfg.as_json(),
           "hardware": r.hardware, "dataset": {"people": r.dataset.people, "train": len(r.dataset.train),
                                               "test": len(r.dataset.test), "notes": r.dataset.notes},
           "steps": r.step, "steps_per_epoch": r.steps_per_epoch, "timings": r.timings,
           "evaluation": evaluations, "history": r.history}
    report.write(cfg.out, doc, {k: v for k, v in evaluations.items() if v}, cfg.cutoff, r.history)
    shutil.rmtree(cfg.out / CHECKPOINT, ignore_errors=True)
    doc["summary"] = report.summary_lines({k: v for k, v in evaluations.items() if v})
    return doc
