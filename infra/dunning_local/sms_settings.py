"""The account's SNS SMS settings, which CloudFormation cannot set: run once after each deploy.

SNS writes SMS delivery-status logs (what the receipts function reads) only when the account's SMS
attributes name a role for it; the monthly spend limit and the default message type are account
attributes too. This sets, idempotently (reads the current attributes first, changes only what
differs; ``--dry-run`` prints the difference and changes nothing):

- ``DeliveryStatusIAMRole``: the stack's DeliveryStatusRole;
- ``DeliveryStatusSuccessSamplingRate``: 100, so every delivered message gets a receipt;
- ``DefaultSMSType``: Transactional (reminders about a debt are not marketing);
- ``MonthlySpendLimit``: the stack's MonthlySmsSpendLimitUsd (raising it above the account's quota
  needs a support case first; SNS refuses the call otherwise).

    python -m dunning_local.sms_settings --stack-name dunning-prod [--dry-run]
    python -m dunning_local.sms_settings --role-arn arn:aws:iam::123456789012:role/… --monthly-spend-limit 100
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

ROLE_OUTPUT = "DeliveryStatusRoleArn"
SPEND_LIMIT_OUTPUT = "MonthlySmsSpendLimitUsd"
SMS_TYPES = ("Transactional", "Promotional")


def desired_attributes(
    role_arn: str,
    monthly_spend_limit: str | int,
    *,
    success_sampling_rate: int = 100,
    sms_type: str = "Transactional",
) -> dict[str, str]:
    """The SMS attributes Dunning needs, as SNS stores them (strings)."""
    if sms_type not in SMS_TYPES:
        raise ValueError(f"sms type must be one of {SMS_TYPES}")
    if not 0 <= success_sampling_rate <= 100:
        raise ValueError("success sampling rate is a percentage, 0..100")
    return {
        "DeliveryStatusIAMRole": role_arn,
        "DeliveryStatusSuccessSamplingRate": str(success_sampling_rate),
        "DefaultSMSType": sms_type,
        "MonthlySpendLimit": str(monthly_spend_limit),
    }


def differences(current: Mapping[str, str], desired: Mapping[str, str]) -> dict[str, tuple[str | None, str]]:
    """``{attribute: (current value or None, desired value)}`` for each attribute that must change."""
    return {name: (current.get(name), value) for name, value in desired.items() if current.get(name) != value}


def apply(
    sns: Any, desired: Mapping[str, str], *, dry_run: bool = False
) -> dict[str, tuple[str | None, str]]:
    """Change the account's SMS attributes that differ from ``desired``; return what differed."""
    # Without a filter SNS returns every attribute that is set (and moto honours only one filter name).
    current = sns.get_sms_attributes()["attributes"]
    changes = differences(current, desired)
    if changes and not dry_run:
        sns.set_sms_attributes(attributes={name: new for name, (_, new) in changes.items()})
    return changes


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dunning_local.sms_settings",
        description="Set the account's SNS SMS attributes Dunning needs (idempotent).",
    )
    parser.add_argument("--stack-name", help="read the role and the spend limit from this stack's outputs")
    parser.add_argument("--role-arn", help=f"delivery-status role (default: the stack output {ROLE_OUTPUT})")
    parser.add_argument("--monthly-spend-limit", help=f"USD (default: the stack output {SPEND_LIMIT_OUTPUT})")
    parser.add_argument(
        "--success-sampling-rate", type=int, default=100, help="percent (default %(default)s)"
    )
    parser.add_argument("--sms-type", choices=SMS_TYPES, default="Transactional")
    parser.add_argument("--region")
    parser.add_argument("--endpoint-url", help="e.g. moto_server")
    parser.add_argument("--dry-run", action="store_true", help="print the differences, change nothing")
    args = parser.parse_args(argv)

    import boto3

    session = boto3.Session(region_name=args.region)
    outputs: dict[str, str] = {}
    if args.stack_name:
        cloudformation = session.client("cloudformation", endpoint_url=args.endpoint_url)
        outputs = stack_outputs(cloudformation, args.stack_name)
    role_arn = args.role_arn or outputs.get(ROLE_OUTPUT)
    spend_limit = args.monthly_spend_limit or outputs.get(SPEND_LIMIT_OUTPUT)
    if not role_arn or not spend_limit:
        parser.error("need --stack-name (with the outputs) or both --role-arn and --monthly-spend-limit")

    desired = desired_attributes(
        role_arn, spend_limit, success_sampling_rate=args.success_sampling_rate, sms_type=args.sms_type
    )
    sns = session.client("sns", endpoint_url=args.endpoint_url)
    changes = apply(sns, desired, dry_run=args.dry_run)
    if not changes:
        print("SMS attributes already as wanted; nothing to change")
        return 0
    verb = "would change" if args.dry_run else "changed"
    for name, (old, new) in changes.items():
        print(f"{verb} {name}: {old!r} -> {new!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
