"""SenderFunction: SQS batches of jobs from SmsQueue and PushQueue → at most one message per job.

Partial batch failures: a throttled record is retried by SQS, everything else ends in a recorded state.
The work is in ``dunning.sender``.
"""

from __future__ import annotations

from dunning import startup

startup.pause(__name__)  # no garbage collection until the service is built: dunning.startup

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from dunning.observability import FunctionTracer, MetricsRecorder, function_logger
from dunning.sender import Sender, build_sender
from dunning.settings import SenderSettings

logger = function_logger()
tracer = FunctionTracer()  # Powertools' Tracer, loaded on the first traced invocation
metrics = Metrics()


@lru_cache(maxsize=1)
def _sender(settings: SenderSettings) -> Sender:
    return build_sender(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        sender = _sender(SenderSettings.from_env())
    finally:
        startup.resume()
    logger.set_correlation_id(context.aws_request_id)
    recorder = MetricsRecorder()
    try:
        return sender.process(event, context, recorder)
    finally:
        recorder.publish(metrics)
