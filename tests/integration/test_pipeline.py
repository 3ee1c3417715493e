"""The whole pipeline through the real handlers, on moto, with the resources of template.yaml.

Loans and borrowers are written to the lender's tables; their DynamoDB stream records go to the indexer;
a Scheduler tick goes to the planner, which fans out shard tasks on PlanQueue; each task is planned by
the planner again; the jobs it publishes reach SmsQueue / PushQueue through the OutboundTopic's filter
policies; the sender turns them into SMS and push messages (read back from moto's SNS backend);
delivery-status log events go to the receipts function. Every AWS request the handlers make is counted
per delivered message.
"""

from __future__ import annotations

import fnmatch
import json
import zlib
from datetime import date, datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from pipeline_helpers import (
    ACCOUNT,
    CN_PHONE,
    INDEXED_AT,
    MA_PHONE,
    NY_PHONE,
    REGION,
    TICK,
    Harness,
    book,
    inbound_event,
    loan,
    run_concurrently,
    start_harness,
)

from dunning import clock
from dunning.adapters import Adapters
from dunning.budget import load_sending_policy
from dunning.explain import explain
from dunning.items import loan_to_item
from dunning.models import Address, Borrower, Consent, LoanStatus
from dunning.observability import MetricsRecorder
from dunning.planner import ShardTask, build_planner
from dunning.settings import PlannerSettings
from dunning_local import lambda_events as events
from dunning_local.invoke import invoke, warm_function
from dunning_local.stack import LocalStack


@pytest.fixture
def pipeline(stack: LocalStack, aws: boto3.Session, monkeypatch: pytest.MonkeyPatch) -> Harness:
    return start_harness(stack, aws, monkeypatch)


# Fictional lines only (555-0100 to 555-0199), a hundred per New York City area code.
NYC_AREA_CODES = ("212", "646", "917", "332")


def test_a_tick_sends_the_right_messages_and_receipts_close_them(
    pipeline: Harness, aws: boto3.Session
) -> None:
    loans, borrowers, endpoints = book(aws)
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)

    jobs = pipeline.run_tick(TICK)

    # Texts went to the two US borrowers, once each, with the transactional attributes.
    assert len(jobs["SmsQueue"]) == 2
    assert len(jobs["PushQueue"]) == 2
    assert [len(pipeline.sms_to(p)) for p in (NY_PHONE, MA_PHONE, CN_PHONE, "+12125550143")] == [1, 1, 0, 0]
    for phone in (NY_PHONE, MA_PHONE):
        text = pipeline.sms_to(phone)[0]
        assert "Example Lending Co." in text or "ExampleLend" in text
        assert "STOP" in text  # Reg F opt-out instruction
        (attributes,) = pipeline.sms_attributes(phone)
        assert attributes["AWS.SNS.SMS.SMSType"]["StringValue"] == "Transactional"
    assert "$250.00" in pipeline.sms_to(NY_PHONE)[0]
    # Pushes went to the two app users' endpoints, lock-screen safe, detail in the data.
    for key in ("GB", "ON"):
        (push,) = pipeline.pushes(endpoints[key])
        gcm = json.loads(push["GCM"])["fcmV1Message"]["message"]
        assert gcm["notification"]["title"]
        assert not any(ch.isdigit() for ch in gcm["notification"]["body"])
        assert gcm["data"]["detail"]
    # The ledger has a SENT message per send, the deferral of the Shanghai loan with its rule.
    messages = pipeline.messages()
    assert sorted(messages) == ["L-GB", "L-MA", "L-NY", "L-ON"]
    assert {m["status"] for m in messages.values()} == {"SENT"}
    assert messages["L-NY"]["contact_point"] == NY_PHONE
    assert messages["L-GB"]["channel"] == "push"
    cn = pipeline.decisions("L-CN")
    assert [d["decision"] for d in cn] == ["DEFER"]
    assert cn[0]["rule_id"].startswith("window.")
    assert cn[0]["not_before"] > "2026-03-02T14:00:00Z"
    # Released by the window's opening: planned at this borrower's place in the pacing span after it.
    opens = datetime.fromisoformat(cn[0]["not_before"])
    paced = datetime.fromisoformat(pipeline.cadence("L-CN")["next_contact_at"])
    assert opens <= paced < opens + timedelta(minutes=load_sending_policy().pacing_span_minutes)
    assert "due_shard" not in pipeline.cadence("L-PAID")

    # Delivery-status logs: SMS success and failure, push success and failure, in the real envelope.
    at = TICK + timedelta(minutes=2)
    sms_ok = events.sms_delivery_record(
        str(messages["L-NY"]["message_id"]), NY_PHONE, at, success=True, price=0.00581
    )
    sms_bad = events.sms_delivery_record(
        str(messages["L-MA"]["message_id"]), MA_PHONE, at, success=False, price=0
    )
    push_ok = events.push_delivery_record(
        str(messages["L-GB"]["message_id"]), endpoints["GB"], at, success=True
    )
    push_bad = events.push_delivery_record(
        str(messages["L-ON"]["message_id"]), endpoints["ON"], at, success=False
    )
    groups = {
        name: str(pipeline.stack.ref(name))
        for name in (
            "SmsDeliveryLogGroup",
            "SmsDeliveryFailureLogGroup",
            "FcmDeliveryLogGroup",
            "FcmDeliveryFailureLogGroup",
        )
    }
    for group, record in (
        ("SmsDeliveryLogGroup", sms_ok),
        ("SmsDeliveryFailureLogGroup", sms_bad),
        ("FcmDeliveryLogGroup", push_ok),
        ("FcmDeliveryFailureLogGroup", push_bad),
    ):
        result = pipeline.invoke(
            "ReceiptsFunction", events.logs_subscription_event(groups[group], [(at, record)]), at
        )
        assert result == {"receipts": 1}

    messages = pipeline.messages()
    assert {k: v["status"] for k, v in messages.items()} == {
        "L-NY": "DELIVERED",
        "L-MA": "FAILED",
        "L-GB": "DELIVERED",
        "L-ON": "FAILED",
    }
    assert messages["L-NY"]["carrier"] == "Example Carrier"
    assert messages["L-NY"]["price_usd"] == Decimal("0.00581")
    assert messages["L-MA"]["provider_response"] == "Unknown error attempting to reach phone"
    assert "InvalidToken" in messages["L-ON"]["provider_response"]

    # The loan's trail, as `dunning explain` shows it (its reads are not a function's).
    pipeline.function = "explain"
    tables = pipeline.stack.tables
    adapters = Adapters.for_tables(
        loans_table=tables["LoansTable"],
        borrowers_table=tables["BorrowersTable"],
        state_table=tables["StateTable"],
        ledger_table=tables["LedgerTable"],
    )
    trail = explain("L-CN", adapters)
    assert [(e.kind, e.status) for e in trail] == [("DECISION", "DEFER")]
    (entry,) = explain("L-NY", adapters)
    assert (entry.kind, entry.status, entry.step, entry.channel) == ("MESSAGE", "DELIVERED", "D+7", "sms")
    assert entry.detail["contact_point"] == "+12*******42"

    delivered = 2
    per_function = {
        fn: sum(pipeline.requests_of(fn).values())
        for fn in ("IndexerFunction", "PlannerFunction", "SenderFunction", "ReceiptsFunction")
    }
    total = sum(per_function.values())
    print(f"\nAWS requests by function: {per_function}")
    for fn in per_function:
        print(f"  {fn}: {dict(pipeline.requests_of(fn))}")
    print(f"requests per sent message: {total / 4:.2f}; per delivered message: {total / delivered:.2f}")
    sender = pipeline.requests_of("SenderFunction")
    # One read for the batch, one claim and one publish per message, one ledger write per batch.
    assert sender["dynamodb.BatchGetItem"] == 2  # one per SQS batch (SmsQueue, PushQueue)
    assert sender["sns.Publish"] == 4
    # Four claims, and the send-rate tokens: one request per batch and identity while the second lasts.
    assert 4 + 2 <= sender["dynamodb.UpdateItem"] <= 4 + 4
    assert sender["dynamodb.BatchWriteItem"] == 2
    assert "dynamodb.GetItem" not in sender
    assert "dynamodb.PutItem" not in sender
    planner = pipeline.requests_of("PlannerFunction")
    # Jobs go out in PublishBatch (one per shard page with sends here), never one Publish per job, and
    # cadence and ledger items in BatchWriteItem, never item by item.
    assert 1 <= planner["sns.PublishBatch"] <= 4
    assert planner["sqs.SendMessageBatch"] == 2
    assert not {"sns.Publish", "dynamodb.PutItem", "dynamodb.GetItem"} & set(planner)
    # The spend guard's conditional ADDs (day and month, per page and destination country) are the
    # planner's only single-item writes.
    assert planner["dynamodb.UpdateItem"] <= 2 * planner["dynamodb.BatchGetItem"] * 2


def test_the_same_tick_twice_and_a_redelivered_batch_send_nothing_twice(
    pipeline: Harness, aws: boto3.Session
) -> None:
    loans, borrowers, endpoints = book(aws)
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)

    # The Scheduler delivers the tick twice (at-least-once): two fan-outs, 32 shard tasks.
    pipeline.tick(TICK, execution_id="first")
    pipeline.tick(TICK, execution_id="again")
    assert pipeline.plan(TICK + timedelta(seconds=10)) == 32
    jobs = pipeline.jobs()
    assert pipeline.send(jobs, TICK + timedelta(minutes=1)) == []
    # SQS delivers the same job batches again.
    assert pipeline.send(jobs, TICK + timedelta(minutes=3)) == []

    assert len(pipeline.sms_to(NY_PHONE)) == 1
    assert len(pipeline.sms_to(MA_PHONE)) == 1
    assert len(pipeline.pushes(endpoints["GB"])) == 1
    assert len(pipeline.pushes(endpoints["ON"])) == 1
    redelivered = [o for o in pipeline.outcomes() if o["status"] == "AMBIGUOUS"]
    assert len(redelivered) == 4
    assert {o["rule_id"] for o in redelivered} == {"claim.exists"}


def test_two_planners_on_one_shard_at_once_send_each_message_once(
    pipeline: Harness, aws: boto3.Session
) -> None:
    loans, borrowers, _endpoints = book(aws)
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)
    pipeline.tick(TICK)
    tasks = pipeline.drain("PlanQueue")
    cadence = pipeline.cadence("L-NY")
    shard_tasks = [t for t in tasks if json.loads(t["Body"])["shard"] == cadence["due_shard"]]

    # Both planners read the shard before either writes: each holds at its first write until the other
    # has got that far too. (Each thread creates its clients, and so copies the session's hooks, inside
    # the handler.)
    event = events.sqs_event([shard_tasks[0]], pipeline.stack.get_att("PlanQueue", "Arn"))
    errors = run_concurrently(
        [lambda: invoke("PlannerFunction", event, pipeline.stack)] * 2,
        at=TICK + timedelta(seconds=10),
        environment=warm_function(pipeline.stack, "PlannerFunction").environment,
        hold_at="before-call.dynamodb.BatchWriteItem",
    )
    assert errors == []

    jobs = pipeline.jobs()
    planned_twice = [m for q in jobs.values() for m in q if json.loads(m["Body"])["loan_id"] == "L-NY"]
    assert len(planned_twice) == 2  # the race happened: both planners published the job
    # Each job in its own SQS batch (two sender invocations), the harder case for the claim.
    for queue, messages in jobs.items():
        for message in messages:
            assert pipeline.send({queue: [message]}, TICK + timedelta(minutes=1)) == []
    assert len(pipeline.sms_to(NY_PHONE)) == 1
    outcome = [o for o in pipeline.outcomes() if o["loan_id"] == "L-NY"]
    assert [o["status"] for o in outcome] == ["AMBIGUOUS"]


def test_a_loan_paid_between_planning_and_sending_is_not_sent(pipeline: Harness, aws: boto3.Session) -> None:
    loans, borrowers, _ = book(aws)
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)
    pipeline.tick(TICK)
    pipeline.plan(TICK + timedelta(seconds=10))
    jobs = pipeline.jobs()

    paid = loan("L-NY", "B-NY", "US-NY", date(2026, 2, 23), status=LoanStatus.PAID, amount_due=Decimal("0"))
    pipeline.loans.put_item(Item=loan_to_item(paid))
    pipeline.index(TICK + timedelta(seconds=30))
    assert pipeline.send(jobs, TICK + timedelta(minutes=1)) == []

    assert pipeline.sms_to(NY_PHONE) == []
    assert len(pipeline.sms_to(MA_PHONE)) == 1
    (outcome,) = [o for o in pipeline.outcomes() if o["loan_id"] == "L-NY"]
    assert outcome["status"] == "SUPPRESSED"
    assert outcome["rule_id"] == "status.paid"
    assert "paid" in outcome["reason"]
    assert "due_shard" not in pipeline.cadence("L-NY")  # the indexer took it out of the due-index


def test_stop_silences_the_number_for_every_loan_and_start_restores_it(
    pipeline: Harness, aws: boto3.Session
) -> None:
    loans, borrowers, _ = book(aws)
    # The New York borrower has a second loan; a second borrower record shares the number.
    extra_borrower = Borrower(
        borrower_id="B-NY2",
        first_name="Ada",
        time_zone="America/New_York",
        phone=NY_PHONE,
        address=Address(country="US", region="NY"),
        consent=Consent(sms=True),
    )
    extra = [
        loan("L-NY-B", "B-NY", "US-NY", date(2026, 3, 3)),
        loan("L-NY2", "B-NY2", "US-NY", date(2026, 2, 26)),
    ]
    pipeline.seed(loans + extra, [*borrowers, extra_borrower])
    pipeline.index(INDEXED_AT)
    pipeline.run_tick(TICK)
    sent_before = len(pipeline.sms_to(NY_PHONE))
    assert sent_before == 2  # one per borrower record (caps are per borrower)

    stop_at = TICK + timedelta(minutes=20)
    pipeline.invoke("InboundFunction", inbound_event(pipeline, "Stop texting me!", stop_at, "in-1"), stop_at)
    # A redelivery and a second STOP: still exactly one confirmation.
    pipeline.invoke("InboundFunction", inbound_event(pipeline, "Stop texting me!", stop_at, "in-1"), stop_at)
    pipeline.invoke(
        "InboundFunction",
        inbound_event(pipeline, "STOP", stop_at + timedelta(minutes=1), "in-2"),
        stop_at + timedelta(minutes=1),
    )
    confirmations = pipeline.sms_to(NY_PHONE)[sent_before:]
    assert len(confirmations) == 1
    assert "Example Lending Co." in confirmations[0]
    assert "no further messages" in confirmations[0]
    consent = pipeline.state.get_item(Key={"pk": f"PHONE#{NY_PHONE}", "sk": "CONSENT"})["Item"]
    assert consent["sms_opted_out"] is True

    # Days of ticks: nothing more to that number, whichever loan.
    for day in range(1, 4):
        pipeline.run_tick(TICK + timedelta(days=day))
    assert len(pipeline.sms_to(NY_PHONE)) == sent_before + 1
    assert len(pipeline.sms_to(MA_PHONE)) >= 2  # the other borrowers are still reminded

    start_at = TICK + timedelta(days=4, minutes=-30)
    pipeline.invoke("InboundFunction", inbound_event(pipeline, "START", start_at, "in-3"), start_at)
    assert len(pipeline.sms_to(NY_PHONE)) == sent_before + 2  # the START confirmation
    pipeline.run_tick(TICK + timedelta(days=4))
    assert len(pipeline.sms_to(NY_PHONE)) > sent_before + 2  # reminders resumed


def test_requests_per_delivered_message_at_scale(pipeline: Harness) -> None:
    """A few hundred reminders in one tick: what each delivered message costs in AWS requests."""
    count = 240
    borrowers = [
        Borrower(
            borrower_id=f"B-{n:04d}",
            first_name="Sam",
            time_zone="America/New_York",
            phone=f"+1{NYC_AREA_CODES[n // 100]}555{100 + n % 100:04d}",
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        )
        for n in range(count)
    ]
    loans = [loan(f"L-{n:04d}", f"B-{n:04d}", "US-NY", date(2026, 2, 23)) for n in range(count)]
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)
    indexing = sum(pipeline.requests_of("IndexerFunction").values())

    pipeline.run_tick(TICK)
    sent = {m["message_id"]: m for m in pipeline.messages().values()}
    assert len(sent) == count
    assert len(pipeline.sms()) == count
    at = TICK + timedelta(minutes=2)
    group = str(pipeline.stack.ref("SmsDeliveryLogGroup"))
    records = [
        (at, events.sms_delivery_record(str(i), str(m["contact_point"]), at, success=True, price=0.00581))
        for i, m in sent.items()
    ]
    for start in range(0, len(records), 100):  # CloudWatch Logs delivers receipts in batches
        pipeline.invoke(
            "ReceiptsFunction", events.logs_subscription_event(group, records[start : start + 100]), at
        )
    delivered = [m for m in pipeline.messages().values() if m["status"] == "DELIVERED"]
    assert len(delivered) == count

    steady = {
        fn: sum(pipeline.requests_of(fn).values())
        for fn in ("PlannerFunction", "SenderFunction", "ReceiptsFunction")
    }
    per_message = sum(steady.values()) / len(delivered)
    print(f"\n{count} reminders delivered; AWS requests: {steady}, indexing the new book: {indexing}")
    for fn in steady:
        print(f"  {fn}: {dict(pipeline.requests_of(fn))}")
    print(f"requests per delivered message (plan + send + receipt): {per_message:.2f}")
    # One claim and one Publish per message are the floor; everything else is batched. (The due-index
    # projects borrower_id and phone, so the planner reads a page in one BatchGetItem round.) The send
    # budget adds the sender's rate tokens (one request per batch and identity per second: moto's slow
    # sends cross more seconds than Lambda's) and the planner's spend reservations (two per page and
    # destination country).
    assert per_message < 3.4
    assert pipeline.requests_of("SenderFunction")["dynamodb.BatchGetItem"] == count // 10


def role_allows(stack: LocalStack, function: str, action: str, arn: str) -> bool:
    """Whether the function's role in template.yaml has an Allow statement for ``action`` on ``arn``."""
    role = stack.function_properties(function)["Role"]["Fn::GetAtt"][0]
    for policy in stack.template["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "NotResource" in statement:
                # Every resource but these (an SMS to a phone number: anything but an SNS ARN).
                excluded = stack.resolve(statement["NotResource"])
                excluded = excluded if isinstance(excluded, list) else [excluded]
                on_resource = not any(fnmatch.fnmatchcase(arn, str(r)) for r in excluded)
            else:
                resources = stack.resolve(statement["Resource"])
                resources = resources if isinstance(resources, list) else [resources]
                on_resource = any(fnmatch.fnmatchcase(arn, str(r)) for r in resources)
            if (
                statement["Effect"] == "Allow"
                and any(fnmatch.fnmatchcase(action, a) for a in actions)
                and on_resource
            ):
                return True
    return False


def test_every_call_the_functions_make_is_allowed_by_their_role(
    pipeline: Harness, aws: boto3.Session
) -> None:
    """The template's least-privilege roles cover what the code really does (and the test sees it all:
    indexing, a tick, sending by SMS and push, receipts, STOP/START/HELP and free-text replies, the sweep)."""
    loans, borrowers, _ = book(aws)
    pipeline.seed(loans, borrowers)
    pipeline.index(INDEXED_AT)
    pipeline.run_tick(TICK)
    at = TICK + timedelta(minutes=2)
    message = pipeline.messages()["L-NY"]
    record = events.sms_delivery_record(str(message["message_id"]), NY_PHONE, at, success=False, price=0)
    group = str(pipeline.stack.ref("SmsDeliveryFailureLogGroup"))
    pipeline.invoke("ReceiptsFunction", events.logs_subscription_event(group, [(at, record)]), at)
    eum = {"eventType": "TEXT_DELIVERED", "isFinal": True, "messageId": "x", "eventTimestamp": 1772460000000}
    pipeline.invoke(
        "ReceiptsFunction",
        events.sns_event(pipeline.stack.topics["DeliveryEventsTopic"], json.dumps(eum), at),
        at,
    )
    for n, body in enumerate(["STOP", "START", "HELP", "I paid already"]):
        pipeline.invoke("InboundFunction", inbound_event(pipeline, body, at, f"iam-{n}"), at)
    pipeline.invoke("ReconcileFunction", {"scheduled_time": "2026-03-03T03:30:00Z"}, at)

    functions = {fn for fn, _, _ in pipeline.grants_used}
    assert functions == {
        "IndexerFunction",
        "PlannerFunction",
        "SenderFunction",
        "ReceiptsFunction",
        "InboundFunction",
        "ReconcileFunction",
    }
    missing = sorted(g for g in pipeline.grants_used if not role_allows(pipeline.stack, *g))
    assert missing == []
    # The check can fail: the sender may not scan the lender's loans, the planner may not text anyone.
    loans_arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{pipeline.stack.tables['LoansTable']}"
    assert not role_allows(pipeline.stack, "SenderFunction", "dynamodb:Scan", loans_arn)
    assert not role_allows(pipeline.stack, "PlannerFunction", "sns:Publish", "*")


def test_a_shard_that_runs_out_of_time_hands_the_rest_on(pipeline: Harness) -> None:
    ids = [i for i in (f"L-{n:04d}" for n in range(400)) if zlib.crc32(i.encode()) % 16 == 0][:12]
    borrowers = [
        Borrower(
            borrower_id=f"B{i}",
            time_zone="America/New_York",
            phone=f"+1{NYC_AREA_CODES[n // 100]}555{100 + n % 100:04d}",
            address=Address(country="US", region="NY"),
            consent=Consent(sms=True),
        )
        for n, i in enumerate(ids, start=100)
    ]
    pipeline.seed([loan(i, f"B{i}", "US-NY", date(2026, 2, 23)) for i in ids], borrowers)
    pipeline.index(INDEXED_AT)
    environment = pipeline.stack.function_environment("PlannerFunction")
    planner = build_planner(PlannerSettings.from_env(environment))
    planner.page_size = 5

    # Out of time after the first page: the rest is handed on, not failed and not dropped.
    task = ShardTask(shard="DUE#00", scheduled_time=TICK)
    with clock.use(lambda: TICK + timedelta(seconds=10)):
        result = planner.plan_shard(task, remaining_ms=lambda: 0, metrics=MetricsRecorder())
    assert result.handed_on
    assert result.planned == 5
    (continuation,) = pipeline.drain("PlanQueue")
    body = json.loads(continuation["Body"])
    assert body["shard"] == "DUE#00"
    assert body["scheduled_time"] == "2026-03-02T14:00:00Z"
    assert body["continuation"]["due_shard"] == "DUE#00"

    # The continuation is planned by the real handler; every loan gets exactly one job.
    pipeline.sqs.send_message(QueueUrl=pipeline.stack.queues["PlanQueue"], MessageBody=continuation["Body"])
    assert pipeline.plan(TICK + timedelta(seconds=20)) == 1
    jobs = pipeline.jobs()
    assert sorted(json.loads(m["Body"])["loan_id"] for m in jobs["SmsQueue"]) == sorted(ids)
