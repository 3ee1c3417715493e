"""Send pacing for the sender: one token per publish from the identity's shared per-second bucket.

Every sender Lambda that publishes for the same origination identity takes its token from the same
DynamoDB bucket (``budget_store.RateLimiter``), so however many run at once, the identity never starts
more publishes in a second than its configured rate (data/lender/sending.yaml) and SNS never has to
throttle. The sender takes its token before it claims the step, so the claim stays its last write
before Publish. When no token comes within the wait limit, nothing has been claimed and SQS delivers
the job again later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dunning.adapters.budget_store import RateLimiter, RateLimitTimeout
from dunning.adapters.messaging import FailureKind, PublishError
from dunning.budget import SendingPolicy
from dunning.models import Channel

# Within a 30-second sender invocation, a job waits at most this long for its turn.
SENDER_MAX_WAIT_SECONDS = 10.0
# Grants that arrive after their second are dropped and asked for again, this many times at most.
STALE_GRANT_ATTEMPTS = 5


@dataclass
class SendPacer:
    """Paces publishes per origination identity across every concurrent sender.

    Tokens are taken for the batch's remaining jobs in one request and spent only within the second
    they belong to; a token left at the end of its second is dropped (the rate can be undershot, never
    exceeded).
    """

    limiter: RateLimiter
    policy: SendingPolicy
    _held: dict[str, tuple[int, int]] = field(default_factory=dict)

    def pace(self, channel: Channel, jurisdiction: str, *, demand: int = 1) -> str:
        """Wait for this message's turn; returns the identity. Raises a retryable ``PublishError``."""
        identity, rate = self.policy.identity_for(channel, jurisdiction.split("-")[0])
        second, count = self._held.get(identity, (-1, 0))
        if count > 0 and second == int(self.limiter.clock()):
            self._held[identity] = (second, count - 1)
            return identity
        for _ in range(STALE_GRANT_ATTEMPTS):
            try:
                second, granted = self.limiter.acquire(identity, rate, tokens=max(1, demand))
            except RateLimitTimeout as exc:
                raise PublishError(FailureKind.RETRYABLE, "SendRateLimited", str(exc)) from exc
            # A grant that arrives after its second has ended (a slow request on a busy host) is dropped:
            # spending it now would start a publish in a second whose tokens others already hold.
            if second == int(self.limiter.clock()):
                self._held[identity] = (second, granted - 1)
                return identity
        raise PublishError(FailureKind.RETRYABLE, "SendRateLimited", "send tokens kept arriving too late")
