"""Resumable runs: an append-only JSON-lines journal that starts with the run's settings.

Every stage that resumes (detect, pseudolabel, segment) streams its finished units
of work to a journal and, when started again, continues after the last one:

- line 1 is ``{"run": settings}``; a journal made with other settings is refused
  (the results would mix), naming the settings that differ;
- a line torn by an interruption (no newline, broken JSON) is cut off, so appending
  resumes cleanly (:func:`~aquapose.segmentation.io.files.read_jsonl`);
- ``overwrite=True`` starts over.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from aquapose.segmentation.io.files import atomic_write_bytes, read_jsonl

__all__ = ["Journal", "iter_journal"]


class Journal:
    """An append-only JSONL journal: ``with Journal(path, settings) as j: j.append(rec)``.

    Attributes:
        records: the records of an earlier, interrupted run with the same settings
            (without the header); empty for a fresh run.
    """

    def __init__(
        self, path: str | Path, settings: dict[str, Any], *, overwrite: bool = False
    ) -> None:
        self.path = Path(path)
        self.settings = json.loads(json.dumps(settings, default=str))  # as it reads back
        if overwrite:
            self.path.unlink(missing_ok=True)
        records = read_jsonl(self.path)
        if records:
            before = records[0].get("run")
            if not isinstance(before, dict):
                raise ValueError(f"{self.path}: first line is not a run header of this tool")
            changed = sorted(
                k for k in set(before) | set(self.settings) if before.get(k) != self.settings.get(k)
            )
            if changed:
                raise ValueError(
                    f"{self.path.parent}: holds results made with other {', '.join(changed)} "
                    f"(see {self.path.name}); use the same settings to resume, --overwrite to "
                    "start over, or a new output folder"
                )
        self.records: list[dict[str, Any]] = records[1:]
        self._fh: IO[str] | None = None

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the journal's records (e.g. drop work that cannot be resumed)."""
        self.close()  # later appends go to the new file
        lines = [{"run": self.settings}, *records]
        data = "".join(json.dumps(r) + "\n" for r in lines).encode("utf-8")
        atomic_write_bytes(self.path, data)
        self.records = list(records)

    def append(self, record: dict[str, Any]) -> None:
        """Write one finished record and flush it to the file."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = not self.path.exists() or self.path.stat().st_size == 0
            self._fh = self.path.open("a", encoding="utf-8")
            if fresh:
                self._fh.write(json.dumps({"run": self.settings}) + "\n")
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def iter_journal(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream a journal's records (header skipped) without loading the whole file."""
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if "run" not in record:
                yield record
