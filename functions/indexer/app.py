"""IndexerFunction: DynamoDB stream records of Loans and Borrowers → the loans' cadence items.

Returns partial batch failures for records that cannot be read. The work is in ``dunning.indexer``.
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

from dunning.event_shapes import records_of
from dunning.indexer import Indexer, build_indexer
from dunning.observability import FunctionTracer, MetricsRecorder, function_logger
from dunning.settings import IndexerSettings

logger = function_logger()
tracer = FunctionTracer()  # Powertools' Tracer, loaded on the first traced invocation
metrics = Metrics()


@lru_cache(maxsize=1)
def _indexer(settings: IndexerSettings) -> Indexer:
    return build_indexer(settings)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        indexer = _indexer(IndexerSettings.from_env())
    finally:
        startup.resume()
    logger.set_correlation_id(context.aws_request_id)
    recorder = MetricsRecorder()
    try:
        failures = indexer.process(records_of(event, recorder), recorder)
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failures]}
    finally:
        recorder.publish(metrics)
