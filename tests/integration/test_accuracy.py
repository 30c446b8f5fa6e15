"""Accuracy of the pretrained model: the seed's figures on its Avengers data, and the sample gallery."""

import numpy as np
import pytest

from facesearch.embedder import decode, pairwise, primary_face


@pytest.fixture(scope="module")
def avengers_embedded(embedder, avengers_split):
    train, test = avengers_split
    xtr = embedder.embed_crops([decode(p.read_bytes()) for _, p in train])
    xte = embedder.embed_crops([decode(p.read_bytes()) for _, p in test])
    return xtr, np.array([n for n, _ in train]), xte, np.array([n for n, _ in test])


def test_avengers_split_is_the_seeds(avengers_split):
    train, test = avengers_split
    assert len(train) + len(test) == 273  # scarlett_johansson8.png is missing
    assert len({n for n, _ in train}) == 5


def test_avengers_top1_against_one_anchor_per_person_is_100(avengers_embedded):
    xtr, ytr, xte, yte = avengers_embedded
    people = list(dict.fromkeys(ytr))  # first train image of each person is the anchor
    anchors = np.stack([xtr[list(ytr).index(p)] for p in people])
    pred = np.array(people)[pairwise(xte, anchors).argmin(1)]
    assert (pred == yte).mean() == 1.0


def test_avengers_top1_with_all_train_images_as_gallery_is_100(avengers_embedded):
    xtr, ytr, xte, yte = avengers_embedded
    assert (ytr[pairwise(xte, xtr).argmin(1)] == yte).mean() == 1.0


def test_avengers_distance_medians_match_the_seeds(avengers_embedded):
    xtr, ytr, xte, yte = avengers_embedded
    x, y = np.vstack([xtr, xte]), np.concatenate([ytr, yte])
    iu = np.triu_indices(len(y), 1)
    d, same = pairwise(x, x)[iu], (y[:, None] == y[None, :])[iu]
    assert np.median(d[same]) == pytest.approx(1.63, rel=0.15)
    assert np.median(d[~same]) == pytest.approx(6.13, rel=0.15)
    assert d.min() >= 0 and d.max() <= 12


def _embed_photos(embedder, folder):
    vectors, labels, missed = [], [], []
    paths = sorted(folder.glob("*/*.jpg"))
    images = [decode(p.read_bytes()) for p in paths]
    for path, rgb, faces in zip(paths, images, embedder.find_faces_many(images)):
        face = primary_face(faces, rgb.shape)
        if face is None:
            missed.append(path.name)
            continue
        vectors.append(face.crop)
        labels.append(path.parent.name)
    return embedder.embed_crops(vectors), np.array(labels), missed


def test_five_celebrity_val_photos_against_train_top1_at_least_96(embedder, samples):
    xtr, ytr, missed_train = _embed_photos(embedder, samples / "train")
    xval, yval, missed = _embed_photos(embedder, samples / "val")
    assert len(missed_train) + len(missed) <= 1  # MTCNN finds a face in 117 of the 118 photos
    correct = (ytr[pairwise(xval, xtr).argmin(1)] == yval).sum()
    assert correct / 25 >= 0.96, f"{correct}/25 correct; no face found in {missed}"
