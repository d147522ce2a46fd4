"""The multi-index hash search returns exactly the brute-force answer."""

from __future__ import annotations

import numpy as np
import pytest

from loraforge.curation.hamming_index import HammingIndex, plan_chunks, popcount64


def random_hashes(n: int, *, seed: int, planted: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    hashes ^= rng.integers(0, 2, size=n).astype(np.uint64) << np.uint64(63)
    for _ in range(planted):
        src, dst = rng.integers(0, n, size=2)
        value = hashes[src]
        for bit in rng.choice(64, size=int(rng.integers(0, 16)), replace=False):
            value ^= np.uint64(1) << np.uint64(bit)
        hashes[dst] = value
    return hashes


def brute_pairs(a: np.ndarray, b: np.ndarray, limit: int, *, self_join: bool) -> set[tuple[int, int]]:
    distances = popcount64((a[:, None] ^ b[None, :]).ravel()).reshape(a.size, b.size)
    left, right = np.nonzero(distances <= limit)
    if self_join:
        return {(int(i), int(j)) for i, j in zip(left, right, strict=True) if i < j}
    return {(int(i), int(j)) for i, j in zip(left, right, strict=True)}


@pytest.mark.parametrize("limit", [0, 4, 10, 12])
def test_self_pairs_equal_brute_force_on_1200_hashes(limit: int) -> None:
    hashes = random_hashes(1200, seed=limit, planted=300)
    found = HammingIndex(hashes, max_distance=limit).self_pairs()
    assert set(zip(found.left.tolist(), found.right.tolist(), strict=True)) == brute_pairs(
        hashes, hashes, limit, self_join=True
    )
    assert np.array_equal(found.distance, popcount64(hashes[found.left] ^ hashes[found.right]))


def test_query_equals_brute_force() -> None:
    hashes = random_hashes(1000, seed=1, planted=200)
    queries = hashes[:400] ^ np.uint64(0b1011)
    found = HammingIndex(hashes, max_distance=10).query(queries)
    assert set(zip(found.left.tolist(), found.right.tolist(), strict=True)) == brute_pairs(
        queries, hashes, 10, self_join=False
    )


def test_duplicated_hashes_pair_up() -> None:
    found = HammingIndex(np.array([5, 5, 5, 2**40], dtype=np.uint64), max_distance=0).self_pairs()
    assert set(zip(found.left.tolist(), found.right.tolist(), strict=True)) == {(0, 1), (0, 2), (1, 2)}


def test_chunk_plan_satisfies_the_pigeonhole() -> None:
    for limit in range(0, 20):
        plan = plan_chunks(100_000, limit)
        assert sum(bits for _, bits, _ in plan) == 64
        assert sum(radius + 1 for _, _, radius in plan) > limit
