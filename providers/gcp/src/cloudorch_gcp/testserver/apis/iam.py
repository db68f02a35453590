"""IAM v1 service accounts on the test server: what the service does beyond the generic store.

A create names the account by `accountId` in its body (not by a `...Id` query parameter) and the
service derives the rest: the email `ID@PROJECT.iam.gserviceaccount.com`, the resource name
`projects/P/serviceAccounts/EMAIL`, a numeric unique id and an OAuth2 client id.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING

from cloudorch_gcp.testserver.apis import ApiQuirks, quirks

if TYPE_CHECKING:
    from cloudorch_gcp.testserver.apis import Generic
    from cloudorch_gcp.testserver.server import Answer, Call

iam = quirks("iam", ApiQuirks(style="resource_name"))


@iam.handler("iam.projects.serviceAccounts.create")
def create_account(call: Call, generic: Generic) -> Answer:
    from cloudorch_gcp.testserver.server import Answer, ApiError

    account_id = str(call.body.get("accountId") or "")
    if not re.fullmatch(r"[a-z]([-a-z0-9]{4,28}[a-z0-9])", account_id):
        raise ApiError(400, f"Invalid accountId {account_id!r}: 6-30 characters, [a-z]([-a-z0-9]*[a-z0-9]).")
    project = call.relative.split("/")[1]
    email = f"{account_id}@{project}.iam.gserviceaccount.com"
    relative = f"projects/{project}/serviceAccounts/{email}"
    given = dict(call.body.get("serviceAccount") or {})
    unique_id = str(random.randrange(10**20, 10**21))
    account = {
        "name": relative,
        "projectId": project,
        "uniqueId": unique_id,
        "email": email,
        "oauth2ClientId": unique_id,
        "etag": "MDEwMjE5MjA=",
    }
    for key in ("displayName", "description"):
        if given.get(key):
            account[key] = given[key]
    with call.store.lock:
        if call.store.get("iam", relative) is not None:
            raise ApiError(409, f"Service account {account_id} already exists within project projects/{project}.")
        call.store.put("iam", relative, account)
    return Answer(200, account)
