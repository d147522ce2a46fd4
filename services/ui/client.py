"""An HTTP client for the LoRA Forge API: the dashboard's only way to data (never the database)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")


class ApiError(Exception):
    """The API answered with an error (its code and message) or could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    token: str | None = None
    timeout_s: float = 30.0

    @classmethod
    def from_env(cls) -> ClientConfig:
        """LORAFORGE_API_URL and LORAFORGE_API_TOKEN, as the API itself reads them."""
        return cls(
            base_url=os.environ.get("LORAFORGE_API_URL", DEFAULT_API_URL).rstrip("/"),
            token=os.environ.get("LORAFORGE_API_TOKEN") or None,
        )


class ApiClient:
    """Thin methods over the REST resources; each returns the decoded JSON (or bytes)."""

    def __init__(self, config: ClientConfig) -> None:
        headers = {"Authorization": f"Bearer {config.token}"} if config.token else {}
        self.config = config
        self._http = httpx.Client(
            base_url=config.base_url + API_PREFIX, headers=headers, timeout=config.timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            reason = type(exc).__name__.replace("Error", "").lower() or "error"
            raise ApiError(
                0, "unreachable", f"cannot reach the API at {self.config.base_url} ({reason})"
            ) from exc
        if response.is_error:
            try:
                error = response.json()["error"]
                raise ApiError(response.status_code, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                first_line = response.text.strip().splitlines()[:1] or [response.reason_phrase]
                raise ApiError(response.status_code, "http_error", first_line[0][:300]) from None
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def workspaces(self) -> list[dict[str, Any]]:
        return self._json("GET", "/workspaces")["data"]

    def create_workspace(self, name: str) -> dict[str, Any]:
        return self._json("POST", "/workspaces", json={"name": name})

    def datasets(self, workspace_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/workspaces/{workspace_id}/datasets")["data"]

    def create_dataset(self, workspace_id: str, **fields: Any) -> dict[str, Any]:
        return self._json("POST", f"/workspaces/{workspace_id}/datasets", json=fields)

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/datasets/{dataset_id}")

    def update_dataset(self, dataset_id: str, **changes: Any) -> dict[str, Any]:
        return self._json("PATCH", f"/datasets/{dataset_id}", json=changes)

    def stats(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/datasets/{dataset_id}/stats")

    def images(
        self, dataset_id: str, *, statuses: list[str] | None = None, offset: int = 0, limit: int = 100
    ) -> dict[str, Any]:
        params: list[tuple[str, str | int]] = [("offset", offset), ("limit", limit)]
        params += [("status", status) for status in statuses or []]
        return self._json("GET", f"/datasets/{dataset_id}/images", params=params)

    def cards(
        self,
        dataset_id: str,
        *,
        filters: dict[str, Any] | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> dict[str, Any]:
        """A page of pictures with caption, issues and bucket; `filters` as CardFilter's fields."""
        params: list[tuple[str, str | int]] = [("offset", offset), ("limit", limit)]
        for name, value in (filters or {}).items():
            if name == "statuses":
                params += [("status", status) for status in value or []]
            elif value:
                params.append((name, value))
        return self._json("GET", f"/datasets/{dataset_id}/cards", params=params)

    def bulk_review(
        self, dataset_id: str, selection: dict[str, Any], status: str, reason: str | None = None
    ) -> dict[str, Any]:
        """Keep or reject pictures of this dataset: selection is {"image_ids": [...]} or {"filter": {...}}."""
        body = {"selection": selection, "status": status, "reason": reason or None}
        return self._json("POST", f"/datasets/{dataset_id}/bulk/review", json=body)

    def bulk_captions(
        self, dataset_id: str, selection: dict[str, Any], operation: str, text: str, find: str | None = None
    ) -> dict[str, Any]:
        """replace (find -> text), prepend, append or set the active captions of the selected pictures."""
        body = {"selection": selection, "operation": operation, "text": text, "find": find}
        return self._json("POST", f"/datasets/{dataset_id}/bulk/captions", json=body)

    def stage_uploads(self, dataset_id: str, files: list[tuple[str, bytes, str]]) -> dict[str, Any]:
        """Store files without ingesting them; answers the upload batch a build run takes."""
        parts = [("files", (name, data, content_type)) for name, data, content_type in files]
        return self._json("POST", f"/datasets/{dataset_id}/uploads", files=parts)

    def image(self, image_id: str) -> dict[str, Any]:
        return self._json("GET", f"/images/{image_id}")

    def thumbnail(self, image_id: str) -> bytes:
        return self._request("GET", f"/images/{image_id}/thumbnail").content

    def original(self, image_id: str) -> bytes:
        return self._request("GET", f"/images/{image_id}/original").content

    def review(self, image_id: str, status: str, reason: str | None = None) -> dict[str, Any]:
        return self._json("PATCH", f"/images/{image_id}", json={"status": status, "reason": reason or None})

    def captions(self, image_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/images/{image_id}/captions")["data"]

    def edit_caption(self, image_id: str, text: str, variant: str | None = None) -> dict[str, Any]:
        return self._json(
            "PUT", f"/images/{image_id}/captions/active", json={"text": text, "variant": variant}
        )

    def upload(self, dataset_id: str, files: list[tuple[str, bytes, str]]) -> dict[str, Any]:
        """Files as (name, bytes, content type); answers the ingest task to poll."""
        parts = [("files", (name, data, content_type)) for name, data, content_type in files]
        return self._json("POST", f"/datasets/{dataset_id}/images", files=parts)

    def start_run(self, dataset_id: str, stage: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Start a stage; `options` are the fields of the stage's options model (see run_form)."""
        return self._json("POST", f"/datasets/{dataset_id}/runs/{stage}", json=options or {})

    def cancel(self, task_id: str) -> dict[str, Any]:
        return self._json("POST", f"/tasks/{task_id}/cancel")

    def searches_available(self) -> bool:
        """Whether this API offers image search (POST /datasets/{id}/searches)."""
        spec = self._json("GET", "/openapi.json")
        return "/api/v1/datasets/{dataset_id}/searches" in spec["paths"]

    def schema(self, name: str) -> dict[str, Any]:
        """One named schema of the API's OpenAPI document (a request body's fields, say)."""
        return dict(self._json("GET", "/openapi.json")["components"]["schemas"][name])

    def search_providers(self) -> list[dict[str, Any]]:
        return self._json("GET", "/search/providers")

    def create_search(self, dataset_id: str, request: dict[str, Any]) -> dict[str, Any]:
        """Ask the providers; answers the search with its candidates (each with its licence)."""
        return self._json("POST", f"/datasets/{dataset_id}/searches", json=request, timeout=120)

    def add_candidates(self, dataset_id: str, search_id: str, candidate_ids: list[str]) -> dict[str, Any]:
        """Download and ingest the picked candidates; answers the task to poll."""
        body = {"candidate_ids": candidate_ids}
        return self._json("POST", f"/datasets/{dataset_id}/searches/{search_id}/add", json=body)

    def reference_faces(self, dataset_id: str) -> dict[str, Any]:
        """The dataset's reference faces (the identity filter), its face model and threshold."""
        return self._json("GET", f"/datasets/{dataset_id}/identity/references")

    def set_reference_faces(
        self, dataset_id: str, image_ids: list[str], max_distance: float | None = None
    ) -> dict[str, Any]:
        """Make these pictures of the dataset its reference faces (503: the server lacks dlib)."""
        body: dict[str, Any] = {"image_ids": image_ids}
        if max_distance is not None:
            body["max_distance"] = max_distance
        return self._json("PUT", f"/datasets/{dataset_id}/identity/references", json=body, timeout=120)

    def clear_reference_faces(self, dataset_id: str) -> None:
        self._request("DELETE", f"/datasets/{dataset_id}/identity/references")

    def run_form(self, stage: str) -> dict[str, Any]:
        """The JSON schema of a stage's options, read from the API's OpenAPI document: the form's fields."""
        spec = self._json("GET", "/openapi.json")
        body = spec["paths"][f"/api/v1/datasets/{{dataset_id}}/runs/{stage}"]["post"]["requestBody"]
        name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        return dict(spec["components"]["schemas"][name])

    def tasks(self, dataset_id: str, limit: int = 20) -> list[dict[str, Any]]:
        return self._json("GET", f"/datasets/{dataset_id}/tasks", params={"limit": limit})["data"]

    def task(self, task_id: str) -> dict[str, Any]:
        return self._json("GET", f"/tasks/{task_id}")

    def exports(self, dataset_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/datasets/{dataset_id}/exports")["data"]

    def export_manifest(self, export_id: str) -> dict[str, Any]:
        return self._json("GET", f"/exports/{export_id}/manifest")

    def download_export(self, export_id: str) -> bytes:
        return self._request("GET", f"/exports/{export_id}/download").content

    def trainings(self, dataset_id: str) -> list[dict[str, Any]]:
        return self._json("GET", f"/datasets/{dataset_id}/trainings")["data"]

    def training_form(self) -> dict[str, Any]:
        """The JSON schema of a training's options (the request body of POST .../trainings)."""
        spec = self._json("GET", "/openapi.json")
        body = spec["paths"]["/api/v1/datasets/{dataset_id}/trainings"]["post"]["requestBody"]
        name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        return dict(spec["components"]["schemas"][name])

    def start_training(self, dataset_id: str, options: dict[str, Any]) -> dict[str, Any]:
        """Start a training on Replicate; answers the `train` task to poll."""
        return self._json("POST", f"/datasets/{dataset_id}/trainings", json=options)

    def training(self, training_id: str) -> dict[str, Any]:
        return self._json("GET", f"/trainings/{training_id}")

    def sync_training(self, training_id: str) -> dict[str, Any]:
        return self._json("POST", f"/trainings/{training_id}/sync")

    def cancel_training(self, training_id: str) -> dict[str, Any]:
        return self._json("POST", f"/trainings/{training_id}/cancel")

    def training_weights(self, training_id: str) -> bytes:
        return self._request("GET", f"/trainings/{training_id}/weights").content
