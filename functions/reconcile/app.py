"""ReconcileFunction: the daily sweep (re-index missed loans, un-index paid ones, resolve AMBIGUOUS).

Input: the schedule's ``{"scheduled_time"}``, optionally ``segment``/``total_segments`` to split the
Scan across invocations. The work is in ``dunning.reconcile``.
"""

from __future__ import annotations

from dunning import startup

startup.pause(__name__)  # no garbage collection until the service is built: dunning.startup

from functools import lru_cache
from typing import Any

# The runtime's boto3 before the product's modules, as the bare handler loads it: loaded from within them
# (botocore.exceptions first) the same modules cost up to ~1,400 more page faults (memory given back and
# faulted in again) and 3-10 ms more CPU on a cold start (docs/benchmarks.md).
import boto3  # noqa: F401
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from dunning.items import iso_utc, summarise_validation_error
from dunning.observability import FunctionTracer, MetricsRecorder, function_logger
from dunning.reconcile import Reconciler, SweepRequest, build_reconciler
from dunning.settings import ReconcileSettings

logger = function_logger()
tracer = FunctionTracer()  # Powertools' Tracer, loaded on the first traced invocation
metrics = Metrics()


@lru_cache(maxsize=1)
def _reconciler(settings: ReconcileSettings) -> Reconciler:
    return build_reconciler(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        reconciler = _reconciler(ReconcileSettings.from_env())
    finally:
        startup.resume()
    recorder = MetricsRecorder()
    try:
        try:
            request = SweepRequest.model_validate(event)
        except ValidationError as exc:
            # A wrong input is not retried: it stays wrong until the schedule is fixed.
            reason = summarise_validation_error(exc)
            logger.error("not a sweep request; ignored", extra={"error": reason})
            recorder.count("MalformedEvent")
            return {"rejected": reason}
        logger.set_correlation_id(f"reconcile@{iso_utc(request.scheduled_time)}")
        result = reconciler.run(request, recorder)
        return {k: v for k, v in result.__dict__.items()}
    finally:
        recorder.publish(metrics)
