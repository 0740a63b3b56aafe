"""Sync with a running Label Studio server through ``label-studio-sdk`` (extra ``labelstudio``).

- :func:`push_to_label_studio`: create (or reuse) a project with our labeling config,
  register the image folder as the project's local-files storage (so Label Studio may
  serve the ``/data/local-files/?d=...`` URLs), and import one task per frame with the
  pseudo-labels as predictions; frames already in the project are not imported again.
- :func:`pull_from_label_studio`: export the project (JSON, all tasks) and import it with
  :func:`aquapose.segmentation.io.labelstudio.import_from_label_studio`.

The API token is read from the environment variable ``LABEL_STUDIO_API_KEY`` (or given as
``api_key``); it is sent to the server only, never printed, logged or written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

from aquapose.segmentation.io.brush_rle import DEFAULT_ALPHA_THRESHOLD
from aquapose.segmentation.io.files import atomic_write_bytes
from aquapose.segmentation.io.labelstudio import (
    BRUSH_NAME,
    DEFAULT_LOW_SCORE,
    LABEL,
    POLYGON_NAME,
    ImportReport,
    LabelStudioFormatError,
    frames_to_tasks,
    import_from_label_studio,
    labeling_config,
)
from aquapose.segmentation.types import AnnotatedFrame

#: Environment variable holding the Label Studio API token (the SDK's own name).
API_KEY_ENV = "LABEL_STUDIO_API_KEY"
_IMPORT_BATCH = 100


class LabelStudioServerError(RuntimeError):
    """The server could not be reached or refused a request (the message never holds the token)."""


@dataclass(frozen=True)
class PushReport:
    """What :func:`push_to_label_studio` did."""

    project_id: int
    project_created: bool
    imported: int
    already_there: int
    storage_path: str | None


def connect(url: str, api_key: str | None = None) -> Any:
    """A ``label_studio_sdk.LabelStudio`` client for ``url``; the token from ``api_key`` or
    ``$LABEL_STUDIO_API_KEY``. Checks the token with one request."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    if not key:
        raise ValueError(
            f"no Label Studio API token: set {API_KEY_ENV} (Label Studio: Account & Settings > "
            "Access Token; legacy tokens must be enabled on the server)"
        )
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}")
    try:
        from label_studio_sdk import LabelStudio
    except ImportError:
        raise ImportError(
            "Label Studio sync needs label-studio-sdk: pip install 'aquapose[labelstudio]'"
        ) from None
    client = LabelStudio(base_url=url.rstrip("/"), api_key=key, timeout=120)
    with _server_errors(url, "checking the API token"):
        client.users.whoami()
    return client


@contextmanager
def _server_errors(url: str, doing: str) -> Iterator[None]:
    """Turn SDK / HTTP errors into one line that names the server and the step, not the token."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as err:
        body = err.body if isinstance(err.body, (str, dict, list)) else ""
        detail = json.dumps(body)[:300] if not isinstance(body, str) else body[:300]
        hint = f" (is {API_KEY_ENV} right?)" if err.status_code in (401, 403) else ""
        raise LabelStudioServerError(
            f"Label Studio at {url} answered HTTP {err.status_code} while {doing}{hint}: {detail}"
        ) from None
    except httpx.HTTPError as err:
        raise LabelStudioServerError(
            f"cannot reach Label Studio at {url} while {doing}: {type(err).__name__}: {err}"
        ) from None


def find_project(client: Any, url: str, title: str) -> Any | None:
    """The project titled exactly ``title``, None if there is none; error if several."""
    with _server_errors(url, f"looking for project {title!r}"):
        matches = [p for p in client.projects.list(title=title) if p.title == title]
    if len(matches) > 1:
        ids = ", ".join(str(p.id) for p in matches)
        raise ValueError(f"several Label Studio projects are titled {title!r} (ids {ids})")
    return matches[0] if matches else None


def _check_config(config: str, title: str, polygons: bool) -> None:
    """Refuse to reuse a project whose labeling config lacks our controls."""
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError:
        root = ElementTree.Element("View")
    wanted = [("BrushLabels", BRUSH_NAME)] + ([("PolygonLabels", POLYGON_NAME)] if polygons else [])
    for tag, name in wanted:
        controls = [c for c in root.iter(tag) if c.get("name") == name]
        if not controls or LABEL not in [label.get("value") for label in controls[0].iter("Label")]:
            raise ValueError(
                f"Label Studio project {title!r} exists but its labeling config has no <{tag} "
                f'name="{name}"> with label {LABEL!r}; push to a new project name'
            )


def push_to_label_studio(
    coco: str | Path | Sequence[AnnotatedFrame],
    *,
    url: str,
    project: str,
    coco_dir: str | Path | None = None,
    image_root: str | Path | None = None,
    url_prefix: str | None = None,
    polygons: bool = False,
    model_version: str = "aquapose",
    order: str = "file",
    low_score: float = DEFAULT_LOW_SCORE,
    storage: bool = True,
    api_key: str | None = None,
) -> PushReport:
    """Create or reuse project ``project`` on ``url`` and import the frames as tasks with
    predictions (see :func:`~aquapose.segmentation.io.labelstudio.export_to_label_studio`
    for ``coco_dir``, ``image_root``, ``url_prefix``, ``polygons``, ``order`` and
    ``low_score``; with ``order="uncertain"`` the new tasks get ids in queue order).

    With local-files URLs and ``storage``, ``image_root`` is registered as the project's
    local-files storage (it must be the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``
    or inside it, on the server's machine); pass ``storage=False`` to skip that.
    """
    tasks, root = frames_to_tasks(
        coco,
        coco_dir=coco_dir,
        image_root=image_root,
        url_prefix=url_prefix,
        polygons=polygons,
        model_version=model_version,
        order=order,
        low_score=low_score,
    )
    client = connect(url, api_key)
    found = find_project(client, url, project)
    created = found is None
    if found is None:
        with _server_errors(url, f"creating project {project!r}"):
            found = client.projects.create(
                title=project,
                label_config=labeling_config(polygons),
                description="Fish masks to review (aquapose ls push)",
            )
    else:
        _check_config(found.label_config or "", project, polygons)
    project_id = int(found.id)

    storage_path = None
    if storage and url_prefix is None and tasks:
        # The narrowest folder holding every image: Label Studio serves files under it.
        rels = [parse_qs(urlsplit(t["data"]["image"]).query)["d"][0] for t in tasks]
        storage_path = os.path.commonpath([str((root / r).parent) for r in rels])
        _ensure_local_storage(client, url, project_id, storage_path)

    with _server_errors(url, "listing the project's tasks"):
        present = {_frame_key(t.data) for t in client.tasks.list(project=project_id)}
    new = [t for t in tasks if _frame_key(t["data"]) not in present]
    for start in range(0, len(new), _IMPORT_BATCH):
        with _server_errors(url, f"importing tasks into project {project!r}"):
            client.projects.import_tasks(id=project_id, request=new[start : start + _IMPORT_BATCH])
    return PushReport(project_id, created, len(new), len(tasks) - len(new), storage_path)


def _frame_key(data: Any) -> tuple[Any, ...]:
    """Identity of a frame's task: (image_id, camera_id, frame_index)."""
    data = data if isinstance(data, dict) else {}
    return data.get("image_id"), data.get("camera_id"), data.get("frame_index")


def _ensure_local_storage(client: Any, url: str, project_id: int, path: str) -> None:
    """Register ``path`` as a local-files source storage of the project (not synced: it only
    lets Label Studio serve the images under it)."""
    with _server_errors(url, "listing the project's local-files storages"):
        existing = client.import_storage.local.list(project=project_id)
    if any(path == s.path or path.startswith(str(s.path).rstrip("/") + "/") for s in existing):
        return
    try:
        with _server_errors(url, f"registering {path} as a local-files storage"):
            client.import_storage.local.create(
                project=project_id,
                path=path,
                title="aquapose images",
                description="lets Label Studio serve the frames (aquapose ls push)",
                use_blob_urls=True,
            )
    except LabelStudioServerError as err:
        raise LabelStudioServerError(
            f"{err}. Start Label Studio with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true and "
            f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT={path} (or a parent), or push with "
            "--url-prefix / --no-storage"
        ) from None


def pull_from_label_studio(
    *,
    url: str,
    project: str,
    out_coco: str | Path,
    image_root: str | Path,
    url_prefix: str | None = None,
    save_export: str | Path | None = None,
    alpha_threshold: int = DEFAULT_ALPHA_THRESHOLD,
    api_key: str | None = None,
) -> ImportReport:
    """Export project ``project`` (JSON, all tasks) and import it into ``out_coco``.

    ``save_export`` keeps the raw export there too. See
    :func:`~aquapose.segmentation.io.labelstudio.import_from_label_studio` for the policy.
    """
    client = connect(url, api_key)
    found = find_project(client, url, project)
    if found is None:
        raise ValueError(f"no Label Studio project titled {project!r} at {url}")
    with _server_errors(url, f"exporting project {project!r}"):
        chunks = client.projects.exports.download_sync(
            int(found.id), export_type="JSON", download_all_tasks=True
        )
        raw = b"".join(chunks)
    if save_export is not None:
        atomic_write_bytes(save_export, raw)
    try:
        tasks = json.loads(raw)
    except ValueError:
        raise LabelStudioFormatError(
            f"project {project!r} at {url}: the export is not valid JSON ({len(raw)} bytes)"
        ) from None
    try:
        return import_from_label_studio(
            tasks,
            image_root=image_root,
            url_prefix=url_prefix,
            out_coco=out_coco,
            alpha_threshold=alpha_threshold,
        )
    except LabelStudioFormatError as err:
        raise LabelStudioFormatError(f"project {project!r} at {url}: {err}") from None
