"""The Google REST test server: Google's JSON APIs (Pub/Sub, Compute, IAM, Cloud Run, ...) in memory.

No public emulator serves these APIs, so cloudorch ships its own: the provider's tests and the
sandbox (`cloudorch sandbox`, as `python -m cloudorch_gcp.testserver --port P`) run the real
googleapiclient against it. It is driven by the discovery documents googleapiclient bundles:

- `routes`: each discovery method becomes a route (HTTP method + flat path) and a generic verb;
- `server`: the store and the generic verbs (create/insert with the id from the body `name` or a
  `...Id` query parameter, get, list with page tokens, patch/update with update masks, delete),
  Google's error shape, server-set fields (selfLink, id, creationTimestamp, etag, uid, ...), and
  long-running operations in the API's style (`compute#operation` for compute with
  global/regional/zonal `get` and `wait`; `google.longrunning.Operation` elsewhere, e.g. Cloud
  Run v2; APIs whose methods answer the resource, such as Pub/Sub and IAM, answer at once);
- `apis`: per-API quirks, one module per API, registered by decorators (see its docstring for
  how to add one: a new file in `cloudorch_gcp/testserver/apis/` is all it takes).

Test knobs (in process on `GoogleServer`, or over HTTP under `/_testserver/`): latency per call,
429/503 faults with Retry-After, operations that stay RUNNING for N polls or end in an error,
and a count of calls per method. URLs: `{url}/{api}/{servicePath}{path}`; `GoogleServer.endpoint`
gives a client's `api_endpoint`.
"""

from cloudorch_gcp.testserver.server import Answer, ApiError, Call, GoogleServer

__all__ = ["Answer", "ApiError", "Call", "GoogleServer"]
