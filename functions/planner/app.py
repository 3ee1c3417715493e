"""PlannerFunction: the Scheduler tick fans out one task per shard; each PlanQueue task plans a shard.

Two event shapes: the schedule's input ``{"scheduled_time", "execution_id"}`` and an SQS batch of
shard tasks from PlanQueue (partial batch failures). The work is in ``dunning.planner``.
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

from dunning.event_shapes import records_of
from dunning.items import iso_utc, summarise_validation_error
from dunning.observability import FunctionTracer, MetricsRecorder, function_logger
from dunning.planner import Planner, Tick, build_planner
from dunning.settings import PlannerSettings

logger = function_logger()
tracer = FunctionTracer()  # Powertools' Tracer, loaded on the first traced invocation
metrics = Metrics()


@lru_cache(maxsize=1)
def _planner(settings: PlannerSettings) -> Planner:
    return build_planner(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        planner = _planner(PlannerSettings.from_env())
    finally:
        startup.resume()
    recorder = MetricsRecorder()
    try:
        if not isinstance(event, dict) or "Records" in event:
            failures = planner.process_tasks(
                records_of(event, recorder),
                context.get_remaining_time_in_millis,
                recorder,
                on_task=logger.set_correlation_id,
            )
            return {"batchItemFailures": [{"itemIdentifier": i} for i in failures]}
        try:
            tick = Tick.model_validate(event)
        except ValidationError as exc:
            # Nothing to retry: the schedule's input is wrong until someone fixes the schedule.
            reason = summarise_validation_error(exc)
            logger.error("not a schedule tick; ignored", extra={"error": reason})
            recorder.count("MalformedEvent")
            return {"rejected": reason}
        logger.set_correlation_id(tick.execution_id or iso_utc(tick.scheduled_time))
        shards = planner.fan_out(tick, recorder)
        logger.info(
            "tick fanned out", extra={"scheduled_time": iso_utc(tick.scheduled_time), "shards": shards}
        )
        return {"scheduled_time": iso_utc(tick.scheduled_time), "shards": shards}
    finally:
        recorder.publish(metrics)
