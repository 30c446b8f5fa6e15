"""The gallery's in-memory parts, without a data directory: the HNSW delete filter and the face map."""

import numpy as np

from facesearch.gallery import FaissIndex, IndexConfig

from tests.helpers import unit

D = 128


def test_hnsw_filters_deleted_ids_then_compacts():
    rng = np.random.default_rng(10)
    x = unit(rng, 1000)
    index = FaissIndex(D, IndexConfig(kind="hnsw", hnsw_compact_ratio=0.3))
    index.add(np.arange(1000), x)
    assert index.remove(np.arange(0, 200)) == 200 and len(index.deleted) == 200  # filtered, not yet rebuilt
    assert index.remove(np.array([5, 10**6])) == 0                                # already gone / unknown
    assert not np.isin(index.search(x[:200], 10)[1], np.arange(200)).any()
    index.remove(np.arange(200, 400))                                             # 40% deleted: rebuilt
    assert index.deleted == set() and index.cpu.ntotal == len(index) == 600
    assert (index.search(x[400:450], 1)[1][:, 0] == np.arange(400, 450)).mean() >= 0.98
    assert np.array_equal(index.ids(), np.arange(400, 1000))


def test_face_map_appends_merges_and_forgets():
    from facesearch.gallery.facemap import GONE, FaceMap

    m = FaceMap()
    m.add([1, 2, 5], [10, 10, 11])
    m.add(list(range(6, 3000)), [12] * 2994)      # grows past its first capacity
    m.add([3], [13])                              # out of order (a replay): merged
    assert m.owners([1, 3, 5, 2999, 4, 99999]).tolist() == [10, 13, 11, 12, GONE, GONE]
    m.remove([5, 4])
    assert m.owners([5, 6]).tolist() == [GONE, 12]
    assert FaceMap().owners([1]).tolist() == [GONE]


def test_the_face_map_moves_live_faces_only():
    from facesearch.gallery.facemap import GONE, FaceMap

    fmap = FaceMap()
    fmap.add([1, 2, 3], [10, 10, 11])
    fmap.remove([2])
    fmap.move([1, 2, 3, 99], [12, 12, 12, 12])   # 2 was deleted and 99 never added: both stay unknown to owners
    assert fmap.owners([1, 2, 3, 99]).tolist() == [12, GONE, 12, GONE]
    assert fmap.live_ids().tolist() == [1, 3] and not fmap.known([99])[0]
