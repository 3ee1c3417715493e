"""The outer shape of a Lambda event: its records, or a logged reason why it has none.

AWS always sends ``{"Records": [ {…}, … ]}`` to the SQS, SNS and stream consumers, but a replayed,
hand-made or redriven event may be anything: not an object, ``Records`` missing or not a list, a record
that is ``null`` or a string. Every handler reads its records through :func:`records_of`, which never
raises: the event's usable records are returned, and whatever is not one is logged with its position
and type (never its content) and counted as ``MalformedEvent`` / ``MalformedRecord``. A record that is
not an object carries no id, so it cannot be reported as a batch item failure; it is dropped with that
log line, and its neighbours go on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dunning.observability import MetricsRecorder, PackageLogger

logger = PackageLogger(__name__)


def records_of(event: Any, metrics: MetricsRecorder) -> list[Mapping[str, Any]]:
    """The records of ``event`` that are JSON objects (the rest logged and counted; never raises)."""
    if not isinstance(event, Mapping):
        logger.error("malformed event: not a JSON object", extra={"type": type(event).__name__})
        metrics.count("MalformedEvent")
        return []
    records = event.get("Records")
    if not isinstance(records, list):
        logger.error("malformed event: Records missing or not a list", extra={"type": type(records).__name__})
        metrics.count("MalformedEvent")
        return []
    usable: list[Mapping[str, Any]] = []
    for position, record in enumerate(records):
        if isinstance(record, Mapping):
            usable.append(record)
            continue
        logger.error(
            "malformed record skipped: not a JSON object",
            extra={"position": position, "type": type(record).__name__},
        )
        metrics.count("MalformedRecord")
    return usable
