"""The ARM test server: a small Azure Resource Manager-compatible HTTPS server for tests.

No ARM emulator exists, so the tests serve the REST routes they use, with ARM's
documented shapes (https://learn.microsoft.com/rest/api/resources/), and point the real
`azure-mgmt-resource` client at it over HTTPS with a self-signed certificate made at start:
resource groups, generic resources by id (PUT is asynchronous: 201 + Azure-AsyncOperation),
tags at scope, resource provider API versions, DELETE as 202 + Location polling, ARM error
bodies, the resource providers' own behaviour for the typed types (`cloudorch/sandbox/arm_types.py`:
server-set properties, subnets inside their network, role assignments at any scope, answered
synchronously as ARM does), and injected faults (N x 429 with Retry-After, or any status and code). Runs in the test
process on a thread, so a test reaches into its state; the sandbox's ARM (`cloudorch/sandbox/arm.py`)
is the product's own, without faults. Not product code.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cloudorch.sandbox import arm_types


@dataclass
class Fault:
    status: int
    code: str
    message: str
    count: int
    retry_after: str | None = None
    method: str | None = None  # only requests with this method
    path_contains: str | None = None  # only paths containing this (case-insensitive)


@dataclass
class Operation:
    polls_left: int
    on_done: Any  # Callable[[], None]
    status_url: str


@dataclass
class ArmState:
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower name -> body
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # lower id -> body
    operations: dict[str, Operation] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)  # method, path, status
    #: namespace -> resource type -> api versions (newest first), for GET /providers/{ns}
    providers: dict[str, dict[str, list[str]]] = field(
        default_factory=lambda: {
            **arm_types.API_VERSIONS,
            "Microsoft.Storage": {"storageAccounts": ["2024-01-01", "2023-05-01", "2025-01-01-preview"]},
        }
    )
    #: how many polls an asynchronous operation answers "still running" before it completes
    polls_before_done: int = 1


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for IP:127.0.0.1 (and localhost); returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloudorch ARM test server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "arm-ca.pem", directory / "arm-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def _location(value: str | None) -> str | None:
    return value.replace(" ", "").lower() if value else value


class ArmServer:
    """Start with `ArmServer().start()`; `url`, `ca_bundle`, `state`; stop with `stop()`."""

    def __init__(self) -> None:
        self.state = ArmState()
        self.lock = threading.RLock()
        self._dir = Path(tempfile.mkdtemp(prefix="cloudorch-arm-"))
        self.ca_bundle, self._key = make_certificate(self._dir)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> ArmServer:
        server = self

        class Handler(_Handler):
            arm = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, self._key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        self.port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="arm-test-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # ------------------------------------------------------------------ test controls

    def reset(self) -> None:
        with self.lock:
            self.state = ArmState()

    def inject(
        self,
        status: int,
        code: str,
        message: str = "injected fault",
        *,
        count: int = 1,
        retry_after: str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """The next `count` matching requests answer `status` with an ARM error body."""
        with self.lock:
            self.state.faults.append(Fault(status, code, message, count, retry_after, method, path_contains))

    def inject_throttle(self, count: int, retry_after: str = "1", **match: Any) -> None:
        self.inject(
            429, "TooManyRequests", "The request is being throttled.", count=count, retry_after=retry_after, **match
        )

    def requests(self, method: str | None = None) -> list[tuple[str, str, int]]:
        with self.lock:
            return [r for r in self.state.requests if method is None or r[0] == method]


class _Handler(BaseHTTPRequestHandler):
    arm: ArmServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every request costs ~40 ms (delayed ACK)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # ------------------------------------------------------------------ plumbing

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        # recorded before the reply leaves, so a test that has its answer also sees the record
        with self.arm.lock:
            self.arm.state.requests.append((self.command, urlsplit(self.path).path, status))
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-ms-request-id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, {"error": {"code": code, "message": message}}, headers)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        return json.loads(self.rfile.read(length))

    def _fault(self, path: str) -> Fault | None:
        with self.arm.lock:
            for fault in self.arm.state.faults:
                if fault.count <= 0:
                    continue
                if fault.method and fault.method != self.command:
                    continue
                if fault.path_contains and fault.path_contains.lower() not in path.lower():
                    continue
                fault.count -= 1
                return fault
        return None

    def _operation(self, on_done: Any, kind: str) -> dict[str, str]:
        op_id = uuid.uuid4().hex
        sub = self.path.split("/")[2]
        url = f"{self.arm.url}/subscriptions/{sub}/providers/Microsoft.Resources/{kind}/{op_id}?api-version=2024-03-01"
        self.arm.state.operations[op_id] = Operation(self.arm.state.polls_before_done, on_done, url)
        header = "Azure-AsyncOperation" if kind == "asyncoperations" else "Location"
        return {header: url, "Retry-After": "0"}

    def _handle(self) -> None:
        # drain the body first so a keep-alive connection stays in sync whatever we answer
        body = self._body() if self.command in {"PUT", "PATCH", "POST"} else {}
        split = urlsplit(self.path)
        path = split.path.rstrip("/")
        query = parse_qs(split.query)
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self._error(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        if "api-version" not in query:
            return self._error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        fault = self._fault(path)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            return self._error(fault.status, fault.code, fault.message, headers)
        parts = [p for p in path.split("/") if p]
        low = [p.lower() for p in parts]
        with self.arm.lock:
            if len(parts) < 2 or low[0] != "subscriptions":
                return self._error(404, "InvalidResourceType", f"no route for {path}")
            if "tags" in low and low[-3:] == ["microsoft.resources", "tags", "default"] and low[-4] == "providers":
                return self._tags("/" + "/".join(parts[:-4]), body)
            if arm_types.is_role_assignment(low):
                return self._role_assignment(parts, body)
            if self.command == "GET" and arm_types.is_role_assignment_list(low):
                return self._send(200, arm_types.list_role_assignments(parts, self.arm.state.resources))
            if len(parts) == 6 and low[2:4] == ["providers", "microsoft.resources"]:
                return self._poll(low[4], parts[5])
            if len(parts) == 4 and low[2] == "providers":
                return self._provider(parts[3])
            if len(parts) == 3 and low[2] == "resourcegroups":
                return self._list_groups(parts[1], query)
            if len(parts) == 4 and low[2] == "resourcegroups":
                return self._group(parts[1], parts[3], body)
            if self.command == "GET" and (low[2:] == ["resources"] or (len(parts) == 5 and low[4] == "resources")):
                return self._list_resources(parts, query)
            if len(parts) >= 8 and low[2] == "resourcegroups" and low[4] == "providers" and len(parts) % 2 == 0:
                return self._resource(parts, body)
            return self._error(404, "InvalidResourceType", f"no route for {path}")

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_POST = _handle

    # ------------------------------------------------------------------ routes (lock held)

    def _poll(self, kind: str, op_id: str) -> None:
        op = self.arm.state.operations.get(op_id)
        if op is None:
            return self._error(404, "OperationNotFound", f"operation {op_id} not found")
        if op.polls_left > 0:
            op.polls_left -= 1
            if kind == "asyncoperations":
                return self._send(200, {"status": "InProgress"}, {"Retry-After": "0"})
            return self._send(202, None, {"Location": op.status_url, "Retry-After": "0"})
        if op.on_done is not None:
            op.on_done()
            op.on_done = None
        if kind == "asyncoperations":
            return self._send(200, {"status": "Succeeded"})
        return self._send(200, None)

    def _provider(self, namespace: str) -> None:
        types = {k.lower(): (k, v) for k, v in self.arm.state.providers.items()}.get(namespace.lower())
        if types is None:
            return self._error(404, "InvalidResourceNamespace", f"The resource namespace '{namespace}' is invalid.")
        ns, rts = types
        return self._send(
            200,
            {
                "id": f"/subscriptions/x/providers/{ns}",
                "namespace": ns,
                "registrationState": "Registered",
                "resourceTypes": [{"resourceType": t, "apiVersions": v, "locations": []} for t, v in rts.items()],
            },
        )

    def _group_body(self, sub: str, name: str, location: str, tags: dict[str, str], state: str) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub}/resourceGroups/{name}",
            "name": name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": location,
            "tags": tags,
            "properties": {"provisioningState": state},
        }

    def _list_groups(self, sub: str, query: dict[str, list[str]]) -> None:
        groups = sorted(self.arm.state.groups.values(), key=lambda g: g["name"].lower())
        skip = int(query.get("$skiptoken", ["0"])[0])
        page = groups[skip : skip + 2]  # small pages, so paging is exercised
        body: dict[str, Any] = {"value": page}
        if skip + 2 < len(groups):
            body["nextLink"] = (
                f"{self.arm.url}/subscriptions/{sub}/resourcegroups?api-version=2024-03-01&$skiptoken={skip + 2}"
            )
        return self._send(200, body)

    def _list_resources(self, parts: list[str], query: dict[str, list[str]]) -> None:
        """The resources of a subscription or of one group (one page; data sources list them)."""
        if len(parts) == 5 and parts[3].lower() not in self.arm.state.groups:
            return self._error(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")
        prefix = ("/" + "/".join(parts[:-1])).lower() + "/"
        found = [
            arm_types.view(self.arm.state.resources, r)
            for rid, r in sorted(self.arm.state.resources.items())
            if rid.startswith(prefix) and not arm_types.is_extension(rid)
        ]
        wanted = query.get("$filter", [""])[0]
        if wanted.startswith("resourceType eq "):
            rtype = wanted.split("'")[1].lower()
            found = [r for r in found if str(r.get("type", "")).lower() == rtype]
        return self._send(200, {"value": found})

    def _group(self, sub: str, name: str, body: dict[str, Any]) -> None:
        key = name.lower()
        groups = self.arm.state.groups
        existing = groups.get(key)
        if self.command == "HEAD":
            return self._send(204 if existing else 404)
        if self.command == "GET":
            if existing is None:
                return self._error(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
            return self._send(200, existing)
        if self.command == "PUT":
            if not body.get("location"):
                return self._error(400, "LocationRequired", "The location property is required for this definition.")
            if existing is not None and existing["properties"]["provisioningState"] == "Deleting":
                return self._error(
                    409, "ResourceGroupBeingDeleted", f"The resource group '{name}' is in deprovisioning state."
                )
            if existing is not None and _location(body["location"]) != existing["location"]:
                return self._error(
                    409,
                    "InvalidResourceGroupLocation",
                    f"Invalid resource group location '{body['location']}'. The Resource group already "
                    f"exists in location '{existing['location']}'.",
                )
            group = self._group_body(
                sub,
                existing["name"] if existing else name,
                _location(body["location"]) or "",
                body.get("tags") or {},
                "Succeeded",
            )
            groups[key] = group
            return self._send(200 if existing else 201, group)
        if self.command == "PATCH":
            if existing is None:
                return self._error(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
            if "tags" in body:
                existing["tags"] = body["tags"] or {}
            return self._send(200, existing)
        if self.command == "DELETE":
            if existing is None:
                return self._error(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
            existing["properties"]["provisioningState"] = "Deleting"
            prefix = existing["id"].lower() + "/"

            def done() -> None:
                groups.pop(key, None)
                for rid in [r for r in self.arm.state.resources if r.startswith(prefix)]:
                    del self.arm.state.resources[rid]

            return self._send(202, None, self._operation(done, "operationresults"))
        return self._error(405, "MethodNotAllowed", self.command)

    def _resource(self, parts: list[str], body: dict[str, Any]) -> None:
        group_name = parts[3]
        namespace, rest = parts[5], parts[6:]
        rtype = "/".join([namespace, *rest[0::2]])
        rid = "/" + "/".join(parts)
        key = rid.lower()
        resources = self.arm.state.resources
        existing = resources.get(key)
        group = self.arm.state.groups.get(group_name.lower())
        if self.command == "HEAD":
            return self._send(204 if existing else 404)
        if self.command in {"GET", "PATCH", "DELETE"} and existing is None:
            if group is None:
                return self._error(404, "ResourceGroupNotFound", f"Resource group '{group_name}' could not be found.")
            return self._error(
                404,
                "ResourceNotFound",
                f"The Resource '{rtype}/{rest[-1]}' under resource group '{group_name}' was not found.",
            )
        if self.command == "GET":
            assert existing is not None
            return self._send(200, arm_types.view(resources, existing))
        if self.command == "PUT":
            if group is None:
                return self._error(404, "ResourceGroupNotFound", f"Resource group '{group_name}' could not be found.")
            if len(rest) > 2 and ("/" + "/".join(parts[:-2])).lower() not in resources:
                return self._error(404, "ParentResourceNotFound", f"Parent resource of '{rid}' not found.")
            try:
                arm_types.check_put(rtype, key, body, existing, resources)
            except arm_types.ArmError as err:
                return self._error(err.status, err.code, err.message)
            resource = self._resource_body(rid, rtype, rest[-1], body, existing)
            arm_types.server_properties(rtype, rid, rest[-1], resource, existing, resources)
            if rtype.lower() == arm_types.VNET:
                arm_types.sync_subnets(resources, rid, body)
            resource["properties"]["provisioningState"] = "Creating" if existing is None else "Updating"
            resources[key] = resource

            def done() -> None:
                resource["properties"]["provisioningState"] = "Succeeded"

            answer = arm_types.view(resources, resource)
            return self._send(200 if existing else 201, answer, self._operation(done, "asyncoperations"))
        if self.command == "PATCH":
            assert existing is not None
            if "tags" in body:
                existing["tags"] = body["tags"] or {}
            for k in ("sku", "kind"):
                if k in body:
                    existing[k] = body[k]
            existing["properties"].update(body.get("properties") or {})
            return self._send(200, existing)
        if self.command == "DELETE":

            def done() -> None:
                for r in [r for r in resources if r == key or r.startswith(key + "/")]:
                    del resources[r]

            return self._send(202, None, self._operation(done, "operationresults"))
        return self._error(405, "MethodNotAllowed", self.command)

    def _role_assignment(self, parts: list[str], body: dict[str, Any]) -> None:
        try:
            status, answer = arm_types.role_assignment(
                self.command, parts, body, self.arm.state.groups, self.arm.state.resources
            )
        except arm_types.ArmError as err:
            return self._error(err.status, err.code, err.message)
        return self._send(status, answer)

    def _resource_body(
        self, rid: str, rtype: str, name: str, body: dict[str, Any], existing: dict[str, Any] | None
    ) -> dict[str, Any]:
        """What ARM stores: the body plus the defaults a resource provider adds."""
        properties = dict(body.get("properties") or {})
        resource: dict[str, Any] = {"id": rid, "name": name, "type": rtype, "tags": body.get("tags") or {}}
        if body.get("location"):
            resource["location"] = _location(body["location"])
        if rtype.lower() == "microsoft.storage/storageaccounts":
            # like the real service: defaults the user never wrote, and normalised enum casing
            properties.setdefault("minimumTlsVersion", "TLS1_0")
            properties.setdefault("allowBlobPublicAccess", False)
            properties.setdefault("encryption", {"keySource": "Microsoft.Storage", "services": {}})
            properties["encryption"].setdefault("services", {})
            properties["encryption"]["services"].setdefault("blob", {"enabled": True, "keyType": "Account"})
            properties["primaryEndpoints"] = {"blob": f"https://{name}.blob.core.windows.net/"}
            properties["creationTime"] = (existing or {}).get("properties", {}).get("creationTime") or (
                datetime.datetime.now(datetime.UTC).isoformat()
            )
            if "accessTier" in properties:
                properties["accessTier"] = str(properties["accessTier"]).capitalize()
        if body.get("sku"):
            sku = dict(body["sku"])
            if "name" in sku and "_" in sku["name"]:
                sku.setdefault("tier", sku["name"].split("_")[0])
            resource["sku"] = sku
        if body.get("kind"):
            resource["kind"] = body["kind"]
        resource["properties"] = properties
        return resource

    def _tags(self, scope: str, body: dict[str, Any]) -> None:
        low = scope.lower()
        target = self.arm.state.resources.get(low)
        if target is None:
            parts = [p for p in low.split("/") if p]
            if len(parts) == 4 and parts[2] == "resourcegroups":
                target = self.arm.state.groups.get(parts[3])
        if target is None:
            return self._error(404, "ResourceNotFound", f"The resource '{scope}' was not found.")
        if self.command == "PUT":
            target["tags"] = dict((body.get("properties") or {}).get("tags") or {})
        elif self.command == "PATCH":
            new = dict((body.get("properties") or {}).get("tags") or {})
            op = body.get("operation", "Merge")
            if op == "Replace":
                target["tags"] = new
            elif op == "Delete":
                target["tags"] = {k: v for k, v in target["tags"].items() if k not in new}
            else:
                target["tags"] = {**target["tags"], **new}
        elif self.command == "DELETE":
            target["tags"] = {}
        return self._send(
            200,
            {
                "id": f"{scope}/providers/Microsoft.Resources/tags/default",
                "name": "default",
                "type": "Microsoft.Resources/tags",
                "properties": {"tags": target.get("tags") or {}},
            },
        )
