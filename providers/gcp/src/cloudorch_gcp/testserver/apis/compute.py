"""Compute v1 networking on the test server: what the service does beyond the generic store.

Networks get their routing mode default; a subnetwork or firewall needs its network
(and a network with subnetworks or firewalls cannot be deleted); a subnetwork gets its region,
gateway address and full network URL, its range only grows (`expandIpCidrRange`), and
`setPrivateIpGoogleAccess` flips one field; an ingress firewall with no source is open to
0.0.0.0/0. A write that repeats a `requestId` answers the operation the first one made, as the
service deduplicates it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import threading
from typing import TYPE_CHECKING, Any

from cloudorch_gcp.testserver.apis import ApiQuirks, quirks

if TYPE_CHECKING:
    from cloudorch_gcp.testserver.apis import Generic
    from cloudorch_gcp.testserver.server import Answer, Call

compute = quirks("compute", ApiQuirks(style="compute"))

#: requestId -> the answer its first write got (an operation); the service keeps them for a while
_SEEN: dict[str, Answer] = {}
_SEEN_LOCK = threading.Lock()


def _error(code: int, message: str) -> Exception:
    from cloudorch_gcp.testserver.server import ApiError

    return ApiError(code, message)


def _is_uuid(text: str) -> bool:
    """Compute accepts any UUID but the nil one as a `requestId`."""
    import uuid

    try:
        return uuid.UUID(text).int != 0
    except ValueError:
        return False


def _deduplicated(handler: Any) -> Any:
    """Answer a repeated `requestId` with the first answer, without acting again."""

    def wrapped(call: Call, generic: Generic) -> Answer:
        request_id = call.query.get("requestId")
        if not request_id:
            answer: Answer = handler(call, generic)
            return answer
        if not _is_uuid(request_id):
            raise _error(400, f"Invalid value for field 'requestId': '{request_id}'. Must be a valid UUID.")
        # an id to deduplicate by, never the new resource's name
        call.query.pop("requestId")
        key = f"{call.method.id}:{request_id}"
        with call.store.lock, _SEEN_LOCK:
            if key in _SEEN:
                return _SEEN[key]
            first: Answer = handler(call, generic)
            _SEEN[key] = first
            return first

    return wrapped


def _network_relative(call: Call, value: str) -> str:
    """`projects/P/global/networks/N` for a network URL, partial URL or name."""
    ref = re.sub(r"^https?://[^?#]*?/(?=projects/)", "", value)
    if "/" not in ref:
        return f"{'/'.join(call.relative.split('/')[:2])}/global/networks/{ref}"
    if ref.startswith("global/"):
        return f"{'/'.join(call.relative.split('/')[:2])}/{ref}"
    return ref


def _need_network(call: Call) -> str:
    value = str(call.body.get("network") or "")
    if not value:
        raise _error(400, "Invalid value for field 'resource.network': ''. The network must be specified.")
    relative = _network_relative(call, value)
    if call.store.get("compute", relative) is None:
        raise _error(404, f"The resource '{relative}' was not found")
    call.body["network"] = call.url_of(relative)
    return relative


# --------------------------------------------------------------------------- networks


@compute.handler("compute.networks.insert")
@_deduplicated
def insert_network(call: Call, generic: Generic) -> Answer:
    if "autoCreateSubnetworks" not in call.body:
        call.body["autoCreateSubnetworks"] = False  # a legacy network, which the server does not model
    call.body.setdefault("routingConfig", {"routingMode": "REGIONAL"})
    call.body["routingConfig"].setdefault("routingMode", "REGIONAL")
    mtu = int(call.body.get("mtu") or 1460)  # unset: the service's 1460, which it does not report
    if not 1300 <= mtu <= 8896:
        raise _error(400, f"Invalid value for field 'resource.mtu': '{mtu}'. Must be between 1300 and 8896.")
    return generic(call)


@compute.handler("compute.networks.patch")
@_deduplicated
def patch_network(call: Call, generic: Generic) -> Answer:
    allowed = {"routingConfig", "mtu", "description"}
    unexpected = sorted(k for k in call.body if k not in allowed and k != "name")
    if unexpected:
        raise _error(400, f"Invalid fields for a network patch: {unexpected}; only routingConfig and mtu change.")
    return generic(call)


@compute.handler("compute.networks.delete")
@_deduplicated
def delete_network(call: Call, generic: Generic) -> Answer:
    with call.store.lock:
        url = call.url_of(call.relative)
        users = [
            path
            for (api, path), r in call.store.resources.items()
            if api == "compute" and r.get("network") == url and ("/subnetworks/" in path or "/firewalls/" in path)
        ]
        if users:
            raise _error(
                400, f"The network resource '{call.relative}' is already being used by '{users[0]}'"
            )  # resourceInUseByAnotherResource
        return generic(call)


# --------------------------------------------------------------------------- subnetworks


def _range(value: Any, field: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(str(value), strict=True)
    except ValueError:
        raise _error(400, f"Invalid value for field '{field}': '{value}'. Invalid IPCidrRange.") from None


@compute.handler("compute.subnetworks.insert")
@_deduplicated
def insert_subnetwork(call: Call, generic: Generic) -> Answer:
    with call.store.lock:
        _need_network(call)
        network = _range(call.body.get("ipCidrRange"), "resource.ipCidrRange")
        for r in call.body.get("secondaryIpRanges") or []:
            _range(r.get("ipCidrRange"), "resource.secondaryIpRanges.ipCidrRange")
        region = call.params.get("region") or call.relative.split("/")[3]
        call.body["region"] = call.url_of("/".join(call.relative.split("/")[:4]))
        call.body["gatewayAddress"] = str(next(network.hosts()))
        call.body.setdefault("privateIpGoogleAccess", False)
        call.body.setdefault("purpose", "PRIVATE")
        call.body.setdefault("stackType", "IPV4_ONLY")
        call.body.setdefault("state", "READY")
        del region
        return generic(call)


def _patch_fields(call: Call, generic: Generic, body: dict[str, Any]) -> Answer:
    """The store's patch of the subnetwork this custom method names, with `body`."""
    from cloudorch_gcp.testserver.server import generic_patch

    base = call.path.rsplit("/", 1)[0]
    return generic_patch(dataclasses.replace(call, path=base, body=body))


@compute.handler("compute.subnetworks.expandIpCidrRange")
@_deduplicated
def expand_range(call: Call, generic: Generic) -> Answer:
    with call.store.lock:
        current = call.store.get("compute", call.relative.rsplit("/", 1)[0])
        if current is None:
            raise _error(404, f"The resource '{call.relative.rsplit('/', 1)[0]}' was not found")
        have = _range(current.get("ipCidrRange"), "resource.ipCidrRange")
        want = _range(call.body.get("ipCidrRange"), "ipCidrRange")
        if want.version != have.version or not have.subnet_of(want) or want == have:  # type: ignore[arg-type]
            raise _error(
                400,
                f"Invalid value for field 'ipCidrRange': '{want}'. The new range must contain the subnetwork's "
                f"current range {have} and be larger.",
            )
        return _patch_fields(call, generic, {"ipCidrRange": str(want)})


@compute.handler("compute.subnetworks.setPrivateIpGoogleAccess")
@_deduplicated
def set_private_access(call: Call, generic: Generic) -> Answer:
    return _patch_fields(call, generic, {"privateIpGoogleAccess": bool(call.body.get("privateIpGoogleAccess"))})


@compute.handler("compute.subnetworks.patch")
@_deduplicated
def patch_subnetwork(call: Call, generic: Generic) -> Answer:
    if not call.body.get("fingerprint"):
        raise _error(400, "Invalid value for field 'resource.fingerprint': ''. A fingerprint must be provided.")
    if "ipCidrRange" in call.body:
        raise _error(400, "The ipCidrRange of a subnetwork is changed with expandIpCidrRange, not patch.")
    for r in call.body.get("secondaryIpRanges") or []:
        _range(r.get("ipCidrRange"), "resource.secondaryIpRanges.ipCidrRange")
    return generic(call)


# --------------------------------------------------------------------------- firewalls


def _firewall_defaults(call: Call) -> None:
    body = call.body
    direction = body.get("direction") or "INGRESS"
    if direction == "INGRESS" and not (body.get("sourceRanges") or body.get("sourceTags")
                                       or body.get("sourceServiceAccounts")):  # fmt: skip
        body["sourceRanges"] = ["0.0.0.0/0"]
    if direction == "EGRESS" and not body.get("destinationRanges"):
        body["destinationRanges"] = ["0.0.0.0/0"]
    if bool(body.get("allowed")) == bool(body.get("denied")):
        raise _error(400, "Exactly one of 'allowed' or 'denied' must be specified.")


@compute.handler("compute.firewalls.insert")
@_deduplicated
def insert_firewall(call: Call, generic: Generic) -> Answer:
    with call.store.lock:
        _need_network(call)
        call.body.setdefault("direction", "INGRESS")
        call.body.setdefault("priority", 1000)
        call.body.setdefault("disabled", False)
        _firewall_defaults(call)
        return generic(call)


@compute.handler("compute.firewalls.patch")
@_deduplicated
def patch_firewall(call: Call, generic: Generic) -> Answer:
    with call.store.lock:
        current = call.store.get("compute", call.relative)
        if current is None:
            raise _error(404, f"The resource '{call.relative}' was not found")
        if "network" in call.body and _network_relative(call, str(call.body["network"])) != _network_relative(
            call, str(current.get("network"))
        ):
            raise _error(400, "Invalid value for field 'resource.network': a firewall's network cannot change.")
        call.body.pop("network", None)
        if call.body.get("direction", current.get("direction")) != current.get("direction"):
            raise _error(400, "Invalid value for field 'resource.direction': a firewall's direction cannot change.")
        merged = {**current, **call.body}
        probe = dataclasses.replace(call, body=merged)
        _firewall_defaults(probe)
        for key in ("sourceRanges", "destinationRanges"):
            if merged.get(key) != current.get(key) or key in call.body:
                call.body[key] = merged.get(key)
        return generic(call)
