"""Face crops of the training images, detected once and cached by image sha256."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facesearch.embedder import EmbedderConfig, FaceMode
from facesearch.embedder import prepare as prep

from .data import Sample

CHUNK = 16   # photos per batched detection pass


class CropCache:
    def __init__(self, root: Path, mode: FaceMode, config: EmbedderConfig):
        params = {"mode": FaceMode(mode).name, "max_pixels": config.max_pixels}
        if FaceMode(mode) == FaceMode.DETECT:
            params.update(score=config.min_face_score, size=config.min_face_size, margin=config.crop_margin,
                          max_side=config.detect_max_side, scale_factor=config.detect_scale_factor)
            if config.detector != "mtcnn":   # (MTCNN's keys stay as they were before there was a choice)
                params.update(detector=config.detector, score=config.yunet_min_score, max_side=config.yunet_max_side)
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
        self.folder = Path(root) / "crops" / f"{FaceMode(mode).name.lower()}-{key}"
        self.mode = FaceMode(mode)
        self.config = config

    def load(self, samples: list[Sample], progress: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """(crops by sha256, reasons by sha256 for images without a usable face)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        prep.init(self.config)
        crops, rejected, todo = {}, {}, {}
        for s in samples:
            if s.sha256 in crops or s.sha256 in rejected or s.sha256 in todo:
                continue
            npy, why = self.folder / f"{s.sha256}.npy", self.folder / f"{s.sha256}.rejected"
            if npy.is_file():
                crops[s.sha256] = np.load(npy)
            elif why.is_file():
                rejected[s.sha256] = why.read_text()
            else:
                todo[s.sha256] = s
        pending = list(todo.values())
        with tqdm(total=len(pending), desc="faces", unit="img", disable=not progress, leave=False) as bar:
            for i in range(0, len(pending), CHUNK):  # one batched detection pass per chunk
                part = pending[i:i + CHUNK]
                for s, result in zip(part, prep.prepare_many([x.path.read_bytes() for x in part], self.mode)):
                    self._keep(s, result, crops, rejected)
                bar.update(len(part))
        return crops, rejected


    def _keep(self, s: Sample, result, crops: dict, rejected: dict) -> None:
        if result.crop is None:
            rejected[s.sha256] = f"{s.path}: {result.reason}"
            _atomic_write(self.folder / f"{s.sha256}.rejected", rejected[s.sha256].encode())
            return
        crops[s.sha256] = np.ascontiguousarray(result.crop)
        buf = io.BytesIO()
        np.save(buf, crops[s.sha256])
        _atomic_write(self.folder / f"{s.sha256}.npy", buf.getvalue())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
