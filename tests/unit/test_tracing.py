"""When an invocation is traced (``dunning.observability.tracing_requested``): the runtime's header and
Powertools' own rule, as Lambda with ``Tracing: Active`` gives them."""

from __future__ import annotations

import pytest

from dunning.observability import tracing_requested

SAMPLED = "Root=1-6756f4c0-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=1"
UNSAMPLED = SAMPLED.replace("Sampled=1", "Sampled=0")
LAMBDA = {"LAMBDA_TASK_ROOT": "/var/task"}


def test_a_sampled_invocation_in_lambda_is_traced() -> None:
    assert tracing_requested({**LAMBDA, "_X_AMZN_TRACE_ID": SAMPLED})


@pytest.mark.parametrize(
    "environ",
    [
        {**LAMBDA, "_X_AMZN_TRACE_ID": UNSAMPLED},
        {**LAMBDA, "_X_AMZN_TRACE_ID": SAMPLED.replace("Sampled=1", "Sampled=?")},
        LAMBDA,
        {"_X_AMZN_TRACE_ID": SAMPLED},
        {**LAMBDA, "_X_AMZN_TRACE_ID": SAMPLED, "POWERTOOLS_TRACE_DISABLED": "true"},
        {**LAMBDA, "_X_AMZN_TRACE_ID": SAMPLED, "POWERTOOLS_TRACE_DISABLED": "1"},
        {**LAMBDA, "_X_AMZN_TRACE_ID": SAMPLED, "AWS_SAM_LOCAL": "true"},
        {**LAMBDA, "_X_AMZN_TRACE_ID": SAMPLED, "AWS_CHALICE_CLI_MODE": "true"},
    ],
    ids=[
        "unsampled",
        "sampling-deferred",
        "no-header",
        "outside-lambda",
        "disabled",
        "disabled-1",
        "sam-local",
        "chalice-local",
    ],
)
def test_other_invocations_are_not(environ: dict[str, str]) -> None:
    assert not tracing_requested(environ)


def test_tracing_disabled_false_still_traces() -> None:
    assert tracing_requested({**LAMBDA, "_X_AMZN_TRACE_ID": SAMPLED, "POWERTOOLS_TRACE_DISABLED": "false"})
