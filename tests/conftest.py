"""Shared fixtures: AWS on in-process moto, and template.yaml's resources created on it."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from dunning_local.stack import DEFAULT_REGION, LocalStack, build_local_stack


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[boto3.Session]:
    """moto in-process with fake credentials in us-east-1; yields a session for it."""
    # A developer's AWS_ENDPOINT_URL (moto_server) or profile must not leak into in-process moto.
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": DEFAULT_REGION,
        "AWS_REGION": DEFAULT_REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield boto3.Session(region_name=DEFAULT_REGION)


@pytest.fixture
def stack(aws: boto3.Session) -> LocalStack:
    """template.yaml's tables, queues, topics and subscriptions on moto (prefix ``dunning-local``)."""
    return build_local_stack(aws)
