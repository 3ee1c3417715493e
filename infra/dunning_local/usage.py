"""What every ``dunning`` command shares for user input: the one-line error and the parsers behind it.

Kept apart from the CLI so that the commands (simulate, operate, invoke) can raise a :class:`UsageError`
without importing the CLI, which imports them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """A problem the user can fix; printed as one line."""


def parse_at(text: str, option: str = "--at") -> datetime:
    """An ISO-8601 instant with a zone (``2026-03-02T14:00:00Z``), in UTC; a clear error otherwise."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UsageError(
            f"{option} {text!r} is not an ISO-8601 instant; use e.g. 2026-03-02T14:00:00Z"
        ) from exc
    if value.tzinfo is None:
        raise UsageError(f"{option} {text!r} has no time zone; add Z or an offset, e.g. 2026-03-02T14:00:00Z")
    return value.astimezone(UTC)


def read_json(path: str | Path, what: str) -> Any:
    """The JSON document in ``path``; a missing file or bad JSON is a :class:`UsageError` naming it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{what} file {path} not found") from exc
    except IsADirectoryError as exc:
        raise UsageError(f"{what} file {path} is a directory") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} file {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """Like :func:`read_json`, for a file that must hold one JSON object (an item, an event)."""
    value = read_json(path, what)
    if not isinstance(value, dict):
        kind = "an array" if isinstance(value, list) else type(value).__name__
        raise UsageError(f"{what} file {path} holds {kind}; expected one JSON object {{...}}")
    return value
