"""The post-deploy SMS account settings: idempotent, with a dry run, from the stack's outputs."""

from __future__ import annotations

import json

import boto3
import pytest

from dunning_local.sms_settings import apply, desired_attributes, main

ROLE = "arn:aws:iam::123456789012:role/dunning-dev-DeliveryStatusRole-ABC123"


def test_a_dry_run_prints_the_differences_and_changes_nothing(
    aws: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    sns = aws.client("sns")
    sns.set_sms_attributes(attributes={"DefaultSMSType": "Promotional", "MonthlySpendLimit": "1"})
    assert main(["--role-arn", ROLE, "--monthly-spend-limit", "100", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "would change DefaultSMSType: 'Promotional' -> 'Transactional'" in printed
    assert "would change MonthlySpendLimit: '1' -> '100'" in printed
    assert f"would change DeliveryStatusIAMRole: None -> '{ROLE}'" in printed
    attributes = sns.get_sms_attributes()["attributes"]
    assert attributes["DefaultSMSType"] == "Promotional"
    assert "DeliveryStatusIAMRole" not in attributes


def test_applying_twice_changes_only_the_first_time(
    aws: boto3.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    sns = aws.client("sns")
    sns.set_sms_attributes(attributes={"MonthlySpendLimit": "100"})
    assert main(["--role-arn", ROLE, "--monthly-spend-limit", "100"]) == 0
    first = capsys.readouterr().out
    assert "MonthlySpendLimit" not in first  # already right: left alone
    assert "changed DeliveryStatusSuccessSamplingRate: None -> '100'" in first
    wanted = {
        "DeliveryStatusIAMRole": ROLE,
        "DeliveryStatusSuccessSamplingRate": "100",
        "DefaultSMSType": "Transactional",
        "MonthlySpendLimit": "100",
    }
    assert wanted.items() <= sns.get_sms_attributes()["attributes"].items()
    assert apply(sns, desired_attributes(ROLE, 100)) == {}
    assert main(["--role-arn", ROLE, "--monthly-spend-limit", "100"]) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_the_role_and_limit_come_from_the_stack_outputs(aws: boto3.Session) -> None:
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "DeliveryStatusRoleArn": {"Value": ROLE},
            "MonthlySmsSpendLimitUsd": {"Value": "250"},
        },
    }
    aws.client("cloudformation").create_stack(StackName="dunning-dev", TemplateBody=json.dumps(template))
    assert main(["--stack-name", "dunning-dev", "--region", "us-east-1"]) == 0
    attributes = aws.client("sns").get_sms_attributes()["attributes"]
    assert attributes["DeliveryStatusIAMRole"] == ROLE
    assert attributes["MonthlySpendLimit"] == "250"


def test_without_a_role_it_refuses(aws: boto3.Session) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--monthly-spend-limit", "100"])
    assert exit_info.value.code == 2


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="sms type"):
        desired_attributes(ROLE, 100, sms_type="Marketing")
    with pytest.raises(ValueError, match="percentage"):
        desired_attributes(ROLE, 100, success_sampling_rate=150)
