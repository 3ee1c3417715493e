"""Cold import of each function's handler module, against a bare ``import boto3``, in the same run.

Each sample is a fresh interpreter (``python -S``: no site-packages) whose ``sys.path`` is laid out as
Lambda's: the function's CodeUri folder (``/var/task``), the layer (``/opt/python``: the declared
requirements, ``aws-xray-sdk`` which ``Tracer()`` imports, and the ``dunning`` package), then the
runtime's own boto3 and its dependencies (``/var/runtime``). The layer and runtime folders under
``out/bench/coldstart`` are symlinks to this virtual environment's installed packages, so the bytes
imported are the ones the tests run. ``LAMBDA_TASK_ROOT`` is set, so Powertools' Tracer is enabled as
with ``Tracing: Active``.

Samples are taken round-robin (boto3, then each function, repeated) so that a busy machine slows all
of them alike; the ratio of medians is what is reported. ``python -X importtime`` of one more sample
per function gives the cost by top-level package: the answer to "why is this import slow".
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import statistics
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from bench.sizes import FUNCTIONS, PACKAGE, REPO, RUNTIME_PROVIDES, TRACER_EXTRA, closure, requirement_lines

ROOT = REPO / "out" / "bench" / "coldstart"
TARGET_RATIO = 1.5
_TIMER = "import time, sys; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _top_level_names(dist: metadata.Distribution) -> set[str]:
    """The names a distribution installs at the top of site-packages (packages, modules, dist-info)."""
    names: set[str] = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ("..", "__pycache__") or first.endswith(".pth"):
            continue
        names.add(first.removesuffix(".py") if len(file.parts) == 1 else first)
    return names


def _link_distributions(folder: Path, dists: list[metadata.Distribution]) -> None:
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


def build_tree() -> dict[str, Path]:
    """The layer and runtime folders (symlinks), rebuilt each run."""
    if ROOT.exists():
        shutil.rmtree(ROOT)
    layer, runtime = ROOT / "opt" / "python", ROOT / "var" / "runtime"
    needed = closure([*requirement_lines(), *TRACER_EXTRA])
    in_layer = [d for n, d in needed.items() if n not in RUNTIME_PROVIDES]
    provided = closure(["boto3"])
    _link_distributions(layer, in_layer)
    (layer / "dunning").symlink_to(PACKAGE)
    _link_distributions(runtime, list(provided.values()))
    return {"layer": layer, "runtime": runtime}


def _command(
    task_root: Path | None, tree: dict[str, Path], code: str, *, importtime: bool = False
) -> list[str]:
    paths = [str(p) for p in ((task_root,) if task_root else ()) + (tree["layer"], tree["runtime"])]
    setup = f"import sys; sys.path[:0] = {paths!r}; "
    return [sys.executable, "-S", *(["-X", "importtime"] if importtime else []), "-c", setup + code]


def _environment(task_root: Path | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": "bench",
        "POWERTOOLS_SERVICE_NAME": "dunning",
        "POWERTOOLS_METRICS_NAMESPACE": "Dunning",
    }
    if task_root is not None:
        env["LAMBDA_TASK_ROOT"] = str(task_root)
    return env


# What any handler built on this stack imports before a line of the product: boto3, Powertools'
# Logger, Metrics and Tracer (with the X-Ray SDK, as Tracing: Active needs) and one pydantic model.
FLOORS = {
    "floor: boto3 + Powertools Logger/Metrics + pydantic model": (
        "import boto3\nfrom aws_lambda_powertools import Logger, Metrics\nLogger(); Metrics()\n"
        "from pydantic import BaseModel\nclass Settings(BaseModel):\n    table: str\n"
    ),
    "floor: the same + Tracer (X-Ray SDK)": (
        "import boto3\nfrom aws_lambda_powertools import Logger, Metrics, Tracer\n"
        "Logger(); Metrics(); Tracer()\n"
        "from pydantic import BaseModel\nclass Settings(BaseModel):\n    table: str\n"
    ),
}


# Import the handler module and build what its first invocation builds (settings, service, rulebooks,
# templates): the cold start up to the first request to AWS, since moving an import into the first
# invocation does not make that shorter.
_READY = (
    "import app\n"
    "builder = next(v for k, v in vars(app).items() if hasattr(v, 'cache_info'))\n"
    "settings = next(v for k, v in vars(app).items() if k.endswith('Settings') and hasattr(v, 'from_env'))\n"
    "builder(settings.from_env())"
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


def _timed(body: str) -> str:
    return "import time\nt = time.perf_counter()\n" + body + "\nprint(time.perf_counter() - t)"


def _sample(task_root: Path | None, tree: dict[str, Path], module: str, body: str | None = None) -> float:
    code = _TIMER.format(module=module) if body is None else _timed(body)
    env = {**_environment(task_root), **_SETTINGS_ENV}
    if task_root is None and body is not None:
        env["LAMBDA_TASK_ROOT"] = str(ROOT)  # Tracer enabled, as in a function
    done = subprocess.run(
        _command(task_root, tree, code),
        env=env,
        cwd=str(task_root or ROOT),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import {module} in {task_root}: {done.stderr.strip().splitlines()[-1:]}")
    return float(done.stdout.strip().splitlines()[-1]) * 1000


def import_breakdown(task_root: Path, tree: dict[str, Path], top: int = 15) -> dict[str, float]:
    """Milliseconds of self time by top-level package (``dunning.<module>`` for the product)."""
    done = subprocess.run(
        _command(task_root, tree, "import app", importtime=True),
        env=_environment(task_root),
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


def run(samples: int = 7) -> dict[str, Any]:
    """Median cold import per function and for ``import boto3``; ratios against boto3."""
    tree = build_tree()
    functions = sorted(d.name for d in FUNCTIONS.iterdir() if (d / "app.py").is_file())
    names = ("boto3", *functions, *(f"{f} ready" for f in functions), *FLOORS)
    times: dict[str, list[float]] = {name: [] for name in names}
    # One unmeasured round writes the bytecode caches next to the symlinked single-file modules (a
    # deployment package built with bytecode has them; without, every cold start compiles).
    for rounds in range(samples + 1):
        sampled = {"boto3": _sample(None, tree, "boto3")}
        for name in functions:
            sampled[name] = _sample(FUNCTIONS / name, tree, "app")
            sampled[f"{name} ready"] = _sample(FUNCTIONS / name, tree, "app", _READY)
        for name, body in FLOORS.items():
            sampled[name] = _sample(None, tree, name, body)
        if rounds:
            for name, ms in sampled.items():
                times[name].append(ms)
    boto3_ms = statistics.median(times["boto3"])
    boto3_best = min(times["boto3"])
    result: dict[str, Any] = {
        "samples": samples,
        "boto3_ms": round(boto3_ms, 1),
        "target_ratio": TARGET_RATIO,
        "functions": {},
    }
    for name in functions:
        median = statistics.median(times[name])
        result["functions"][name] = {
            "ms": round(median, 1),
            "ratio": round(median / boto3_ms, 2),
            "best_ratio": round(min(times[name]) / boto3_best, 2),
            "spread_ms": [round(min(times[name]), 1), round(max(times[name]), 1)],
            "ready_ms": round(statistics.median(times[f"{name} ready"]), 1),
            "by_package_ms": import_breakdown(FUNCTIONS / name, tree),
        }
    result["max_ratio"] = max(f["ratio"] for f in result["functions"].values())
    result["floors"] = {
        name: {
            "ms": round(statistics.median(times[name]), 1),
            "ratio": round(statistics.median(times[name]) / boto3_ms, 2),
            "best_ratio": round(min(times[name]) / boto3_best, 2),
        }
        for name in FLOORS
    }
    result["packages_in_layer"] = sorted(
        canonicalize_name(p.name.split("-")[0]) for p in tree["layer"].glob("*.dist-info")
    )
    return result


def main() -> None:
    import json

    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))


if __name__ == "__main__":
    main()
