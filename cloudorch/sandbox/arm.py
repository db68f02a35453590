"""The sandbox's Azure Resource Manager: a small ARM-compatible HTTPS server, run as its own process.

No public emulator of Azure Resource Manager exists, so the sandbox serves the routes the `azure` provider
uses, with ARM's documented shapes: resource groups, generic resources by id, tags at scope and
resource-provider API versions, and the resource providers' own behaviour for the types the
provider knows by name (`cloudorch/sandbox/arm_types.py`: server-set properties, subnets inside
their network, role assignments at any scope). A storage account's PUT is answered as ARM does,
201 + Azure-AsyncOperation (the operation has already succeeded when polled); everything else
completes synchronously. Everything lives in memory. The SDK refuses bearer tokens over http,
hence HTTPS with a self-signed certificate made by `make_certificate`. The fault-injecting test
double is `cloudorch/testing/arm.py`.

Run: `python -m cloudorch.sandbox.arm --port P --cert CERT --key KEY`.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cloudorch.sandbox import arm_types

#: API versions answered for GET /subscriptions/{s}/providers/{namespace}
_API_VERSIONS = {
    **{ns.lower(): (ns, types) for ns, types in arm_types.API_VERSIONS.items()},
    "microsoft.storage": ("Microsoft.Storage", {"storageAccounts": ["2024-01-01", "2023-05-01"]}),
    "microsoft.web": ("Microsoft.Web", {"sites": ["2024-04-01"], "serverfarms": ["2024-04-01"]}),
}


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for IP:127.0.0.1 and localhost, valid 30 days; returns (cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloudorch sandbox ARM")])
    now = datetime.datetime.now(datetime.UTC)
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    from cloudorch.sandbox.files import private_dir, write_atomic

    private_dir(directory)
    cert_path, key_path = directory / "arm-ca.pem", directory / "arm-key.pem"
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    pkcs8, no_password = serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    key_pem = key.private_bytes(serialization.Encoding.PEM, pkcs8, no_password)
    write_atomic(key_path, key_pem, 0o600)
    return cert_path, key_path


class _Store:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.groups: dict[str, dict[str, Any]] = {}  # lower name -> body
        self.resources: dict[str, dict[str, Any]] = {}  # lower id -> body


class _Handler(BaseHTTPRequestHandler):
    store: _Store
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every request waits ~40 ms for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"error": {"code": code, "message": message}})

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else {}
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        low = [p.lower() for p in parts]
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            return self._error(401, "AuthenticationFailed", "The 'Authorization' header is missing.")
        with self.store.lock:
            if len(parts) < 2 or low[0] != "subscriptions":
                return self._error(404, "InvalidResourceType", f"no route for {self.path}")
            if low[-3:] == ["microsoft.resources", "tags", "default"]:
                return self._tags("/" + "/".join(parts[:-4]), body)
            if arm_types.is_role_assignment(low):
                return self._role_assignment(parts, body)
            if self.command == "GET" and arm_types.is_role_assignment_list(low):
                return self._send(200, arm_types.list_role_assignments(parts, self.store.resources))
            if len(parts) == 6 and low[2:5] == ["providers", "microsoft.resources", "asyncoperations"]:
                return self._send(200, {"status": "Succeeded"})  # every operation is done when polled
            if len(parts) == 4 and low[2] == "providers":
                return self._provider(low[3])
            if len(parts) == 3 and low[2] == "resourcegroups":
                groups = sorted(self.store.groups.values(), key=lambda g: str(g["name"]).lower())
                return self._send(200, {"value": groups})
            if len(parts) == 4 and low[2] == "resourcegroups":
                return self._group(parts[1], parts[3], body)
            if len(parts) >= 8 and low[2] == "resourcegroups" and low[4] == "providers" and len(parts) % 2 == 0:
                return self._resource(parts, body)
            return self._error(404, "InvalidResourceType", f"no route for {self.path}")

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_POST = _handle

    def _provider(self, namespace: str) -> None:
        known = _API_VERSIONS.get(namespace)
        if known is None:
            return self._error(404, "InvalidResourceNamespace", f"The resource namespace '{namespace}' is invalid.")
        ns, types = known
        rts = [{"resourceType": t, "apiVersions": v, "locations": []} for t, v in types.items()]
        return self._send(200, {"namespace": ns, "registrationState": "Registered", "resourceTypes": rts})

    def _group(self, sub: str, name: str, body: dict[str, Any]) -> None:
        key, groups = name.lower(), self.store.groups
        existing = groups.get(key)
        if self.command == "HEAD":
            return self._send(204 if existing else 404)
        if self.command in {"GET", "PATCH", "DELETE"} and existing is None:
            return self._error(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
        if self.command == "GET":
            return self._send(200, existing)
        if self.command == "PUT":
            if not body.get("location"):
                return self._error(400, "LocationRequired", "The location property is required for this definition.")
            groups[key] = {
                "id": f"/subscriptions/{sub}/resourceGroups/{existing['name'] if existing else name}",
                "name": existing["name"] if existing else name,
                "type": "Microsoft.Resources/resourceGroups",
                "location": str(body["location"]).replace(" ", "").lower(),
                "tags": body.get("tags") or {},
                "properties": {"provisioningState": "Succeeded"},
            }
            return self._send(200 if existing else 201, groups[key])
        assert existing is not None
        if self.command == "PATCH":
            if "tags" in body:
                existing["tags"] = body["tags"] or {}
            return self._send(200, existing)
        if self.command == "DELETE":
            del groups[key]
            prefix = str(existing["id"]).lower() + "/"
            for rid in [r for r in self.store.resources if r.startswith(prefix)]:
                del self.store.resources[rid]
            return self._send(200)
        return self._error(405, "MethodNotAllowed", self.command)

    def _resource(self, parts: list[str], body: dict[str, Any]) -> None:
        rid = "/" + "/".join(parts)
        key, resources = rid.lower(), self.store.resources
        existing = resources.get(key)
        if self.store.groups.get(parts[3].lower()) is None and self.command != "DELETE":
            return self._error(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")
        if self.command == "HEAD":
            return self._send(204 if existing else 404)
        if self.command in {"GET", "PATCH"} and existing is None:
            return self._error(404, "ResourceNotFound", f"The Resource '{rid}' was not found.")
        if self.command == "GET":
            assert existing is not None
            return self._send(200, arm_types.view(resources, existing))
        if self.command == "PUT":
            rtype = "/".join([parts[5], *parts[6::2]])
            if len(parts) > 8 and ("/" + "/".join(parts[:-2])).lower() not in resources:
                return self._error(404, "ParentResourceNotFound", f"Parent resource of '{rid}' not found.")
            try:
                arm_types.check_put(rtype, key, body, existing, resources)
            except arm_types.ArmError as err:
                return self._error(err.status, err.code, err.message)
            resource: dict[str, Any] = {
                "id": rid,
                "name": parts[-1],
                "type": rtype,
                "tags": body.get("tags") or {},
                "properties": {**(body.get("properties") or {}), "provisioningState": "Succeeded"},
            }
            for k in ("location", "sku", "kind"):
                if body.get(k):
                    resource[k] = body[k]
            arm_types.server_properties(rtype, rid, parts[-1], resource, existing, resources)
            if rtype.lower() == arm_types.VNET:
                arm_types.sync_subnets(resources, rid, body)
            resources[key] = resource
            headers = None
            if rtype.lower() == arm_types.STORAGE:
                # asynchronous, as ARM answers it: the client polls the operation before it reads
                operation = f"/subscriptions/{parts[1]}/providers/Microsoft.Resources/asyncoperations/{parts[-1]}"
                host = self.headers.get("Host", "127.0.0.1")
                headers = {"Azure-AsyncOperation": f"https://{host}{operation}?api-version=2024-03-01"}
            return self._send(200 if existing else 201, arm_types.view(resources, resource), headers)
        if self.command == "PATCH":
            assert existing is not None
            for k in ("tags", "sku", "kind"):
                if k in body:
                    existing[k] = body[k]
            existing["properties"].update(body.get("properties") or {})
            return self._send(200, existing)
        if self.command == "DELETE":
            if existing is None:
                return self._send(204)
            for r in [r for r in resources if r == key or r.startswith(key + "/")]:
                del resources[r]
            return self._send(200)
        return self._error(405, "MethodNotAllowed", self.command)

    def _role_assignment(self, parts: list[str], body: dict[str, Any]) -> None:
        try:
            status, answer = arm_types.role_assignment(
                self.command, parts, body, self.store.groups, self.store.resources
            )
        except arm_types.ArmError as err:
            return self._error(err.status, err.code, err.message)
        return self._send(status, answer)

    def _tags(self, scope: str, body: dict[str, Any]) -> None:
        low = scope.lower()
        target = self.store.resources.get(low)
        parts = [p for p in low.split("/") if p]
        if target is None and len(parts) == 4 and parts[2] == "resourcegroups":
            target = self.store.groups.get(parts[3])
        if target is None:
            return self._error(404, "ResourceNotFound", f"The resource '{scope}' was not found.")
        new = dict((body.get("properties") or {}).get("tags") or {})
        operation = body.get("operation", "Merge") if self.command == "PATCH" else "Replace"
        if self.command == "DELETE":
            target["tags"] = {}
        elif operation == "Replace":
            target["tags"] = new
        elif operation == "Delete":
            target["tags"] = {k: v for k, v in target["tags"].items() if k not in new}
        else:
            target["tags"] = {**target["tags"], **new}
        tag_doc = {"id": f"{scope}/providers/Microsoft.Resources/tags/default", "name": "default"}
        return self._send(200, {**tag_doc, "properties": {"tags": target.get("tags") or {}}})


def make_server(port: int, cert: Path, key: Path) -> ThreadingHTTPServer:
    """The HTTPS server, bound to 127.0.0.1:`port` (0: any free port), not yet serving."""

    class Handler(_Handler):
        store = _Store()

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    return httpd


def serve(port: int, cert: Path, key: Path) -> None:
    """Serve until killed."""
    make_server(port, cert, key).serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cloudorch.sandbox.arm", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    args = parser.parse_args(argv)
    serve(args.port, args.cert, args.key)


if __name__ == "__main__":
    main()
