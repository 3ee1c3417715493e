"""Cold start of each function ("ready": import + the first invocation) against a bare handler, in one run.

Each sample is a fresh interpreter (``python -S``: no site-packages) whose ``sys.path`` is laid out as
Lambda's: the function's CodeUri folder (``/var/task``), the layer (``/opt/python``), then the runtime's
own boto3 and its dependencies (``/var/runtime``, symlinks to this virtual environment's packages).
The layer is the one ``sam build`` makes (``layers/dunning/build_layer.py``), built for this interpreter
(``--platform host``: the aarch64 build cannot be imported here) with the same pruning. Without network
it falls back to symlinks of this environment's packages (``layer_source`` says which).

*Ready* is the cold start up to the handler's answer: ``import app`` and ``app.handler(event, context)``
on a small event of the function's own kind (an empty batch; the reconcile sweep of an empty table),
which builds what every first invocation builds (settings, clients, service, rulebooks, templates).
AWS requests go to a stub endpoint in this process that answers ``{}`` (never real AWS). The *bare*
handler imports boto3 and returns. ``ready_ratio`` (function ready / bare ready, medians of wall time)
and ``ready_cpu_ratio`` (the same in CPU time, measured inside each sample: steadier on a busy machine)
are the reported figures; ``ratio`` is the import alone against ``import boto3``.

Each function has a *floor* of its own, sampled in the same rounds: a handler that imports every
third-party module the function's ready path left in ``sys.modules`` (one more, unmeasured, sample of the
function; the standard library and the runtime's boto3 and its dependencies are the bare handler's, and
the ``dunning`` package and ``app`` are the product), sets those libraries up as the product does
(``FLOOR_SETUP``), pauses garbage collection as ``dunning.startup`` does and, after the pause, makes
the AWS clients the function had made by then (boto3 is the runtime's, but a client of DynamoDB is
what a function that must read a table cannot do without: the reconcile sweep's first request).
``floor`` is its ready time, ``adds_cpu_ms`` / ``adds_cpu_ratio`` what the product adds on top (the
function's ready less the floor's): the measured bound of each function's cold start. ``rulebooks`` is
the CPU of importing ``dunning.rules`` and of ``load_rulebooks()`` in a fresh interpreter on the layer,
in the same rounds: all that loading the rulebooks costs the planner's and the sender's ready.

Bytecode: samples never write it (``PYTHONDONTWRITEBYTECODE``, as Lambda cannot write into ``/opt``);
the layer's comes from its build, the function code's is compiled once here. ``sender_without_bytecode``
is the sender on the same layer built without it: what a cold start costs when the layer was built
without a CPython 3.13 at hand.

Tracing as on Lambda with ``Tracing: Active`` (``LAMBDA_TASK_ROOT`` set), in the two cases the runtime
gives an invocation: an unsampled trace header (``Sampled=0``: most invocations) and a sampled one
(``Sampled=1``: the X-Ray SDK is loaded and botocore patched on that first traced invocation).

Samples are taken round-robin so that a busy machine slows all of them alike. ``python -X importtime``
of one more sample per function gives the cost by top-level package. ``--before DIR`` measures another
checkout's functions and ``dunning`` package (e.g. ``/work/main``) on the layer composition it declared
(every requirement but the runtime's packages, unpruned): the "before" of docs/benchmarks.md.
"""

from __future__ import annotations

import compileall
import importlib.metadata as metadata
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from bench.sizes import (
    FUNCTIONS,
    LAYER_CACHE,
    PACKAGE,
    REPO,
    RUNTIME_PROVIDES,
    TRACER_EXTRA,
    closure,
    load_build_layer,
    requirement_lines,
)

ROOT = REPO / "out" / "bench" / "coldstart"
TARGET_RATIO = 1.5
NO_BYTECODE = "sender, layer without bytecode"
_TRACE_HEADER = "Root=1-6756f4c0-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled={sampled}"


def _top_level_names(dist: metadata.Distribution) -> set[str]:
    """The names a distribution installs at the top of site-packages (packages, modules, dist-info)."""
    names: set[str] = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith(".pth"):
            continue
        names.add(first.removesuffix(".py") if len(file.parts) == 1 else first)
    return names


def link_distributions(folder: Path, dists: list[metadata.Distribution]) -> None:
    """Symlink each distribution's top-level packages and modules into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for dist in dists:
        base = Path(str(dist.locate_file("")))
        for name in _top_level_names(dist):
            source = base / name
            if not source.exists():
                source = base / f"{name}.py"
                name = f"{name}.py"
            if source.exists() and not (folder / name).exists():
                (folder / name).symlink_to(source)


def runtime_folder(folder: Path) -> Path:
    """The Lambda runtime's boto3 and dependencies (symlinks into this environment)."""
    link_distributions(folder, list(closure(["boto3"]).values()))
    return folder


def _declared_layer(folder: Path, package: Path) -> None:
    needed = closure([*requirement_lines(), *TRACER_EXTRA])
    link_distributions(folder, [d for n, d in needed.items() if n not in RUNTIME_PROVIDES])
    (folder / "dunning").symlink_to(package)


def build_tree(before: Path | None = None) -> dict[str, Any]:
    """The layer, runtime and bare-handler folders, rebuilt each run."""
    if ROOT.exists():
        shutil.rmtree(ROOT)
    layer = ROOT / "opt" / "python"
    tree: dict[str, Any] = {"runtime": runtime_folder(ROOT / "var" / "runtime"), "functions": FUNCTIONS}
    if before is not None:
        before = before.resolve()
        _declared_layer(layer, before / "layers" / "dunning" / "dunning")
        tree |= {"layer": layer, "layer_source": f"declared requirements, unpruned ({before})"}
        tree["functions"] = before / "functions"
    else:
        try:
            build = load_build_layer()
            build.build(ROOT / "opt", platform="host", cache=LAYER_CACHE)
            tree |= {"layer": layer, "layer_source": "build_layer.py --platform host (pruned as for Lambda)"}
            # The same layer without bytecode, as Lambda sees a layer built without a CPython 3.13 at
            # hand: /opt is read-only, so every cold start compiles what it imports.
            tree["layer_without_bytecode"] = build.build(
                ROOT / "opt-without-bytecode", platform="host", cache=LAYER_CACHE, bytecode=False
            )
        except (subprocess.SubprocessError, OSError) as exc:
            shutil.rmtree(layer, ignore_errors=True)
            _declared_layer(layer, PACKAGE)
            tree |= {"layer": layer, "layer_source": f"venv symlinks, unpruned (build failed: {exc})"}
    tree["handlers"] = {}
    for index, (name, source) in enumerate(HANDLERS.items()):
        folder = ROOT / "handlers" / f"{index}-{name.split(':')[0]}"
        folder.mkdir(parents=True)
        (folder / "app.py").write_text(source, encoding="utf-8")
        tree["handlers"][name] = folder
    # Function code and an unbuilt package get their bytecode here, as the layer build gives the layer's.
    for folder in (ROOT / "handlers", tree["functions"], tree["layer"] / "dunning"):
        compileall.compile_dir(folder, quiet=1)
    return tree


def _command(task_root: Path, tree: dict[str, Any], code: str, *, importtime: bool = False) -> list[str]:
    paths = [str(task_root), str(tree["layer"]), str(tree["runtime"])]
    setup = f"import sys; sys.path[:0] = {paths!r}; "
    return [sys.executable, "-S", *(["-X", "importtime"] if importtime else []), "-c", setup + code]


# The bare handler: the target's denominator. Each function's floor (below) is built from the function's
# own ready path.
_RETURN = "\n\ndef handler(event, context):\n    return {}\n"
HANDLERS = {"bare": "import boto3  # noqa: F401" + _RETURN}

# What each floor does with a library it loads, beyond importing the library's modules: the setup every
# function makes of it, cheap and faithful (``(at import, in the handler)``; the handler's part runs on
# the first invocation, before garbage collection resumes, as the functions build their service then).
# A distribution not named here is only imported (the libraries' own dependencies, phonenumbers and
# Babel, whose data an empty event does not touch). Powertools' Logger and Metrics also wrap the handler
# as every function's do (``inject_lambda_context``, ``log_metrics``): see ``floor_source``.
FLOOR_SETUP: dict[str, tuple[str, str]] = {
    "aws-lambda-powertools": (
        "from aws_lambda_powertools import Logger, Metrics\nlogger, metrics = Logger(), Metrics()",
        "",
    ),
    "pydantic": (
        "from pydantic import BaseModel\n\n\nclass Settings(BaseModel):\n    table: str\n",
        'Settings.model_validate({"table": os.environ.get("STATE_TABLE", "t")})',
    ),
    "pyyaml": ("import yaml", 'yaml.load("a: 1", Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))'),
    "jinja2": ("import jinja2.sandbox", 'jinja2.sandbox.SandboxedEnvironment().from_string("{{ name }}")'),
}


def distribution_owners(folders: list[Path]) -> dict[str, str]:
    """Top-level module name -> the (canonical) name of the distribution installed in ``folders`` that
    ships it."""
    owners: dict[str, str] = {}
    for dist in metadata.distributions(path=[str(f) for f in folders]):
        for top in _top_level_names(dist):
            if not top.endswith((".dist-info", ".data")):
                owners.setdefault(top, canonicalize_name(dist.metadata["Name"]))
    return owners


def floor_modules(
    loaded: list[str], owners: dict[str, str], runtime: frozenset[str] = RUNTIME_PROVIDES
) -> dict[str, list[str]]:
    """The third-party modules a function's ready path loaded, by distribution (in load order).

    ``loaded`` is ``list(sys.modules)`` after ready. The standard library, the runtime's boto3 and its
    dependencies (the bare handler's) and what no distribution ships (the function's ``app``, the
    ``dunning`` package, modules an extension makes up) are left out.
    """
    found: dict[str, list[str]] = {}
    for name in loaded:
        top = name.partition(".")[0]
        owner = owners.get(top)
        if top in sys.stdlib_module_names or owner is None or owner in runtime:
            continue
        found.setdefault(owner, []).append(name)
    return dict(sorted(found.items()))


def floor_source(function: str, modules: dict[str, list[str]], clients: list[str] | None = None) -> str:
    """The floor handler of ``function``: garbage collection paused as ``dunning.startup`` pauses it, boto3,
    every module of ``modules``, the setup of ``FLOOR_SETUP`` for the distributions among them; the first
    invocation does the handler part of the setup, resumes collection, makes the AWS ``clients`` (after
    the pause, as the functions make theirs when they first need one) and returns."""
    at_import = [FLOOR_SETUP[d][0] for d in modules if d in FLOOR_SETUP and FLOOR_SETUP[d][0]]
    in_handler = [FLOOR_SETUP[d][1] for d in modules if d in FLOOR_SETUP and FLOOR_SETUP[d][1]]
    names = [name for found in modules.values() for name in found]
    decorators = (
        "@logger.inject_lambda_context(clear_state=True)\n@metrics.log_metrics\n"
        if "aws-lambda-powertools" in modules
        else ""
    )
    body = "".join(f"        {line}\n" for line in in_handler) or "        pass\n"
    return (
        f'"""Floor of {function}: its libraries ({", ".join(modules) or "none"}), set up; no product."""\n\n'
        "import gc\n\ngc.disable()  # as dunning.startup.pause\n\n"
        "import importlib\nimport os\n\nimport boto3\n\n"
        f"for _name in {names!r}:\n    importlib.import_module(_name)\n\n"
        + "\n".join(at_import)
        + f"\n\n\n{decorators}def handler(event, context):\n    try:\n{body}"
        "    finally:\n        gc.freeze()  # as dunning.startup.resume\n        gc.enable()\n"
        + "".join(f"    boto3.client({service!r})\n" for service in clients or ())
        + "    return {}\n"
    )


# Values of every variable any function's settings model requires (their shapes, not real resources).
_SETTINGS_ENV = {
    "STATE_TABLE": "dunning-State",
    "LEDGER_TABLE": "dunning-Ledger",
    "LEDGER_RETENTION_DAYS": "800",
    "LOANS_TABLE": "dunning-Loans",
    "BORROWERS_TABLE": "dunning-Borrowers",
    "OUTBOUND_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:outbound",
    "PLAN_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/plan",
    "SHARD_COUNT": "16",
    "JOB_TTL_MINUTES": "60",
    "PLANNER_SCHEDULE": "rate(15 minutes)",
    "SMS_ORIGINATION_IDENTITY": "",
    "SMS_MAX_PRICE_USD": "",
    "DELIVERY_EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:delivery-events",
    "RECEIPT_LOG_GROUPS": "sns/us-east-1/123456789012/DirectPublishToPhoneNumber",
    "HARD_FAILURE_THRESHOLD": "3",
    "INBOUND_PAUSE_DAYS": "7",
    "ATTENTION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:attention",
    "INBOUND_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:inbound",
}

# The smallest event of each function's own kind.
EVENTS: dict[str, dict[str, Any]] = {
    "indexer": {"Records": []},
    "planner": {"Records": []},
    "sender": {"Records": []},
    "receipts": {"Records": []},
    "inbound": {"Records": []},
    "reconcile": {"scheduled_time": "2026-03-02T06:00:00Z"},
}


def _environment(task_root: Path, endpoint: str) -> dict[str, str]:
    return {
        # Lambda cannot write bytecode into /opt; nothing a sample compiles may help the next one.
        "PYTHONDONTWRITEBYTECODE": "1",
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "LAMBDA_TASK_ROOT": str(task_root),
        "POWERTOOLS_SERVICE_NAME": "dunning",
        "POWERTOOLS_METRICS_NAMESPACE": "Dunning",
        "PYTHONWARNINGS": "ignore",
        **_SETTINGS_ENV,
    }


# The invocation the runtime makes after init: it sets the trace header, then calls the handler.
_READY = """
import json, os, time


class Context:
    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = log_stream_name = "bench"

    def get_remaining_time_in_millis(self):
        return 60_000


event = json.loads({event!r})
t, cpu = time.perf_counter(), time.process_time()
import app
os.environ["_X_AMZN_TRACE_ID"] = {header!r}
app.handler(event, Context())
print(time.perf_counter() - t, time.process_time() - cpu)
"""


def _sample(
    task_root: Path, tree: dict[str, Any], endpoint: str, event: dict[str, Any], sampled: int
) -> tuple[float, float]:
    """Wall and CPU milliseconds of import + first invocation in a fresh interpreter."""
    code = _READY.format(event=json.dumps(event), header=_TRACE_HEADER.format(sampled=sampled))
    wall, cpu = _last_line(task_root, tree, endpoint, code).split()
    return float(wall) * 1000, float(cpu) * 1000


def _last_line(task_root: Path, tree: dict[str, Any], endpoint: str, code: str) -> str:
    """Run ``code`` in a fresh interpreter laid out as Lambda's; the last line it printed."""
    done = subprocess.run(
        _command(task_root, tree, code),
        env=_environment(task_root, endpoint),
        cwd=str(task_root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{task_root}: {done.stderr.strip().splitlines()[-3:]}")
    return done.stdout.strip().splitlines()[-1]


# Printed after a function's ready: what it loaded, and the AWS clients it made (each costs the runtime's
# botocore its service model: ~45 ms of CPU for DynamoDB's). The clients are frozen by then
# (dunning.startup.resume); gc.get_objects() sees them once unfrozen.
_FOOTPRINT = """
import gc, sys
loaded = list(sys.modules)
clients = []
if "botocore.client" in sys.modules:
    gc.unfreeze()
    base = sys.modules["botocore.client"].BaseClient
    clients = sorted({o.meta.service_model.service_name for o in gc.get_objects() if isinstance(o, base)})
print(json.dumps({"modules": loaded, "clients": clients}))
"""


def ready_footprint(
    task_root: Path, tree: dict[str, Any], endpoint: str, event: dict[str, Any]
) -> dict[str, list[str]]:
    """``modules`` (``list(sys.modules)``) and the AWS ``clients`` (service names) that a function has
    after its ready (unsampled trace), from a fresh interpreter."""
    code = _READY.format(event=json.dumps(event), header=_TRACE_HEADER.format(sampled=0)) + _FOOTPRINT
    found: dict[str, list[str]] = json.loads(_last_line(task_root, tree, endpoint, code))
    return found


def build_floors(tree: dict[str, Any], functions: list[str], endpoint: str) -> dict[str, dict[str, Any]]:
    """Each function's floor handler, derived from its ready path's footprint (``floor_modules`` of the
    modules it loaded, and the AWS clients it made), written next to the bare handler; returns each
    floor's ``modules`` by distribution and its ``clients``."""
    owners = distribution_owners([tree["layer"]])
    floors: dict[str, dict[str, Any]] = {}
    for name in functions:
        found = ready_footprint(tree["functions"] / name, tree, endpoint, EVENTS.get(name, {"Records": []}))
        modules, clients = floor_modules(found["modules"], owners), found["clients"]
        floors[name] = {"modules": modules, "clients": clients}
        folder = ROOT / "handlers" / f"floor-{name}"
        folder.mkdir(parents=True)
        (folder / "app.py").write_text(floor_source(name, modules, clients), encoding="utf-8")
        compileall.compile_dir(folder, quiet=1)
        tree["handlers"][f"floor: {name}"] = folder
    return floors


# The rulebooks' whole cost on the planner's and the sender's first invocation, in a fresh interpreter:
# importing dunning.rules (its pydantic models' schemas are built as they are defined) and
# load_rulebooks() (the YAML read and validated). What they import besides, and pydantic's first-model
# costs, are loaded first: they are not the rulebooks'.
_RULEBOOKS = """
import gc, time
gc.disable()
import pydantic, yaml, dunning.models, dunning.calendars, dunning.yamlio


class _First(pydantic.BaseModel):
    a: int


t = time.process_time()
import dunning.rules
t1 = time.process_time()
dunning.rules.load_rulebooks()
t2 = time.process_time()
print((t1 - t) * 1000, (t2 - t1) * 1000)
"""


def _rulebooks_sample(tree: dict[str, Any], endpoint: str) -> tuple[float, float]:
    """CPU milliseconds of ``import dunning.rules`` and of ``load_rulebooks()``, on the layer."""
    imported, loaded = _last_line(tree["handlers"]["bare"], tree, endpoint, _RULEBOOKS).split()
    return float(imported), float(loaded)


def _import_sample(task_root: Path, tree: dict[str, Any], endpoint: str, module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(_last_line(task_root, tree, endpoint, code)) * 1000


def import_breakdown(task_root: Path, tree: dict[str, Any], endpoint: str, top: int = 15) -> dict[str, float]:
    """Milliseconds of self time by top-level package (``dunning.<module>`` for the product)."""
    done = subprocess.run(
        _command(task_root, tree, "import app", importtime=True),
        env=_environment(task_root, endpoint),
        cwd=str(task_root),
        capture_output=True,
        text=True,
        timeout=120,
    )
    costs: Counter[str] = Counter()  # microseconds
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|")
        parts = name.strip().split(".")
        key = ".".join(parts[:2]) if parts[0] == "dunning" else parts[0]
        costs[key] += int(self_us)
    return {name: round(us / 1000, 1) for name, us in costs.most_common(top)}


class _StubAws(BaseHTTPRequestHandler):
    """Answers every AWS JSON-protocol request with an empty result (an empty table, no messages)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # quiet: samples time the handlers
        return


@contextmanager
def stub_aws() -> Iterator[str]:
    """A local endpoint for AWS_ENDPOINT_URL, so that a first invocation never reaches real AWS."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubAws)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def _stats(walls: list[float], cpus: list[float], bare_wall: float, bare_cpu: float) -> dict[str, Any]:
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {
        "ms": round(wall, 1),
        "ratio": round(wall / bare_wall, 2),
        "cpu_ms": round(cpu, 1),
        "cpu_ratio": round(cpu / bare_cpu, 2),
        "spread_ms": [round(min(walls), 1), round(max(walls), 1)],
    }


def run(samples: int = 7, before: Path | None = None) -> dict[str, Any]:
    """Median ready time per function (traced and not), of the bare handler and each function's floor;
    ratios."""
    tree = build_tree(before)
    functions_dir: Path = tree["functions"]
    functions = sorted(d.name for d in functions_dir.iterdir() if (d / "app.py").is_file())
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    rulebook_samples: list[tuple[float, float]] = []
    with stub_aws() as endpoint:
        floors = build_floors(tree, functions, endpoint)
        # One unmeasured round: the first reads of every file from disk. Bytecode comes from the layer
        # build (build_layer.py compiles it), never from an earlier sample (PYTHONDONTWRITEBYTECODE).
        for rounds in range(samples + 1):
            sampled: dict[str, tuple[float, float]] = {
                "import boto3": (_import_sample(tree["handlers"]["bare"], tree, endpoint, "boto3"), 0.0),
            }
            for name, folder in tree["handlers"].items():
                sampled[name] = _sample(folder, tree, endpoint, {}, 0)
            for name in functions:
                task_root, event = functions_dir / name, EVENTS.get(name, {"Records": []})
                sampled[f"{name} import"] = (_import_sample(task_root, tree, endpoint, "app"), 0.0)
                sampled[name] = _sample(task_root, tree, endpoint, event, 0)
                sampled[f"{name} traced"] = _sample(task_root, tree, endpoint, event, 1)
            if "layer_without_bytecode" in tree:
                bare_layer = {**tree, "layer": tree["layer_without_bytecode"]}
                sampled[NO_BYTECODE] = _sample(
                    functions_dir / "sender", bare_layer, endpoint, EVENTS["sender"], 0
                )
            rulebooks = _rulebooks_sample(tree, endpoint)
            if rounds:
                rulebook_samples.append(rulebooks)
                for key, (wall, cpu) in sampled.items():
                    walls.setdefault(key, []).append(wall)
                    cpus.setdefault(key, []).append(cpu)
        breakdown = {name: import_breakdown(functions_dir / name, tree, endpoint) for name in functions}
    bare_wall, bare_cpu = statistics.median(walls["bare"]), statistics.median(cpus["bare"])
    boto3_ms = statistics.median(walls["import boto3"])
    result: dict[str, Any] = {
        "samples": samples,
        "layer_source": tree["layer_source"],
        "boto3_ms": round(boto3_ms, 1),
        "bare_ready_ms": round(bare_wall, 1),
        "bare_ready_cpu_ms": round(bare_cpu, 1),
        "target_ratio": TARGET_RATIO,
        "functions": {},
    }
    for name in functions:
        ready = _stats(walls[name], cpus[name], bare_wall, bare_cpu)
        traced = _stats(walls[f"{name} traced"], cpus[f"{name} traced"], bare_wall, bare_cpu)
        imported = statistics.median(walls[f"{name} import"])
        result["functions"][name] = {
            # Import alone against `import boto3` (the figure before "ready" was measured).
            "ms": round(imported, 1),
            "ratio": round(imported / boto3_ms, 2),
            "best_ratio": round(min(walls[f"{name} import"]) / min(walls["import boto3"]), 2),
            "ready_ms": ready["ms"],
            "ready_ratio": ready["ratio"],
            "ready_cpu_ms": ready["cpu_ms"],
            "ready_cpu_ratio": ready["cpu_ratio"],
            "spread_ready_ms": ready["spread_ms"],
            "ready_traced_ms": traced["ms"],
            "ready_traced_ratio": traced["ratio"],
            "ready_traced_cpu_ratio": traced["cpu_ratio"],
            "by_package_ms": breakdown[name],
        }
    values = result["functions"].values()
    result["max_ratio"] = max(f["ratio"] for f in values)
    result["max_ready_ratio"] = max(f["ready_ratio"] for f in values)
    result["max_ready_cpu_ratio"] = max(f["ready_cpu_ratio"] for f in values)
    result["max_ready_traced_ratio"] = max(f["ready_traced_ratio"] for f in values)
    for name in functions:
        f = result["functions"][name]
        floor = _stats(walls[f"floor: {name}"], cpus[f"floor: {name}"], bare_wall, bare_cpu)
        # What the product adds: the function's ready less its floor's, medians of the same rounds.
        f["floor"] = floor | {
            "distributions": list(floors[name]["modules"]),
            "modules": sum(len(m) for m in floors[name]["modules"].values()),
            "clients": floors[name]["clients"],
        }
        f["adds_cpu_ms"] = round(f["ready_cpu_ms"] - floor["cpu_ms"], 1)
        f["adds_cpu_ratio"] = round(f["ready_cpu_ratio"] - floor["cpu_ratio"], 2)
    result["max_floor_cpu_ratio"] = max(f["floor"]["cpu_ratio"] for f in values)
    result["rulebooks"] = {
        "import_cpu_ms": _median([imported for imported, _ in rulebook_samples]),
        "load_cpu_ms": _median([loaded for _, loaded in rulebook_samples]),
    }
    if NO_BYTECODE in walls:
        result["sender_without_bytecode"] = _stats(walls[NO_BYTECODE], cpus[NO_BYTECODE], bare_wall, bare_cpu)
    result["packages_in_layer"] = sorted(
        canonicalize_name(p.name.removesuffix(".dist-info").rsplit("-", 1)[0])
        for p in tree["layer"].glob("*.dist-info")
    )
    return result


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Cold start: ready time of each function vs a bare handler")
    parser.add_argument("samples", nargs="?", type=int, default=5)
    parser.add_argument("--before", type=Path, default=None, help="another checkout to measure (e.g. main)")
    args = parser.parse_args()
    print(json.dumps(run(args.samples, args.before), indent=2))


if __name__ == "__main__":
    main()
