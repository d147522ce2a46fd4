"""Duplicate grouping: exact keys, near and mirrored copies, the flat-picture and chain guards, embeddings."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageOps

from loraforge.curation import HashRecord, measure, near_duplicate_groups, refine_with_embeddings
from loraforge.curation.dedup import DuplicateGroup, DuplicateMember

from .curation_factories import encode, flat, photo


def record(
    image_id: str, phash: int, *, dhash: int | None = None, pixels: int = 100, **fields: object
) -> HashRecord:
    """A record whose mirrored hashes are far from everything unless given."""
    return HashRecord(
        id=image_id,
        phash=phash,
        phash_mirror=fields.pop("phash_mirror", ~phash & 0xFFFFFFFFFFFFFFFF),  # type: ignore[arg-type]
        dhash=phash if dhash is None else dhash,
        dhash_mirror=fields.pop("dhash_mirror", ~phash & 0xFFFFFFFFFFFFFFFF),  # type: ignore[arg-type]
        pixels=pixels,
        **fields,  # type: ignore[arg-type]
    )


def flip(value: int, *bits: int) -> int:
    for bit in bits:
        value ^= 1 << bit
    return value


def grouped(groups: list[DuplicateGroup]) -> list[set[str]]:
    return sorted((set(g.ids) for g in groups), key=min)


def from_image(image_id: str, image: Image.Image) -> HashRecord:
    features = measure(encode(image, "JPEG", quality=90), max_pixels=10**8)
    return HashRecord.from_features(image_id, features)


BASE = 0x0F0F_3C3C_5A5A_9999


def test_near_copies_group_and_far_ones_do_not() -> None:
    records = [
        record("a", BASE, pixels=200),
        record("b", flip(BASE, 1, 7, 20, 40)),
        record("c", flip(BASE, *range(0, 40, 2))),
    ]
    groups = near_duplicate_groups(records, max_distance=10)
    assert grouped(groups) == [{"a", "b"}]
    assert groups[0].keeper == "a"
    assert groups[0].members[0].distance == 4


def test_the_second_hash_must_agree() -> None:
    records = [record("a", BASE), record("b", flip(BASE, 3), dhash=flip(BASE, *range(0, 60, 2)))]
    assert near_duplicate_groups(records, max_distance=10) == []


def test_mirrored_copies_of_real_photos_group_and_say_so() -> None:
    image = photo((320, 320))
    records = [
        from_image("orig", image),
        from_image("flip", ImageOps.mirror(image)),
        from_image("other", photo(seed=5)),
    ]
    groups = near_duplicate_groups(records)
    assert grouped(groups) == [{"orig", "flip"}]
    assert groups[0].members[0].mirrored


def test_cropped_copies_group_through_the_crop_views() -> None:
    image = photo((400, 400), seed=3)
    crop = image.crop((40, 0, 400, 360))
    records = [from_image("orig", image), from_image("crop", crop)]
    groups = near_duplicate_groups(records)
    assert grouped(groups) == [{"orig", "crop"}]
    assert near_duplicate_groups(records, max_distance=4, crop_max_distance=None) == []


def test_flat_pictures_never_match_by_perceptual_hash() -> None:
    records = [from_image(f"flat{i}", flat(colour=(100 + i, 100, 100), seed=i)) for i in range(6)]
    forced = [
        HashRecord(**{**r.__dict__, "phash": BASE, "dhash": BASE, "hash_contrast": r.hash_contrast})
        for r in records
    ]
    assert all(r.hash_contrast < 3.0 for r in forced)
    assert near_duplicate_groups(forced) == []


def test_exact_duplicates_by_bytes_and_by_pixels() -> None:
    records = [
        record("a", BASE, sha256="s1", pixel_hash="p1", pixels=100),
        record("b", flip(BASE, *range(0, 64, 2)), sha256="s1", pixel_hash="p1", pixels=100),
        record("c", flip(BASE, *range(1, 64, 2)), sha256="s2", pixel_hash="p1", pixels=100),
    ]
    (group,) = near_duplicate_groups(records)
    assert group.keeper == "a"
    assert {(m.id, m.kind, m.exact_key) for m in group.members} == {
        ("b", "exact", "sha256"),
        ("c", "exact", "pixels"),
    }


def test_chains_do_not_merge_far_ends() -> None:
    # a ~ b ~ c ~ d, each step 6 bits, ends 18 bits apart: stars around the best keeper, not one chain.
    a = BASE
    b = flip(a, 0, 1, 2, 3, 4, 5)
    c = flip(b, 10, 11, 12, 13, 14, 15)
    d = flip(c, 20, 21, 22, 23, 24, 25)
    records = [
        record("a", a, pixels=400),
        record("b", b, pixels=300),
        record("c", c, pixels=200),
        record("d", d, pixels=100),
    ]
    groups = near_duplicate_groups(records, max_distance=8, crop_max_distance=None)
    assert grouped(groups) == [{"a", "b"}, {"c", "d"}]
    for group in groups:
        assert all(m.distance <= 8 for m in group.members)


def test_grouping_1500_random_hashes_equals_a_brute_force_star_reference() -> None:
    rng = np.random.default_rng(11)
    hashes = [int(h) for h in rng.integers(0, 2**63, size=1500, dtype=np.int64)]
    for _ in range(400):
        src, dst = rng.integers(0, len(hashes), size=2)
        hashes[dst] = flip(
            hashes[src], *rng.choice(64, size=int(rng.integers(0, 12)), replace=False).tolist()
        )
    records = [
        record(f"{i:04d}", h, dhash=h, pixels=int(rng.integers(1, 10**6))) for i, h in enumerate(hashes)
    ]
    ids = {r.id: i for i, r in enumerate(records)}
    groups = near_duplicate_groups(records, max_distance=10, crop_max_distance=None)
    # Reference: exact hash equality is not an exact duplicate here (no sha256), so plain stars over
    # brute-force neighbour lists, centres in keeper order.
    from loraforge.curation.keeper import keeper_rank

    order = sorted(range(len(records)), key=lambda i: keeper_rank(records[i]))
    assigned: set[int] = set()
    expected = []
    for centre in order:
        if centre in assigned:
            continue
        assigned.add(centre)
        members = {j for j in order if j not in assigned and (hashes[centre] ^ hashes[j]).bit_count() <= 10}
        assigned |= members
        if members:
            expected.append({records[centre].id, *(records[j].id for j in members)})
    assert sorted(map(sorted, map(set, (g.ids for g in groups)))) == sorted(map(sorted, expected))
    assert all(
        ids[g.keeper] == min((ids[i] for i in g.ids), key=lambda i: keeper_rank(records[i])) for g in groups
    )


def test_refine_with_embeddings_drops_near_members_that_look_different() -> None:
    group = DuplicateGroup(
        "k",
        (
            DuplicateMember("same", "near", 6),
            DuplicateMember("diff", "near", 8),
            DuplicateMember("copy", "exact", exact_key="sha256"),
        ),
    )
    vectors = {
        "k": np.array([1.0, 0.0]),
        "same": np.array([0.99, 0.05]),
        "diff": np.array([0.5, 0.8]),
        "copy": np.array([0.0, 1.0]),
    }
    (refined,) = refine_with_embeddings([group], vectors, threshold=0.95)
    assert [m.id for m in refined.members] == ["same", "copy"]
    assert refine_with_embeddings([DuplicateGroup("k", (group.members[1],))], vectors) == []


def test_of_a_mirrored_pair_otherwise_equal_the_copy_ingested_first_is_kept() -> None:
    """A mirrored re-save is often the larger file; size must not make it the keeper over the original."""
    image = photo((320, 320), seed=7)
    original = HashRecord.from_features(
        "z-original", measure(encode(image, "JPEG", quality=70), max_pixels=10**8), ingest_order=0
    )
    mirrored = HashRecord.from_features(
        "a-mirrored",
        measure(encode(ImageOps.mirror(image), "JPEG", quality=95), max_pixels=10**8),
        ingest_order=1,
    )
    assert mirrored.file_size > original.file_size and mirrored.pixels == original.pixels
    for records in ([original, mirrored], [mirrored, original]):
        [group] = near_duplicate_groups(records)
        assert group.keeper == "z-original" and group.members[0].mirrored
    # Ingested the other way round, the mirrored file is the original of the pair.
    swapped = [
        dataclasses.replace(original, ingest_order=1),
        dataclasses.replace(mirrored, ingest_order=0),
    ]
    assert near_duplicate_groups(swapped)[0].keeper == "a-mirrored"
    # A copy that is not mirrored keeps the larger-file rule (two JPEG qualities of one picture).
    resaved = HashRecord.from_features(
        "b-resaved", measure(encode(image, "JPEG", quality=95), max_pixels=10**8), ingest_order=1
    )
    assert near_duplicate_groups([original, resaved])[0].keeper == "b-resaved"
