"""Cloud Run v2 services on the test server: what the service does beyond the generic store.

A new service gets its URL (`uri`, `urls`), the service's defaults (ingress from everywhere, a
container port 8080 named http1, generation 1) and its first revision, ready at once; each
update that changes the template rolls out the next revision (`latestReadyRevision`), so a
client can see a rollout happen.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from cloudorch_gcp.testserver.apis import ApiQuirks, quirks

if TYPE_CHECKING:
    from cloudorch_gcp.testserver.apis import Generic
    from cloudorch_gcp.testserver.server import Answer, Call

run = quirks("run", ApiQuirks(style="resource_name"))


def _revision(name: str, generation: int) -> str:
    suffix = hashlib.sha256(f"{name}:{generation}".encode()).hexdigest()[:3]
    return f"{name}/revisions/{name.rsplit('/', 1)[-1]}-{generation:05d}-{suffix}"


def _defaults(service: dict[str, Any]) -> None:
    template = service.get("template")
    containers = [c for c in (template or {}).get("containers") or [] if isinstance(c, dict)]
    service.setdefault("ingress", "INGRESS_TRAFFIC_ALL")
    for container in containers:
        if not container.get("ports") and len(containers) == 1:
            container["ports"] = [{"containerPort": 8080, "name": "http1"}]
        for port in container.get("ports") or []:
            port.setdefault("name", "http1")


def _ready(service: dict[str, Any], generation: int) -> None:
    revision = _revision(str(service["name"]), generation)
    service.update(
        generation=str(generation),
        observedGeneration=str(generation),
        latestCreatedRevision=revision,
        latestReadyRevision=revision,
        reconciling=False,
        terminalCondition={"type": "Ready", "state": "CONDITION_SUCCEEDED"},
        traffic=[{"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100}],
    )


@run.on_new
def new_service(call: Call, resource: dict[str, Any]) -> None:
    if call.method.resource != "projects.locations.services":
        return
    _defaults(resource)
    name = str(resource["name"])
    short, location = name.rsplit("/", 1)[-1], name.split("/")[3]
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    resource["uri"] = f"https://{short}-{digest}-{location[:2]}.a.run.app"
    resource["urls"] = [resource["uri"]]
    _ready(resource, 1)


@run.handler("run.projects.locations.services.patch")
def patch_service(call: Call, generic: Generic) -> Answer:
    from cloudorch_gcp.testserver.server import ApiError

    with call.store.lock:
        current = call.store.get("run", call.relative)
        if current is None:
            _, project, _, region, _, name = call.relative.split("/")
            raise ApiError(404, f"Resource '{name}' of kind 'SERVICE' in region '{region}' in project '{project}' "
                           "does not exist.")  # fmt: skip
        if "template" in call.body:
            probe = {"template": call.body["template"], "name": call.relative}
            _defaults(probe)
        before = current.get("template")
        answer = generic(call)
        updated = call.store.get("run", call.relative)
        if updated is not None and updated.get("template") != before:
            _ready(updated, int(updated.get("generation") or 1) + 1)
            for key in ("response", "_response"):
                if isinstance((answer.body or {}).get(key), dict):
                    answer.body[key].update({k: updated[k] for k in ("generation", "latestReadyRevision")})  # type: ignore[index]
        return answer
