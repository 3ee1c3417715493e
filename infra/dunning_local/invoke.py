"""Offline ``sam local invoke``: run a function of template.yaml in this process against a local stack.

:func:`invoke` reads the function's ``Handler``, ``CodeUri``, ``Timeout`` and environment from the
template (Globals merged), sets that environment resolved against the local stack, imports the handler
module afresh from its file (a cold start every call), and calls the handler with the event and a
Lambda-like context. The event files in events/ name the default-prefix resources
(``dunning-local-…``); for a stack built with another prefix they are rewritten to it.

``invoke_main(argv)`` is the command line behind ``dunning invoke FUNCTION --event FILE`` and
``python -m dunning_local.invoke``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dunning_local.cfn import REPO_ROOT
from dunning_local.stack import DEFAULT_PREFIX, DEFAULT_REGION, LocalStack


@dataclass
class LambdaContext:
    """What a Python handler's ``context`` offers (the attributes Powertools reads)."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self.log_stream_name = (
            self.log_stream_name or f"local/[$LATEST]{self.aws_request_id.replace('-', '')}"
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class FunctionCode:
    """Where a function's handler lives, from its template properties."""

    logical_id: str
    code_dir: Path
    module_file: Path
    handler_name: str


def function_code(stack: LocalStack, function: str, repo_root: Path | None = None) -> FunctionCode:
    """The handler file and function name of ``function`` (logical id, folder or function name)."""
    repo_root = REPO_ROOT if repo_root is None else repo_root
    logical_id = stack.function_logical_id(function)
    props = stack.function_properties(logical_id)
    module_path, _, handler_name = str(props["Handler"]).rpartition(".")
    code_dir = (repo_root / str(props["CodeUri"])).resolve()
    return FunctionCode(
        logical_id, code_dir, code_dir / (module_path.replace(".", "/") + ".py"), handler_name
    )


def load_event(event: str | Path | Mapping[str, Any], stack: LocalStack) -> Any:
    """The event from a file (or as given), with default-prefix resource names moved to the stack's prefix."""
    text = Path(event).read_text(encoding="utf-8") if isinstance(event, str | Path) else json.dumps(event)
    if stack.prefix != DEFAULT_PREFIX:
        text = text.replace(f"{DEFAULT_PREFIX}-", f"{stack.prefix}-")
    return json.loads(text)


def invoke(
    function: str,
    event: str | Path | Mapping[str, Any],
    stack: LocalStack,
    *,
    env_overrides: Mapping[str, str] | None = None,
    now: datetime | None = None,
    repo_root: Path | None = None,
) -> Any:
    """Call ``function``'s handler with ``event`` as Lambda would, against ``stack``; return its result.

    ``function`` is a logical id (``SenderFunction``), a CodeUri folder (``sender``) or a function
    name. ``now`` installs a fixed clock (``dunning.clock``) for the call. The environment is the
    template's, plus the variables the Lambda runtime sets; the process environment is restored after.
    Exceptions from the handler propagate, as an invocation error would.
    """
    code = function_code(stack, function, repo_root)
    if not code.module_file.is_file():
        raise FileNotFoundError(f"{code.logical_id}: no handler module at {code.module_file}")
    props = stack.function_properties(code.logical_id)
    function_name = str(stack.ref(code.logical_id))
    context = LambdaContext(
        function_name=function_name,
        memory_limit_in_mb=int(stack.resolve(props.get("MemorySize", 128))),
        invoked_function_arn=str(stack.get_att(code.logical_id, "Arn")),
        timeout_seconds=float(stack.resolve(props.get("Timeout", 3))),
    )
    environment = {
        **_runtime_environment(stack, context, props),
        **stack.function_environment(code.logical_id),
        **(env_overrides or {}),
    }
    payload = load_event(event, stack)
    with _environment(environment), _code_on_path(code.code_dir) as loaded, _clock(now):
        module = _fresh_module(code, loaded)
        handler = getattr(module, code.handler_name)
        return handler(payload, context)


def _runtime_environment(
    stack: LocalStack, context: LambdaContext, props: Mapping[str, Any]
) -> dict[str, str]:
    return {
        "AWS_REGION": stack.region,
        "AWS_DEFAULT_REGION": stack.region,
        "AWS_LAMBDA_FUNCTION_NAME": context.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": context.function_version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(context.memory_limit_in_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": context.log_group_name,
        "AWS_LAMBDA_LOG_STREAM_NAME": context.log_stream_name,
        "_HANDLER": str(props["Handler"]),
        # No X-Ray daemon here: the Tracer would only warn about missing segments.
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


# Invocations may run at once in threads (two Lambdas on the same work). The process has one
# environment and one module table, so both are shared bookkeeping: changed under this lock only.
_PROCESS_LOCK = threading.RLock()
# Variable name → (the value before the first invocation that set it, how many invocations hold it).
_held_variables: dict[str, tuple[str | None, int]] = {}


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Install ``variables``; the process's own values come back when the last invocation holding each
    one returns, so an invocation that finishes first never takes a variable from one still running."""
    with _PROCESS_LOCK:
        for name, value in variables.items():
            saved, holders = _held_variables.get(name, (os.environ.get(name), 0))
            _held_variables[name] = (saved, holders + 1)
            os.environ[name] = value
    try:
        yield
    finally:
        with _PROCESS_LOCK:
            for name in variables:
                saved, holders = _held_variables.pop(name)
                if holders > 1:
                    _held_variables[name] = (saved, holders - 1)
                elif saved is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = saved


@contextlib.contextmanager
def _code_on_path(code_dir: Path) -> Iterator[set[str]]:
    """The function folder is the task root, importable as in Lambda; its modules are forgotten after.

    Yields the set of module names this invocation loaded (:func:`_fresh_module` adds to it). Only those,
    and modules of the folder that were first imported during this invocation, are removed afterwards:
    a concurrent invocation of the same function keeps its own module (removing it by file name was a
    ``KeyError`` race).
    """
    loaded: set[str] = set()
    with _PROCESS_LOCK:
        before = set(sys.modules)
        sys.path.insert(0, str(code_dir))
    try:
        yield loaded
    finally:
        with _PROCESS_LOCK:
            sys.path.remove(str(code_dir))
            siblings = {
                name
                for name in set(sys.modules) - before
                if not name.startswith(_FRESH_PREFIX)
                and (getattr(sys.modules.get(name), "__file__", None) or "").startswith(str(code_dir))
            }
            for name in loaded | siblings:
                sys.modules.pop(name, None)


@contextlib.contextmanager
def _clock(now: datetime | Callable[[], datetime] | None) -> Iterator[None]:
    if now is None:
        yield
        return
    from dunning import clock

    reading: Callable[[], datetime] = now if callable(now) else (lambda: now)
    with clock.use(reading):
        yield


_FRESH_PREFIX = "_dunning_fn_"


def _fresh_module(code: FunctionCode, loaded: set[str] | None = None) -> Any:
    """Import the handler module afresh under a unique name (a cold start); ``loaded`` records the name."""
    name = f"{_FRESH_PREFIX}{code.code_dir.name}_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, code.module_file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {code.module_file}")
    module = importlib.util.module_from_spec(spec)
    # Held while the module body runs: imports are not safe to interleave with another invocation's
    # clean-up of the module table.
    with _PROCESS_LOCK:
        sys.modules[name] = module
        if loaded is not None:
            loaded.add(name)
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    return module


def batch_item_failures(result: Any) -> list[str]:
    """The message/sequence ids a partial-batch response reports as failed ([] for any other result)."""
    if isinstance(result, Mapping):
        return [str(item.get("itemIdentifier")) for item in result.get("batchItemFailures", [])]
    return []


def receive_batches(sqs: Any, url: str, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Each batch visible on a queue, received as an SQS event source mapping would, until it is empty.

    The visibility timeout is long: what a batch leaves on the queue (its failed records) stays out of
    sight until the caller makes it visible again, as a real retry would wait.
    """
    while True:
        got = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=batch_size,
            MessageAttributeNames=["All"],
            AttributeNames=["All"],
            VisibilityTimeout=3600,
        ).get("Messages", [])
        if not got:
            return
        yield got


def job_ids(messages: Iterable[Mapping[str, Any]]) -> set[str]:
    """``loan_id#step`` of each send job among SQS messages; a body that is not a job is skipped (the
    sender records it as bad input)."""
    found = set()
    for message in messages:
        try:
            body = json.loads(message["Body"])
            found.add(f"{body['loan_id']}#{body['step']}")
        except (ValueError, KeyError, TypeError):
            pass
    return found


def settle_batch(sqs: Any, url: str, got: Sequence[Mapping[str, Any]], result: Any) -> set[str]:
    """Delete the records a handler took from the queue, keeping those its partial-batch response names.

    Returns the message ids of the failed records.
    """
    failed = set(batch_item_failures(result))
    done = [m for m in got if m["MessageId"] not in failed]
    for i in range(0, len(done), 10):  # DeleteMessageBatch takes ten at most
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i : i + 10])
            ],
        )
    return failed


# ---------------------------------------------------------------------------------------------------
# dunning invoke FUNCTION --event FILE


def invoke_main(argv: Sequence[str] | None = None) -> int:
    """``dunning invoke``: 0 when the handler returned without reporting failed batch items."""
    parser = argparse.ArgumentParser(
        prog="dunning invoke",
        description="Run a function's handler in this process with an event file, against moto: "
        "moto_server when --endpoint (or AWS_ENDPOINT_URL) is given, otherwise a fresh in-process moto "
        "with the template's resources, empty.",
    )
    parser.add_argument("function", help="logical id (SenderFunction), folder (sender) or function name")
    parser.add_argument(
        "--event", required=True, help="event JSON file, e.g. events/sender/sms_jobs_sqs.json"
    )
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL") or None)
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="override a variable"
    )
    parser.add_argument("--now", help="fixed clock for the call, ISO-8601 (e.g. 2026-03-02T14:05:00Z)")
    args = parser.parse_args(argv)

    overrides = dict(item.split("=", 1) for item in args.env)
    now = datetime.fromisoformat(args.now.replace("Z", "+00:00")) if args.now else None
    result = _run(args, overrides, now)
    json.dump(result, sys.stdout, indent=2, default=str)
    print()
    failures = batch_item_failures(result)
    if failures:
        print(f"{len(failures)} batch item(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace, overrides: dict[str, str], now: datetime | None) -> Any:
    from dunning_local.stack import build_local_stack, local_clients

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    if args.endpoint:
        stack = build_local_stack(local_clients(args.endpoint, args.region), prefix=args.prefix)
        overrides = {"AWS_ENDPOINT_URL": args.endpoint, **overrides}
        return invoke(args.function, args.event, stack, env_overrides=overrides, now=now)

    import boto3
    from moto import mock_aws

    with mock_aws():
        stack = build_local_stack(boto3.Session(region_name=args.region), prefix=args.prefix)
        return invoke(args.function, args.event, stack, env_overrides=overrides, now=now)


if __name__ == "__main__":
    raise SystemExit(invoke_main())


@dataclass
class WarmFunction:
    """A function loaded once and invoked many times, like a warm Lambda execution environment.

    The demo and the soak run drive thousands of invocations; a cold import for each would measure
    imports, not the product. The environment is installed for each call and restored after it.
    """

    logical_id: str
    handler: Any
    environment: dict[str, str]
    function_name: str
    function_arn: str
    memory_mb: int
    timeout_seconds: float

    def __call__(self, event: Any, *, now: datetime | Callable[[], datetime] | None = None) -> Any:
        """One invocation; ``now`` is a fixed instant or a clock to read (simulated time that moves)."""
        context = LambdaContext(
            function_name=self.function_name,
            memory_limit_in_mb=self.memory_mb,
            invoked_function_arn=self.function_arn,
            timeout_seconds=self.timeout_seconds,
        )
        with _environment(self.environment), _clock(now):
            return self.handler(event, context)


def warm_function(
    stack: LocalStack,
    function: str,
    *,
    env_overrides: Mapping[str, str] | None = None,
    repo_root: Path | None = None,
) -> WarmFunction:
    """Load ``function``'s handler once against ``stack`` (see :func:`invoke` for the environment)."""
    code = function_code(stack, function, repo_root)
    props = stack.function_properties(code.logical_id)
    context = LambdaContext(
        function_name=str(stack.ref(code.logical_id)),
        memory_limit_in_mb=int(stack.resolve(props.get("MemorySize", 128))),
        invoked_function_arn=str(stack.get_att(code.logical_id, "Arn")),
        timeout_seconds=float(stack.resolve(props.get("Timeout", 3))),
    )
    environment = {
        **_runtime_environment(stack, context, props),
        **stack.function_environment(code.logical_id),
        **(env_overrides or {}),
    }
    with _environment(environment), _code_on_path(code.code_dir) as loaded:
        module = _fresh_module(code, loaded)
    return WarmFunction(
        code.logical_id,
        getattr(module, code.handler_name),
        environment,
        context.function_name,
        context.invoked_function_arn,
        context.memory_limit_in_mb,
        context.timeout_seconds,
    )
