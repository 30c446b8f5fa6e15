"""Rebuild the request data in bench/ghz/data/ (run once; the outputs are committed).

    .venv/bin/python -m bench.ghz.make_data [--avengers ../shared/data/avengers]

- identify_cropped.json, enroll.json: an Avengers face crop (the seed's data, MIT) re-encoded
  as JPEG, base64 in the JSON as protobuf JSON maps bytes.
- identify_photo.json: a 5-celebrity val photo of Madonna (from the weights cache), as is.
- identify_embedding.json: the facenet-128 embedding of that photo's primary face, computed
  here with the real model, so an Identify by embedding matches `make serve`'s sample gallery.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATA = HERE / "data"
CROP_IDENTIFY = "chris_evans/chris_evans37.png"        # test split of the seed's Avengers data
CROP_ENROLL = "chris_hemsworth/chris_hemsworth32.png"  # test split


def jpeg(path: Path, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def write(name: str, data) -> None:
    path = DATA / name
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size:,} bytes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--avengers", type=Path, default=REPO.parent / "shared" / "data" / "avengers")
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)

    from facesearch.embedder import Embedder, WeightsCache, decode, primary_face

    write("identify_cropped.json", {"image": b64(jpeg(args.avengers / CROP_IDENTIFY)),
                                    "face_mode": "FACE_MODE_CROPPED", "top_k": 1})
    write("enroll.json", {"identity_id": "loadtest-{{.UUID}}", "display_name": "Load test",
                          "images": [b64(jpeg(args.avengers / CROP_ENROLL))], "face_mode": "FACE_MODE_CROPPED",
                          "metadata": {"source": "bench/ghz/enroll.json"}})

    embedder = Embedder.load()
    val = WeightsCache(embedder.config.cache_dir).sample_gallery() / "val" / "madonna"
    for photo in sorted(val.glob("*.jpg"), key=lambda p: p.stat().st_size):
        raw = photo.read_bytes()
        rgb = decode(raw)
        faces = embedder.find_faces(rgb)
        if len(faces) == 1 and 8_000 < len(raw) < 25_000:
            break
    else:
        raise SystemExit(f"no single-face photo of 8-25 KB in {val}")
    face = primary_face(faces, rgb.shape)
    vector = embedder.embed_crops([face.crop])[0].astype(np.float64)
    values = [round(float(v), 7) for v in vector]
    print(f"{photo.name}: 1 face {face.box}, embedding norm {np.linalg.norm(values):.6f}")
    write("identify_photo.json", {"image": b64(raw), "face_mode": "FACE_MODE_DETECT", "top_k": 1})
    write("identify_embedding.json", {"embedding": {"values": values, "model_id": embedder.model_id}, "top_k": 3})


if __name__ == "__main__":
    main()
