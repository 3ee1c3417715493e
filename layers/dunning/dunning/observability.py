"""Observability helpers shared by every function: masking, the JSON log formatter, metric recording.

The services record what happened in a :class:`MetricsRecorder` (plain data, easy to assert on in
tests); the handler publishes it through Powertools Metrics at the end of the invocation. Logs go
through :class:`MaskingFormatter`, which masks anything that looks like an E.164 number even when a
call site forgot to, so a phone number never reaches CloudWatch Logs in clear. Tracing goes through
:class:`FunctionTracer`, which loads the X-Ray SDK only for an invocation that is traced.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit, single_metric

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer
    from aws_lambda_powertools.logging.types import LogRecord

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

_E164_LIKE = re.compile(r"\+\d{7,15}")
_ENDPOINT_ARN = re.compile(
    r"(arn:aws[a-z\-]*:sns:[a-z0-9\-]+:\d{12}:endpoint/[^/\"\s]+/[^/\"\s]+/)([^\"\s]+)"
)


def mask_phone(number: str | None) -> str:
    """Mask a phone number for logs: keep the ``+``, two leading digits and the last two.

    ``+12125550142`` → ``+12*******42``. Enough to tell two numbers apart in an incident, not enough
    to call anyone.
    """
    if not number:
        return ""
    digits = number.lstrip("+")
    if len(digits) <= 4:
        return "+" + "*" * len(digits)
    return "+" + digits[:2] + "*" * (len(digits) - 4) + digits[-2:]


def mask_contact_point(point: str | None) -> str:
    """Mask a contact point: a phone number, or a push endpoint ARN (its endpoint id identifies a device)."""
    if not point:
        return ""
    if point.startswith("arn:"):
        return _ENDPOINT_ARN.sub(lambda m: m.group(1) + "…" + m.group(2)[-4:], point)
    return mask_phone(point)


def mask_text(text: str) -> str:
    """Mask every E.164-looking number and endpoint id inside a free text (a log line, an error message)."""
    text = _E164_LIKE.sub(lambda m: mask_phone(m.group(0)), text)
    return _ENDPOINT_ARN.sub(lambda m: m.group(1) + "…" + m.group(2)[-4:], text)


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON formatter that masks phone numbers and endpoint ids in the serialised record."""

    def serialize(self, log: LogRecord) -> str:
        return mask_text(super().serialize(log))


class PackageLogger:
    """A package module's logger: a child of the function's service logger, found when it is used.

    Records go to the service logger's handler (JSON, masked, with the correlation id) whatever the
    import order: the service name is read at each call, not when the module was imported (a module
    imported before POWERTOOLS_SERVICE_NAME is set would otherwise log to an orphan).
    """

    def __init__(self, module: str) -> None:
        # "dunning.planner" → "<service>.planner", a child of the service logger.
        self._module = module.removeprefix("dunning.")

    @property
    def _logger(self) -> logging.Logger:
        service = os.environ.get("POWERTOOLS_SERVICE_NAME") or "service_undefined"
        return logging.getLogger(f"{service}.{self._module}")

    def debug(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.debug(msg, extra=extra, stacklevel=2)

    def info(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.info(msg, extra=extra, stacklevel=2)

    def warning(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.warning(msg, extra=extra, stacklevel=2)

    def error(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.error(msg, extra=extra, stacklevel=2)

    def exception(self, msg: str, *, extra: Mapping[str, Any] | None = None) -> None:
        self._logger.exception(msg, extra=extra, stacklevel=2)


def function_logger() -> Logger:
    """The handler's Logger: JSON, masked. Package modules log through :class:`PackageLogger`.

    Powertools configures a service's logger once per process; if something configured it first with
    another formatter, masking is put in place anyway, and the level is set again from this function's
    LOG_LEVEL (in Lambda a process loads one function; local runs load several in one process, and the
    first one's level would otherwise stay for all of them).
    """
    logger = Logger(logger_formatter=MaskingFormatter())
    handler = logger.registered_handler
    if not isinstance(handler.formatter, MaskingFormatter):
        handler.setFormatter(MaskingFormatter())
    logger.setLevel(None)  # None: resolved from the environment, as Powertools does on first configuration
    return logger


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this invocation is traced: the runtime's trace header is sampled and Powertools would trace.

    With ``Tracing: Active`` Lambda sets ``_X_AMZN_TRACE_ID`` before each invocation, ``Sampled=1`` for
    the ones X-Ray samples. Powertools' own rule applies on top: not disabled by POWERTOOLS_TRACE_DISABLED,
    in Lambda (LAMBDA_TASK_ROOT) and not in SAM local or Chalice local.
    """
    env = os.environ if environ is None else environ
    if "Sampled=1" not in env.get("_X_AMZN_TRACE_ID", "").split(";"):
        return False
    if env.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in ("1", "true", "yes", "on", "y", "t"):
        return False
    return bool(env.get("LAMBDA_TASK_ROOT")) and not (
        env.get("AWS_SAM_LOCAL") or env.get("AWS_CHALICE_CLI_MODE")
    )


class FunctionTracer:
    """Powertools' Tracer, created on the first traced invocation instead of when the handler is imported.

    ``Tracer()`` imports the X-Ray SDK, wrapt and asyncio and patches botocore even when tracing is off
    (about a tenth of a cold start). Until an invocation is traced (:func:`tracing_requested`) nothing of
    X-Ray is loaded and the handler runs as is; from the first traced one on, every invocation goes through
    Powertools' ``capture_lambda_handler`` (it records the sampled ones: the handler subsegment, the
    ColdStart and Service annotations, errors, the AWS calls of the patched botocore). Lambda's own
    segments for the function do not depend on the SDK and are recorded for every sampled invocation.
    """

    def __init__(self) -> None:
        self._tracer: Tracer | None = None
        self._invocations = 0

    @property
    def tracer(self) -> Tracer:
        """The Powertools Tracer (created, and botocore patched, on first use)."""
        if self._tracer is None:
            from aws_lambda_powertools import Tracer
            from aws_lambda_powertools.tracing import tracer as powertools_tracer

            if self._invocations:
                # Powertools counts its first captured invocation as the cold start; it was earlier.
                powertools_tracer.is_cold_start = False
            self._tracer = Tracer()
        return self._tracer

    def capture_lambda_handler(self, handler: _Handler) -> _Handler:
        """Decorate a Lambda handler: traced through Powertools once an invocation is traced."""
        traced: Callable[..., Any] | None = None

        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            nonlocal traced
            if traced is None and tracing_requested():
                traced = self.tracer.capture_lambda_handler(handler)
            self._invocations += 1
            return (traced or handler)(event, context)

        return wrapper  # type: ignore[return-value]


@dataclass
class MetricsRecorder:
    """What a service counted during one invocation, by metric name and dimensions.

    Counts are summed; ``values`` keep every observation (PlannerLagSeconds is one per shard task).
    Dimensions are for bounded sets only (channel, rule id), never for ids or reasons in free text.
    """

    counts: Counter[tuple[str, tuple[tuple[str, str], ...]]] = field(default_factory=Counter)
    values: list[tuple[str, str, float]] = field(default_factory=list)

    def count(self, name: str, value: int = 1, **dimensions: str) -> None:
        self.counts[(name, tuple(sorted(dimensions.items())))] += value

    def observe(self, name: str, value: float, unit: str = MetricUnit.Seconds.value) -> None:
        self.values.append((name, unit, value))

    def total(self, name: str, **dimensions: str) -> int:
        """Sum of a counter over every dimension set matching ``dimensions`` (all of them if none given)."""
        wanted = set(dimensions.items())
        return sum(n for (metric, dims), n in self.counts.items() if metric == name and wanted <= set(dims))

    def merge(self, other: MetricsRecorder) -> None:
        self.counts.update(other.counts)
        self.values.extend(other.values)

    def publish(self, metrics: Metrics) -> None:
        """Hand everything to Powertools: plain counters on the function's metric set, dimensioned
        counters as single metrics (EMF allows one dimension set per blob)."""
        for (name, dims), value in sorted(self.counts.items()):
            if not dims:
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
                continue
            with single_metric(name=name, unit=MetricUnit.Count, value=value) as metric:
                for key, dim_value in dims:
                    metric.add_dimension(name=key, value=dim_value)
        for name, unit, observed in self.values:
            metrics.add_metric(name=name, unit=unit, value=observed)
