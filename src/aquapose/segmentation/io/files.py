"""Safe file I/O: atomic writes (temp file + rename) and image reads that fail loudly."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename.

    A crash leaves either the old file or the new one, never half a file.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, expected a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    """JSON-encode ``obj`` (numpy scalars/arrays allowed) and write it atomically."""
    text = json.dumps(obj, indent=indent, default=json_default)
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines progress log, cutting off a torn or corrupt tail.

    A run killed mid-write leaves a last line without its newline (or with broken
    JSON): it and anything after it are truncated from the file, so appending resumes
    cleanly. A missing file has no records.
    """
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    valid_bytes = 0
    with path.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if not isinstance(record, dict):
                break
            records.append(record)
            valid_bytes += len(line)
    if valid_bytes != path.stat().st_size:
        with path.open("r+b") as fh:
            fh.truncate(valid_bytes)
    return records


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def read_json(path: str | Path) -> Any:
    """Load a JSON file; errors name the file (and line/column for bad JSON)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})"
        ) from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text file, expected JSON") from None


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Encode an image (format from the suffix: .png, .jpg, ...) and write it atomically.

    ``image`` is (H, W) or (H, W, 3) uint8 in OpenCV's BGR order.
    """
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode an image of shape {image.shape}")
    return atomic_write_bytes(path, buf.tobytes())


def read_image(path: str | Path, color: bool = True) -> np.ndarray:
    """Read an image file: (H, W, 3) uint8 BGR, or (H, W) uint8 when ``color=False``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    data = np.fromfile(path, dtype=np.uint8)
    flags = cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise ValueError(f"{path}: not a readable image (corrupt or unsupported format)")
    return image


def relative_path(target: str | Path, start: str | Path) -> str:
    """``target`` relative to folder ``start`` (POSIX separators), or absolute when it
    cannot be made relative (another drive)."""
    target, start = Path(target).resolve(), Path(start).resolve()
    try:
        return Path(os.path.relpath(target, start)).as_posix()
    except ValueError:
        return target.as_posix()
