"""Cloud Resource Manager v1 project IAM policies on the test server.

Every project exists and starts with one owner binding (so a test can see a writer leave
others' members alone). `setIamPolicy` is guarded by the policy's etag as the service guards it:
a write naming an etag other than the current one answers 409 ABORTED; each write gets a new
etag; bindings left with no member are dropped.
"""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any

from cloudorch_gcp.testserver.apis import ApiQuirks, quirks

if TYPE_CHECKING:
    from cloudorch_gcp.testserver.apis import Generic
    from cloudorch_gcp.testserver.server import Answer, Call, Store

crm = quirks("cloudresourcemanager", ApiQuirks(style="resource_name"))

#: the owner every project starts with
OWNER = "user:owner@example.com"


def _etag() -> str:
    return base64.b64encode(uuid.uuid4().bytes[:8]).decode()


def policy_of(store: Store, project: str) -> dict[str, Any]:
    """The project's policy (made on first use), the live dict the store holds."""
    key = f"projects/{project}/iamPolicy"
    policy = store.get("cloudresourcemanager", key)
    if policy is None:
        policy = {"version": 1, "etag": _etag(), "bindings": [{"role": "roles/owner", "members": [OWNER]}]}
        store.put("cloudresourcemanager", key, policy)
    return policy


@crm.handler("cloudresourcemanager.projects.getIamPolicy")
def get_policy(call: Call, generic: Generic) -> Answer:
    import json

    from cloudorch_gcp.testserver.server import Answer

    with call.store.lock:
        return Answer(200, json.loads(json.dumps(policy_of(call.store, call.relative.split("/")[1]))))


@crm.handler("cloudresourcemanager.projects.setIamPolicy")
def set_policy(call: Call, generic: Generic) -> Answer:
    import json

    from cloudorch_gcp.testserver.server import Answer, ApiError

    given = call.body.get("policy")
    if not isinstance(given, dict):
        raise ApiError(400, "Request contains an invalid argument: `policy` is required.")
    project = call.relative.split("/")[1]
    with call.store.lock:
        current = policy_of(call.store, project)
        if given.get("etag") and given["etag"] != current["etag"]:
            raise ApiError(409, "There were concurrent policy changes. Please retry the whole read-modify-write "
                           "with exponential backoff.", status="ABORTED")  # fmt: skip
        bindings = []
        for b in given.get("bindings") or []:
            if not isinstance(b, dict) or not isinstance(b.get("role"), str):
                raise ApiError(400, "Request contains an invalid argument: a binding needs a role.")
            members = [m for m in b.get("members") or [] if isinstance(m, str)]
            if members:
                bindings.append({**b, "members": sorted(set(members))})
        policy = {"version": int(given.get("version") or 1), "etag": _etag(), "bindings": bindings}
        call.store.put("cloudresourcemanager", f"projects/{project}/iamPolicy", policy)
        return Answer(200, json.loads(json.dumps(policy)))
