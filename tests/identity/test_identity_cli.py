"""`loraforge curate --reference a.jpg b.jpg` as a user runs it: the photos are read by the command itself."""

from __future__ import annotations

import json
from pathlib import Path

from loraforge.catalog.models import Dataset
from loraforge.stages.context import open_context
from loraforge.stages.curate_identity import identity_config
from tests.conftest import run_cli
from tests.identity.photos import AUGMENTATIONS, portrait
from tests.identity.test_identity_curate import ingest, write_photos
from tests.support.images import encode, real_photo


def test_curate_with_reference_photos(embedded_env: Path, tmp_path: Path) -> None:
    folder, _ = write_photos(tmp_path / "photos")
    ctx = open_context()
    dataset_id = ingest(ctx, folder)
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "ref1.jpg").write_bytes(encode(portrait("grace_hopper"), "JPEG", quality=92))
    (refs / "ref2.png").write_bytes(encode(AUGMENTATIONS["crop"](portrait("grace_hopper")), "PNG"))
    (refs / "cat.jpg").write_bytes(encode(real_photo("chelsea"), "JPEG"))
    env = {"LORAFORGE_HOME": str(embedded_env)}

    no_face = run_cli("curate", "-d", "hopper", "--reference", str(refs / "cat.jpg"), env=env)
    assert no_face.returncode == 1 and "cat.jpg: no face found" in no_face.stderr
    assert len(no_face.stderr.strip().splitlines()) == 1
    stray = run_cli("curate", "-d", "hopper", str(refs / "ref1.jpg"), env=env)
    assert stray.returncode == 1 and "follow --reference" in stray.stderr

    done = run_cli(
        "curate",
        "--dataset",
        "hopper",
        "--reference",
        str(refs / "ref1.jpg"),
        str(refs / "ref2.png"),
        "--json",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rejected"] == {"other_person": 1} and summary["faces_scored"] == 5
    with ctx.catalog.session() as session:
        dataset = session.get(Dataset, dataset_id)
        assert dataset is not None
        config = identity_config(dataset)
        assert config is not None and [r.name for r in config.references] == ["ref1.jpg", "ref2.png"]
        assert config.max_distance == 0.6
        # Vectors, not paths: nothing of the client's file system reaches the catalog.
        assert str(refs) not in json.dumps(dataset.settings)

    looser = run_cli("curate", "-d", "hopper", "--max-face-distance", "0.8", "--json", env=env)
    assert looser.returncode == 0, looser.stderr
    assert "other_person" not in json.loads(looser.stdout)["rejected"]

    cleared = run_cli("curate", "-d", "hopper", "--clear-references", "--json", env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["faces_scored"] == 0
