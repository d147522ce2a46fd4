"""Fixtures for the deployment-file tests: render the Helm chart offline and resolve container settings."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
        spec = manifest.get("spec", {})
        if manifest["kind"] == "RayCluster":
            return [group["template"] for group in [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])]]
        if manifest["kind"] in {"Deployment", "StatefulSet", "Job"}:
            return [spec["template"]]
        return []

    def all_pod_templates(self) -> list[dict[str, Any]]:
        return [template for manifest in self.manifests for template in self.pod_templates(manifest)]

    def text(self) -> str:
        """Everything rendered, NOTES included, as one string."""
        return yaml.safe_dump_all(self.manifests) + self.notes


def parse(files: dict[str, str]) -> Rendered:
    manifests: list[dict[str, Any]] = []
    notes = ""
    for path, text in sorted(files.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(manifests=manifests, notes=notes)


@pytest.fixture(scope="session")
def chart() -> Iterator[Any]:
    import helm_python

    with helm_python.Chart.load(CHART_DIR) as loaded:
        yield loaded


@pytest.fixture(scope="session")
def render(chart: Any) -> Callable[..., Rendered]:
    """Render the chart with extra values, as `helm template lf helm/loraforge -n ml` would."""

    def _render(values: dict[str, Any] | None = None) -> Rendered:
        return parse(chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True))

    return _render


@dataclass
class FakeKubeApi:
    """The few Kubernetes API routes Helm's `lookup` of a Secret reads, served from `secrets`."""

    url: str
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def kubeconfig(self) -> str:
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake", "user": {}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )


def _fake_kube_handler(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    secret_prefix = f"/api/v1/namespaces/{NAMESPACE}/secrets/"
    # Discovery: client-go maps the kind Secret to its resource before reading it.
    core_resources = {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "secrets",
                "singularName": "secret",
                "namespaced": True,
                "kind": "Secret",
                "verbs": ["get"],
            }
        ],
    }
    not_found = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            api.requests.append(path)
            if path == "/api/v1":
                self.reply(200, core_resources)
            elif path.startswith(secret_prefix) and path[len(secret_prefix) :] in api.secrets:
                self.reply(200, api.secrets[path[len(secret_prefix) :]])
            else:
                self.reply(404, not_found)

        def reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def kube_api() -> Iterator[FakeKubeApi]:
    """A fake API server on 127.0.0.1 holding Secrets, for renders whose `lookup` sees a cluster."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    api = FakeKubeApi(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _fake_kube_handler(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def render_in_cluster(chart: Any, kube_api: FakeKubeApi) -> Callable[..., Rendered]:
    """Render as `helm upgrade` does against kube_api: `lookup` reads the Secrets it holds."""
    import helm_python

    def _render(values: dict[str, Any] | None = None, *, upgrade: bool = True) -> Rendered:
        with helm_python.Config(kubeconfig_content=kube_api.kubeconfig(), namespace=NAMESPACE) as config:
            files = config.render(
                chart,
                values or {},
                name=RELEASE,
                namespace=NAMESPACE,
                is_install=not upgrade,
                is_upgrade=upgrade,
            )
        return parse(files)

    return _render
