"""Object key layout, one function per kind of object: this file is the layout's one definition."""

from __future__ import annotations


def original_key(sha256: str) -> str:
    """Content-addressed original bytes, written once and never modified."""
    return f"originals/{sha256[:2]}/{sha256}"


def derived_key(dataset_id: str, image_id: str, kind: str, params_hash: str, ext: str) -> str:
    """Thumbnails, crops and processed images of one image."""
    return f"derived/{dataset_id}/{image_id}/{kind}-{params_hash}.{ext.lstrip('.')}"


def thumbnail_key(sha256: str) -> str:
    """Thumbnails depend on the bytes alone, so they are shared by every dataset holding them."""
    return f"derived/thumbnails/{sha256[:2]}/{sha256}.webp"


def embedding_key(dataset_id: str, model: str, name: str) -> str:
    return f"embeddings/{dataset_id}/{model.replace('/', '_')}/{name}"


def export_key(dataset_id: str, export_id: str, ext: str) -> str:
    return f"exports/{dataset_id}/{export_id}.{ext.lstrip('.')}"


def upload_prefix(dataset_id: str, batch: str) -> str:
    """Inputs of one ingest, staged before any worker touches them; removed once ingested."""
    return f"uploads/{dataset_id}/{batch}/"


def upload_key(dataset_id: str, batch: str, index: int, name: str = "file") -> str:
    """One staged input; the name's last part is kept so a listing still tells the file apart."""
    return f"{upload_prefix(dataset_id, batch)}{index:06d}/{name}"


def training_weights_key(dataset_id: str, training_id: str, filename: str = "weights.tar") -> str:
    """Trained weights copied from the provider. Outside the prefixes orphan collection sweeps: a training
    row is their only index, and they outlive the dataset version they were trained on."""
    name = filename.rsplit("/", 1)[-1].strip() or "weights.tar"
    if name in (".", ".."):
        name = "weights.tar"
    return f"trainings/{dataset_id}/{training_id}/{name}"
