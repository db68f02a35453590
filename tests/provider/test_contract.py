"""The helpers every cloud shares: Retry-After in both forms, error classification, first lines,
contract ranges, and the `errors()` wrapper every provider inherits."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Iterator

import pytest

from cloudorch.provider.contract import (
    CONTRACT_VERSION,
    ConfigError,
    ErrorKind,
    Provider,
    ProviderContext,
    ProviderError,
    classify_status,
    contract_admits,
    contract_text,
    contract_wants_newer,
    first_line,
    parse_retry_after,
    retry_after,
)
from cloudorch.provider.core import CoreConfig, CoreProvider

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


# --------------------------------------------------------------------------- Retry-After


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("7", 7.0), (" 120 ", 120.0), ("1.5", 1.5)])
def test_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_http_date_in_the_future_is_the_seconds_until_it() -> None:
    assert parse_retry_after(http_date(NOW + 30), now=NOW) == pytest.approx(30.0)


@pytest.mark.parametrize(
    "value",
    [
        "Tue, 14 Nov 2023 22:13:50 GMT",  # IMF-fixdate, the form servers send
        "Tuesday, 14-Nov-23 22:13:50 GMT",  # obsolete RFC 850 form
        "Tue Nov 14 22:13:50 2023",  # obsolete asctime form: no zone written, GMT meant
        "Tue, 14 Nov 2023 22:13:50 -0000",  # RFC 2822's "zone unknown", read as GMT too
    ],
)
def test_every_http_date_form_is_read_as_gmt(value: str, far_from_gmt: None) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(30.0)


@pytest.fixture
def far_from_gmt(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local time zone hours away from GMT, so a date read as local time is caught."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after(http_date(NOW - 3600), now=NOW) == 0.0


def test_far_future_date_is_finite_and_not_capped_here() -> None:
    # the engine bounds every wait (cloudorch/engine/retry.py); the parser reports what was said
    seconds = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now=NOW)
    assert seconds is not None and math.isfinite(seconds)
    assert seconds > 250_000_000_000


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "-0.5", "nan", "inf", "Infinity", "12 seconds", "Tue, 99 Nov 2023 25:61:00 GMT"],
)
def test_garbage_negative_and_non_finite_are_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_header_is_found_in_any_letter_case() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0  # botocore lowercases header names
    assert retry_after({"Retry-After": "4"}) == 4.0
    assert retry_after({"RETRY-AFTER": http_date(NOW + 5)}, now=NOW) == pytest.approx(5.0)
    assert retry_after({"content-type": "text/plain"}) is None
    assert retry_after({}) is None
    assert retry_after(None) is None


def test_without_now_the_clock_is_used() -> None:
    seconds = parse_retry_after(http_date(time.time() + 3600))
    assert seconds is not None and 3500 < seconds <= 3600


# --------------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    ("status", "flags", "kind"),
    [
        (429, {}, ErrorKind.THROTTLED),
        (400, {"throttled": True}, ErrorKind.THROTTLED),
        (429, {"conflict": True}, ErrorKind.THROTTLED),  # throttling wins: its wait is the server's to name
        (409, {"conflict": True}, ErrorKind.CONFLICT),
        (503, {"conflict": True}, ErrorKind.CONFLICT),
        (409, {}, ErrorKind.FATAL),  # a 409 alone may be a name taken: not worth a retry
        (408, {}, ErrorKind.TRANSIENT),
        (500, {}, ErrorKind.TRANSIENT),
        (503, {}, ErrorKind.TRANSIENT),
        (400, {"transient": True}, ErrorKind.TRANSIENT),
        (400, {}, ErrorKind.FATAL),
        (403, {}, ErrorKind.FATAL),
        (404, {}, ErrorKind.FATAL),
        (None, {}, ErrorKind.FATAL),
        (None, {"transient": True}, ErrorKind.TRANSIENT),
    ],
)
def test_classify_status(status: int | None, flags: dict[str, bool], kind: ErrorKind) -> None:
    assert classify_status(status, **flags) is kind


# --------------------------------------------------------------------------- first line


def test_first_line() -> None:
    assert first_line(RuntimeError("boom\nTraceback: noise\nmore")) == "boom"
    assert first_line(RuntimeError("\n  spaced first  \nsecond")) == "spaced first"
    assert first_line(TimeoutError()) == "TimeoutError"


# --------------------------------------------------------------------------- contract ranges


def test_the_contract_version_is_2_2() -> None:
    # 2.1 added PartialCreate and find_all, 2.2 lookup; a change here needs a line in contract.py's docstring
    assert CONTRACT_VERSION == (2, 2)
    assert contract_text() == "2.2"


@pytest.mark.parametrize(
    ("spec", "admitted"),
    [
        (">=2.0,<3", True),
        (">=2,<3", True),
        ("==2.0", True),
        ("==2", True),
        (">=2.1,<3", False),
        (">=1,<2", False),
        ("<2", False),
        (">2.0", False),
        ("<=2.0", True),
        ("!=2.0", False),
        (" >= 1.5 , < 3 ", True),
    ],
)
def test_contract_admits(spec: str, admitted: bool) -> None:
    assert contract_admits(spec, (2, 0)) is admitted


def test_which_side_a_range_misses_on() -> None:
    assert contract_wants_newer(">=3,<4", (2, 0))
    assert contract_wants_newer(">2.0", (2, 0))
    assert not contract_wants_newer(">=1,<2", (2, 0))
    assert not contract_wants_newer("<2", (2, 0))


@pytest.mark.parametrize("spec", ["", "2", "~=2.0", ">=two", ">=2.0.1", ">=2,,<3"])
def test_unreadable_range_raises(spec: str) -> None:
    with pytest.raises(ValueError, match="contract range"):
        contract_admits(spec)


def test_every_shipped_provider_declares_a_range_including_this_contract() -> None:
    from cloudorch_aws import AwsProvider
    from cloudorch_azure import AzureProvider
    from cloudorch_gcp import GcpProvider

    for cls in (CoreProvider, AwsProvider, AzureProvider, GcpProvider):
        assert contract_admits(cls.contract), cls.name


# --------------------------------------------------------------------------- Provider.errors()


class _Classifying(CoreProvider):
    def classify(self, exc: BaseException, address: str | None = None) -> ProviderError:
        if isinstance(exc, ProviderError):
            return exc
        return ProviderError(f"{address}: {first_line(exc)}", kind=ErrorKind.TRANSIENT, address=address, cause=exc)


def _provider() -> Provider:
    return _Classifying(CoreConfig(), "core", ProviderContext())


def test_errors_wraps_an_sdk_exception_with_what_was_done() -> None:
    with pytest.raises(ProviderError) as info, _provider().errors("web.site", "create bucket b"):
        raise OSError("connection reset\nlong detail")
    err = info.value
    assert err.message == "web.site: create bucket b: connection reset"
    assert str(err) == err.message
    assert err.kind is ErrorKind.TRANSIENT
    assert isinstance(err.__cause__, OSError)


def test_errors_lets_classified_errors_through_unchanged() -> None:
    original = ProviderError("already said", kind=ErrorKind.CONFLICT)
    with pytest.raises(ProviderError) as info, _provider().errors("web.site", "create"):
        raise original
    assert info.value is original
    with pytest.raises(ConfigError, match="bad"), _provider().errors("web.site", "create"):
        raise ConfigError("bad")
