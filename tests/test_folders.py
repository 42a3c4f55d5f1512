"""The pairs facelib.data.folders draws from a folder of people. No model: kept apart from
test_cli_identify.py, whose autouse fixture loads TensorFlow."""

import numpy as np
import pytest


# (4, 2): 8 different pairs for 7 same, all listed then drawn; the others: drawn at random
@pytest.mark.parametrize("sizes", [(4, 2), (3, 3, 2, 1), (40, 30, 25, 20, 10, 5, 1, 1)])
def test_folder_pairs_are_every_same_pair_and_as_many_distinct_seeded_different_ones(sizes):
    from facelib.data.folders import folder_pairs

    labels = np.repeat(np.arange(len(sizes)), sizes)
    pairs = folder_pairs(labels)
    same_count = sum(n * (n - 1) // 2 for n in sizes)
    assert int(pairs.same.sum()) == same_count == int((~pairs.same).sum())
    assert np.all(pairs.left < pairs.right)
    assert np.array_equal(labels[pairs.left] == labels[pairs.right], pairs.same)
    assert len(set(zip(pairs.left.tolist(), pairs.right.tolist(), strict=True))) == len(pairs)
    again = folder_pairs(labels)
    assert np.array_equal(pairs.left, again.left) and np.array_equal(pairs.right, again.right)
    if len(sizes) > 4:
        other = folder_pairs(labels, seed=1)
        assert not np.array_equal(pairs.left[~pairs.same], other.left[~other.same])
