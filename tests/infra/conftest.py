"""Fixtures for the deployment-file tests: render the Helm chart offline and resolve container settings."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

CHART_DIR = Path(__file__).resolve().parents[2] / "helm" / "loraforge"
RELEASE = "lf"
NAMESPACE = "ml"


@dataclass(frozen=True)
class Rendered:
    """One `helm template` result, parsed, with look-ups the tests share."""

    manifests: list[dict[str, Any]]
    notes: str

    def find(self, kind: str, name: str) -> dict[str, Any]:
        for manifest in self.manifests:
            if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
                return manifest
        raise KeyError(f"no {kind}/{name} in {sorted(self.names())}")

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.manifests if m["kind"] == kind]

    def names(self) -> set[str]:
        return {f"{m['kind']}/{m['metadata']['name']}" for m in self.manifests}

    def env_of(self, container: dict[str, Any]) -> dict[str, str]:
        """The environment a container would see, following envFrom and key references into this render."""
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                env.update(self.find("ConfigMap", source["configMapRef"]["name"])["data"])
            if "secretRef" in source:
                env.update(self.secret_data(source["secretRef"]["name"]))
        for item in container.get("env", []):
            reference = item.get("valueFrom", {})
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "secretKeyRef" in reference:
                env[item["name"]] = self.secret_data(reference["secretKeyRef"]["name"])[
                    reference["secretKeyRef"]["key"]
                ]
            elif "configMapKeyRef" in reference:
                ref = reference["configMapKeyRef"]
                env[item["name"]] = self.find("ConfigMap", ref["name"])["data"][ref["key"]]
        return env

    def secret_data(self, name: str) -> dict[str, str]:
        secret = self.find("Secret", name)
        decoded = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
        decoded.update(secret.get("stringData", {}))
        return decoded

    @staticmethod
    def pod_templates(manifest: dict[str, Any]) -> list[dict[str, Any]]:
        """Pod templates inside a workload or a RayCluster (head first, then worker groups)."""
        spec = manifest["spec"]
        if manifest["kind"] == "RayCluster":
            return [group["template"] for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]]
        if manifest["kind"] in {"Deployment", "StatefulSet", "Job"}:
            return [spec["template"]]
        return []


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    import helm_python

    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: Any) -> Callable[..., Rendered]:
    """Render the chart with extra values, as `helm template lf helm/loraforge -n ml` would."""

    def _render(values: dict[str, Any] | None = None) -> Rendered:
        files = chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)
        manifests: list[dict[str, Any]] = []
        notes = ""
        for path, text in sorted(files.items()):
            if path.endswith("NOTES.txt"):
                notes = text
                continue
            manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
        return Rendered(manifests=manifests, notes=notes)

    return _render
