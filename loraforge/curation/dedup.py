"""Exact and near-duplicate groups over a whole dataset, from stored hashes alone (runs once, in the driver).

Tiers: exact (same sha256, or same decoded pixels), then near (pHash within max_distance, or the mirrored
pHash, or one of the 90% crop views, AND the dHash within max_dhash_distance: two different hashes must
agree, which keeps flat or repetitive pictures from matching by chance). Pictures too flat for a
perceptual hash to mean anything (hash_contrast below min_hash_contrast) only join exact groups.

Groups are stars around a keeper, chosen greedily in keeper order: every member is directly within the
thresholds of its keeper, so a chain A~B~C~D never drags D into A's group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter

import numpy as np

from loraforge.curation.features import ImageFeatures
from loraforge.curation.hamming_index import HammingIndex, popcount64
from loraforge.curation.keeper import keeper_rank, mirror_copy_of
from loraforge.curation.perceptual import from_hex


@dataclass(frozen=True)
class HashRecord:
    """What grouping and the keeper rule need of one image."""

    id: str
    phash: int
    phash_mirror: int
    dhash: int
    dhash_mirror: int
    crop_phashes: tuple[int, ...] = ()
    sha256: str = ""
    pixel_hash: str = ""
    hash_contrast: float = 100.0
    pixels: int = 0
    sharpness: float = 0.0
    file_size: int = 0
    issue_count: int = 0
    """Quality checks this image failed; fewer makes a better keeper."""
    manual_keep: bool = False
    manual_reject: bool = False
    ingest_order: int = 0
    """Position of the image in ingest order: of a mirrored pair otherwise equal, the first one stays."""

    @classmethod
    def from_features(
        cls,
        image_id: str,
        features: ImageFeatures,
        *,
        issue_count: int = 0,
        manual_keep: bool = False,
        manual_reject: bool = False,
        ingest_order: int = 0,
    ) -> HashRecord:
        return cls(
            id=image_id,
            phash=from_hex(features.phash),
            phash_mirror=from_hex(features.phash_mirror),
            dhash=from_hex(features.dhash),
            dhash_mirror=from_hex(features.dhash_mirror),
            crop_phashes=tuple(from_hex(h) for h in features.crop_phashes),
            sha256=features.sha256,
            pixel_hash=features.pixel_hash,
            hash_contrast=features.hash_contrast,
            pixels=features.pixels,
            sharpness=features.sharpness,
            file_size=features.file_size,
            issue_count=issue_count,
            manual_keep=manual_keep,
            manual_reject=manual_reject,
            ingest_order=ingest_order,
        )


@dataclass(frozen=True)
class DuplicateMember:
    id: str
    kind: str
    """"exact" or "near"."""
    distance: int = 0
    mirrored: bool = False
    cropped: bool = False
    exact_key: str | None = None
    """For exact members: "sha256" or "pixels"."""


@dataclass(frozen=True)
class DuplicateGroup:
    keeper: str
    members: tuple[DuplicateMember, ...] = field(default_factory=tuple)

    @property
    def ids(self) -> list[str]:
        return [self.keeper, *(m.id for m in self.members)]


@dataclass(frozen=True)
class _Edge:
    distance: int
    mirrored: bool
    cropped: bool


def near_duplicate_groups(
    records: Sequence[HashRecord],
    *,
    max_distance: int = 12,
    crop_max_distance: int | None = 12,
    max_dhash_distance: int = 22,
    min_hash_contrast: float = 3.0,
) -> list[DuplicateGroup]:
    """Exact and near-duplicate groups, keepers first by the keeper rule; singletons are left out.

    The defaults suit datasets up to some 10k images. The crop views cost about two and a half times the
    rest of the search; for 100k+ images, max_distance=10 and crop_max_distance=None group in seconds
    at the price of missing most 90% crops (bench/curate.py prints both).
    """
    if len({r.id for r in records}) != len(records):
        raise ValueError("record ids must be unique")
    nodes = _exact_nodes(records)
    reps = [members[0] for members in nodes]
    edges = _near_edges(reps, max_distance, crop_max_distance, max_dhash_distance, min_hash_contrast)
    return _stars(nodes, edges)


def _exact_nodes(records: Sequence[HashRecord]) -> list[list[tuple[HashRecord, str | None]]]:
    """Union of same-sha256 and same-pixels sets; each node lists its best record first.

    Each later record carries how it equals the first: "sha256" (same bytes) or "pixels".
    """
    links: list[tuple[int, int]] = []
    for key_name in ("sha256", "pixel_hash"):
        first: dict[str, int] = {}
        for i, key in enumerate(map(attrgetter(key_name), records)):
            if key and first.setdefault(key, i) != i:
                links.append((first[key], i))
    # Union-find over the few linked records only; every other record is a node of its own.
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        root = i
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    for a, b in links:
        parent[find(b)] = find(a)
    components: dict[int, list[int]] = {}
    for i in range(len(records)):
        components.setdefault(find(i) if i in parent else i, []).append(i)
    nodes: list[list[tuple[HashRecord, str | None]]] = []
    for members in components.values():
        if len(members) == 1:  # nearly every image: nothing to rank
            nodes.append([(records[members[0]], None)])
            continue
        ordered = [records[i] for i in sorted(members, key=lambda i: keeper_rank(records[i]))]
        head = ordered[0]
        nodes.append(
            [(head, None)]
            + [(r, "sha256" if r.sha256 and r.sha256 == head.sha256 else "pixels") for r in ordered[1:]]
        )
    return nodes


def _near_edges(
    reps: Sequence[tuple[HashRecord, str | None]],
    max_distance: int,
    crop_max_distance: int | None,
    max_dhash_distance: int,
    min_hash_contrast: float,
) -> dict[tuple[int, int], _Edge]:
    usable = np.array(
        [i for i, (r, _) in enumerate(reps) if r.hash_contrast >= min_hash_contrast], dtype=np.int64
    )
    if usable.size < 2:
        return {}
    rec = [reps[i][0] for i in usable]
    phash = _column(rec, "phash")
    dhash = _column(rec, "dhash")
    dhash_mirror = _column(rec, "dhash_mirror")
    index = HammingIndex(phash, max_distance=max_distance)
    edges: dict[tuple[int, int], _Edge] = {}

    def add(
        left: np.ndarray, right: np.ndarray, dist: np.ndarray, left_dhash: np.ndarray, **flags: bool
    ) -> None:
        agree = (left != right) & (popcount64(left_dhash[left] ^ dhash[right]) <= max_dhash_distance)
        for a, b, d in zip(usable[left[agree]], usable[right[agree]], dist[agree], strict=True):
            key = (int(min(a, b)), int(max(a, b)))
            edge = _Edge(int(d), **flags)
            if key not in edges or _better(edge, edges[key]):
                edges[key] = edge

    pairs = index.self_pairs()
    add(pairs.left, pairs.right, pairs.distance, dhash, mirrored=False, cropped=False)
    pairs = index.query(_column(rec, "phash_mirror"))
    add(pairs.left, pairs.right, pairs.distance, dhash_mirror, mirrored=True, cropped=False)
    if crop_max_distance is not None:
        view_counts = np.fromiter((len(r.crop_phashes) for r in rec), dtype=np.int64, count=len(rec))
        if view_counts.sum():
            crop_index = (
                index
                if crop_max_distance == max_distance
                else HammingIndex(phash, max_distance=crop_max_distance)
            )
            owners = np.repeat(np.arange(len(rec), dtype=np.int64), view_counts)
            views = np.fromiter(
                chain.from_iterable(r.crop_phashes for r in rec), dtype=np.uint64, count=int(owners.size)
            )
            pairs = crop_index.query(views)
            add(owners[pairs.left], pairs.right, pairs.distance, dhash, mirrored=False, cropped=True)
    return edges


def _column(records: Sequence[HashRecord], name: str) -> np.ndarray:
    """One hash field of every record as uint64 (hashes are unsigned 64-bit, so no masking is needed)."""
    return np.fromiter(map(attrgetter(name), records), dtype=np.uint64, count=len(records))


def _better(new: _Edge, old: _Edge) -> bool:
    return (new.distance, new.cropped, new.mirrored) < (old.distance, old.cropped, old.mirrored)


def _stars(
    nodes: list[list[tuple[HashRecord, str | None]]], edges: Mapping[tuple[int, int], _Edge]
) -> list[DuplicateGroup]:
    neighbours: dict[int, list[tuple[int, _Edge]]] = {}
    for (a, b), edge in edges.items():
        neighbours.setdefault(a, []).append((b, edge))
        neighbours.setdefault(b, []).append((a, edge))
    # Only nodes with a neighbour or an exact copy can form a group; ranking the rest is wasted work.
    involved = set(neighbours) | {n for n, members in enumerate(nodes) if len(members) > 1}
    mirror_copies = {
        n
        for (a, b), edge in edges.items()
        if edge.mirrored
        for n, other in ((a, b), (b, a))
        if mirror_copy_of(nodes[n][0][0], nodes[other][0][0])
    }

    def rank(n: int) -> tuple[object, ...]:
        return keeper_rank(nodes[n][0][0], mirror_copy=n in mirror_copies)

    order = sorted(involved, key=rank)
    assigned: set[int] = set()
    groups = []
    for centre in order:
        if centre in assigned or nodes[centre][0][0].manual_reject:
            continue
        assigned.add(centre)
        keeper = nodes[centre][0][0]
        members = [DuplicateMember(r.id, "exact", exact_key=how) for r, how in nodes[centre][1:]]
        for other, edge in sorted(neighbours.get(centre, []), key=lambda item: rank(item[0])):
            if other in assigned:
                continue
            assigned.add(other)
            members.extend(
                DuplicateMember(r.id, "near", edge.distance, edge.mirrored, edge.cropped)
                for r, _ in nodes[other]
            )
        if members:
            groups.append(DuplicateGroup(keeper.id, tuple(members)))
    return groups


def refine_with_embeddings(
    groups: Sequence[DuplicateGroup], vectors: Mapping[str, np.ndarray], *, threshold: float = 0.95
) -> list[DuplicateGroup]:
    """Drop near members whose embedding's cosine similarity to the keeper's is below `threshold`.

    Exact members and members without a vector stay; a group left with no member disappears.
    """
    refined = []
    for group in groups:
        keeper_vector = vectors.get(group.keeper)
        kept = []
        for member in group.members:
            vector = vectors.get(member.id)
            if member.kind == "exact" or keeper_vector is None or vector is None:
                kept.append(member)
            elif _cosine(keeper_vector, vector) >= threshold:
                kept.append(member)
        if kept:
            refined.append(DuplicateGroup(group.keeper, tuple(kept)))
    return refined


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / norms if norms > 0.0 else 0.0
