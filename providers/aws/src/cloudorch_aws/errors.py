"""AWS error codes and what kind of failure each is for the engine (retry or not).

Pure data and functions over botocore's error shape, so nothing here imports botocore.
"""

from __future__ import annotations

from cloudorch.provider.contract import ErrorKind, classify_status

THROTTLED_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "SlowDown",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "PriorRequestNotComplete",  # Route53 asks callers to slow down with this one
        "BandwidthLimitExceeded",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestExpired",
        "IDPCommunicationError",
        # IAM is eventually consistent: a role created a moment ago may not be usable yet
        "NoSuchEntity.Propagating",
    }
)
CONFLICT_CODES = frozenset(
    {
        "OperationAborted",
        "ResourceInUseException",
        "ResourceConflictException",
        "ConcurrentModificationException",
        "ConcurrentModification",
        "ConflictException",
        "QueueDeletedRecently",
        "AWS.SimpleQueueService.QueueDeletedRecently",
        "DependencyViolation",
        "IncorrectState",
        "InvalidChangeBatch.Conflict",
        "HostedZoneNotEmpty.Propagating",
        "LimitExceededException.Update",
    }
)
#: substrings of validation messages AWS gives while IAM changes propagate (bounded by max_attempts)
PROPAGATION_HINTS = (
    "cannot be assumed by Lambda",
    "role defined for the function cannot be assumed",
    "The provided execution role does not have permissions",
)


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None (no botocore import needed)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def http_status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def error_kind(code: str, status: int, message: str) -> ErrorKind:
    """THROTTLED / CONFLICT / TRANSIENT / FATAL for an AWS error code and HTTP status."""
    return classify_status(
        status,
        throttled=code in THROTTLED_CODES,
        conflict=code in CONFLICT_CODES or code.endswith("InUseException"),
        transient=code in TRANSIENT_CODES or any(h in message for h in PROPAGATION_HINTS),
    )
