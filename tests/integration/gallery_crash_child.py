"""Child process of test_gallery_crash: enrols (and deletes) in a loop until killed.

Prints "add <face_id> <seed>" or "del <face_id>" only after the call returned,
i.e. once the change was acknowledged, and "deleting <face_id>" before a delete
(a delete cut short by the kill may or may not have happened).
"""

import sys

import numpy as np

from facesearch.gallery import Gallery, GalleryConfig, NewFace


def vector(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def main(data_dir: str, first_seed: int) -> None:
    g = Gallery.open(GalleryConfig(data_dir=data_dir), model_id="crash-model", dimension=128)
    print("ready", flush=True)
    rng = np.random.default_rng(first_seed)
    mine = []
    seed = first_seed
    while True:
        n = int(rng.integers(1, 4))
        seeds = list(range(seed, seed + n))
        seed += n
        res = g.add_faces(f"person{seeds[0] % 17}", [NewFace(vector(s)) for s in seeds])
        for fid, s in zip(res.face_ids, seeds):
            print(f"add {fid} {s}", flush=True)
        mine += res.face_ids
        if rng.random() < 0.15 and mine:
            fid = mine.pop(int(rng.integers(len(mine))))
            print(f"deleting {fid}", flush=True)
            g.delete_face(fid)
            print(f"del {fid}", flush=True)
        if rng.random() < 0.05:
            g.snapshot()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
