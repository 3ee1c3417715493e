"""What a delivered message costs: infrastructure (from the measured requests, capacity units, invocations
and log bytes) plus the channel's own price (SMS parts x price per part, or the mobile push delivery).

Prices are AWS list prices for us-east-1 on the pages in :data:`SOURCES` (check them before relying on
a number: they change, and free tiers are ignored here). SMS prices depend on the country, the
origination type and the carrier, so they are kept apart (:data:`SMS_PRICE_PER_PART`) and only the
parts per message are measured. Lambda duration cannot be measured on moto: it is estimated from the
handlers' own CPU time in this run (scaled to the CPU share of a 512 MB function) plus an assumed
in-region latency for each AWS request (:data:`LATENCY_MS`). docs/cost.md explains the formula.
"""

from __future__ import annotations

from typing import Any

from dunning.budget import load_prices

# USD, us-east-1, list prices: the one price list (layers/dunning/dunning/data/prices.yaml) that the demo
# and the planner's spend guard read too; its sources are listed in it.
_PRICE_LIST = load_prices()
PRICES = dict(_PRICE_LIST.infrastructure)
SOURCES = dict(_PRICE_LIST.sources)
# Illustrative price per SMS part in USD: End User Messaging base price + a typical carrier fee, per
# destination country. Origination type (toll-free, 10DLC, short code, sender id) and carrier change
# them: take yours from the pricing page.
SMS_PRICE_PER_PART = {c: (p.base, p.carrier_fee) for c, p in _PRICE_LIST.sms_per_part.items()}
# Assumed typical in-region latency of one request, ms (not measured here: moto is in process).
LATENCY_MS = {"dynamodb": 6.0, "dynamodb_batch": 12.0, "sns": 30.0, "sqs": 10.0}
MEMORY_GB = 0.5  # template Globals MemorySize 512
# A function gets one vCPU at 1,769 MB, proportionally less below: a 512 MB function runs this
# machine's single-core CPU time about 3.5 times slower.
CPU_SCALE = 1769 / 512
# X-Ray's default sampling rule records the first request each second and 5 % of the rest.
XRAY_SAMPLED_SHARE = 0.05
LOG_EVENT_OVERHEAD_BYTES = 26  # CloudWatch Logs counts each event's message plus 26 bytes
ITEM_STORAGE_OVERHEAD_BYTES = 100  # DynamoDB bills 100 bytes of indexing overhead per stored item
RETENTION_MONTHS = 800 / 30.4  # the template's LedgerRetentionDays default


def _latency(service: str, operation: str) -> float:
    if service == "dynamodb":
        batch = operation.startswith("Batch") or operation in ("Query", "Scan")
        return LATENCY_MS["dynamodb_batch" if batch else "dynamodb"]
    return LATENCY_MS.get(service, 10.0)


def _sqs_requests(run: dict[str, Any]) -> dict[str, float]:
    """SQS requests per run: the planner's own (counted), SNS's deliveries of jobs to the queues, and
    the event source mappings' ReceiveMessage + DeleteMessageBatch per invocation they make."""
    inv = run["invocations"]
    shard_tasks = inv.get("planner", 0) - run["ticks"]  # one invocation per tick is the Scheduler's
    return {
        "planner SendMessageBatch (PlanQueue)": run["by_operation"].get("sqs.SendMessageBatch", 0),
        "SNS delivery of jobs to SmsQueue/PushQueue": run["published"],
        "event source mapping receive + delete (sender)": 2 * inv.get("sender", 0),
        "event source mapping receive + delete (planner tasks)": 2 * max(shard_tasks, 0),
    }


def lambda_seconds(run: dict[str, Any]) -> dict[str, float]:
    """Estimated billed seconds per function over the run: own CPU time at 512 MB + request latency."""
    seconds: dict[str, float] = {}
    for label, stats in run["lambda"].items():
        latency = sum(
            _latency(service, operation) / 1000 * n
            for operation_key, n in run["by_function"].get(label, {}).items()
            for service, operation in [operation_key.split(".", 1)]
        )
        seconds[label] = stats["own_s"] * CPU_SCALE + latency
    return seconds


def infrastructure(run: dict[str, Any]) -> dict[str, Any]:
    """Infrastructure USD per delivered message, by service, from a :func:`bench.requests.run` result."""
    delivered = max(run["delivered"], 1)
    p = PRICES
    ops = run["by_operation"]
    invocations = sum(stats["invocations"] for stats in run["lambda"].values())
    gb_seconds = sum(lambda_seconds(run).values()) * MEMORY_GB
    log_bytes = sum(stats["log_bytes"] for stats in run["lambda"].values())
    delivery_logs = run["delivery_status_logs"]
    log_bytes += delivery_logs["bytes"] + LOG_EVENT_OVERHEAD_BYTES * delivery_logs["records"]
    sqs = _sqs_requests(run)
    parts = {
        "DynamoDB writes": run["write_units"] * p["dynamodb_write_request_unit"],
        "DynamoDB reads": run["read_units"] * p["dynamodb_read_request_unit"],
        "SNS Publish + PublishBatch requests": (ops.get("sns.Publish", 0) + ops.get("sns.PublishBatch", 0))
        * p["sns_publish_request"],
        "SQS requests": sum(sqs.values()) * p["sqs_request"],
        "Lambda requests": invocations * p["lambda_request"],
        "Lambda duration (estimated)": gb_seconds * p["lambda_gb_second_arm64"],
        "CloudWatch Logs ingestion": log_bytes / 1e9 * p["cloudwatch_logs_ingest_gb"],
        "X-Ray traces": invocations * XRAY_SAMPLED_SHARE * p["xray_trace_recorded"],
    }
    per_message = {k: v / delivered for k, v in parts.items()}
    return {
        "per_message_usd": {k: round(v, 10) for k, v in per_message.items()},
        "total_per_message_usd": round(sum(per_message.values()), 9),
        "inputs_per_message": {
            "write_units": round(run["write_units"] / delivered, 3),
            "read_units": round(run["read_units"] / delivered, 3),
            "sqs_requests": round(sum(sqs.values()) / delivered, 3),
            "lambda_invocations": round(invocations / delivered, 3),
            "lambda_gb_seconds": round(gb_seconds / delivered, 5),
            "log_bytes": round(log_bytes / delivered),
        },
        "sqs_requests": sqs,
    }


def mean_sms_parts(run: dict[str, Any]) -> float:
    segments = run["ledger"].get("sms_segments", {})
    total = sum(segments.values())
    return sum(int(k) * n for k, n in segments.items()) / total if total else 1.0


def ledger_storage(run: dict[str, Any]) -> dict[str, float]:
    """Bytes the Ledger keeps per delivered message (items and their ByLoan entries), and what keeping
    them for the retention period costs per million messages."""
    delivered = max(run["delivered"], 1)
    stored = 0
    for name, (count, mean) in run.get("stored_items", {}).items():
        if name.startswith("LedgerTable"):
            stored += count * (mean + ITEM_STORAGE_OVERHEAD_BYTES)
            if not name.endswith("decision"):  # messages and outcomes have a ByLoan entry too
                stored += count * (120 + ITEM_STORAGE_OVERHEAD_BYTES)
    per_message = stored / delivered
    gb_per_million = per_message * 1e6 / 1e9
    return {
        "bytes_per_message": round(per_message),
        "gb_per_million_messages": round(gb_per_million, 2),
        "usd_per_million_per_month": round(gb_per_million * PRICES["dynamodb_storage_gb_month"], 2),
        "usd_per_million_over_retention": round(
            gb_per_million * PRICES["dynamodb_storage_gb_month"] * RETENTION_MONTHS, 2
        ),
    }


def per_million(run: dict[str, Any]) -> dict[str, Any]:
    """USD per million delivered SMS (by country) and per million push messages."""
    infra = infrastructure(run)
    infra_usd = infra["total_per_message_usd"]
    parts = mean_sms_parts(run)
    sms = {
        country: round(1e6 * (infra_usd + parts * (base + carrier)), 2)
        for country, (base, carrier) in SMS_PRICE_PER_PART.items()
    }
    return {
        "infrastructure_per_million_usd": round(1e6 * infra_usd, 2),
        "mean_sms_parts": round(parts, 3),
        "sms_per_million_usd_by_country": sms,
        "push_per_million_usd": round(1e6 * (infra_usd + PRICES["sns_mobile_push_delivery"]), 2),
        "infrastructure": infra,
        "ledger_storage": ledger_storage(run),
        "demo_constants": {
            "SMS_PRICE_PER_PART": {c: round(b + f, 5) for c, (b, f) in SMS_PRICE_PER_PART.items()},
            "PUSH_PRICE": PRICES["sns_mobile_push_delivery"],
            "INFRA_PER_MESSAGE": round(infra_usd, 8),
        },
        "prices": PRICES,
        "sources": SOURCES,
        "assumptions": {
            "latency_ms": LATENCY_MS,
            "memory_gb": MEMORY_GB,
            "cpu_scale": round(CPU_SCALE, 2),
            "xray_sampled_share": XRAY_SAMPLED_SHARE,
        },
    }


def fixed_monthly(shards: int = 16, ticks_per_day: int = 96) -> dict[str, float]:
    """What the schedule costs with nothing to send (30 days): ticks, shard tasks, their Queries, and
    the event source mappings' long polls of the three queues."""
    p = PRICES
    days = 30
    ticks = ticks_per_day * days
    invocations = ticks * (1 + shards)
    # An idle SQS event source mapping keeps a few pollers long-polling (20 s): about 5 x 3 a minute.
    idle_polls = 3 * 5 * 3 * 60 * 24 * days
    return {
        "scheduler": round(ticks * p["scheduler_invocation"], 4),
        "lambda_requests": round(invocations * p["lambda_request"], 4),
        "lambda_duration": round(invocations * 0.05 * MEMORY_GB * p["lambda_gb_second_arm64"], 4),
        "due_index_queries": round(ticks * shards * 0.5 * p["dynamodb_read_request_unit"], 4),
        "plan_queue_requests": round(ticks * (1 + 3 * shards) * p["sqs_request"], 4),
        "idle_event_source_polls": round(idle_polls * p["sqs_request"], 4),
    }
