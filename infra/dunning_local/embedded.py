"""Embedded AWS: moto in-process with fake credentials, for the demo, the soak run, the benchmarks and
the tables a demo kept (``dunning explain --from``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import boto3

from dunning_local.stack import DEFAULT_REGION


@contextmanager
def embedded_aws() -> Iterator[boto3.Session]:
    """moto in-process with fake credentials; the process environment and boto3's default session are
    restored afterwards (the demo, the soak run and the benchmarks all run inside one)."""
    from moto import mock_aws

    saved_env = dict(os.environ)
    saved_session = boto3.DEFAULT_SESSION
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION=DEFAULT_REGION,
        AWS_REGION=DEFAULT_REGION,
    )
    try:
        with mock_aws():
            yield boto3.Session(region_name=DEFAULT_REGION)
    finally:
        boto3.DEFAULT_SESSION = saved_session
        os.environ.clear()
        os.environ.update(saved_env)
