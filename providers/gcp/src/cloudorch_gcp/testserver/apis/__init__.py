"""Per-API quirks of the Google REST test server: the seam where an API's own behaviour goes.

The server (`cloudorch_gcp.testserver.server`) serves every method of every discovery document
generically: create/insert, get, list, patch/update and delete on an in-memory collection store,
long-running operations in the API's style. What one API does beyond that lives in a module of
its own in this package, which registers itself when imported (every module here is imported by
`load_all`, so adding a file is enough; nothing else needs editing):

    from cloudorch_gcp.testserver.apis import ApiQuirks, quirks

    run = quirks("run", ApiQuirks(style="resource_name"))  # once per API; compute is "compute"

    @run.handler("run.projects.locations.services.create")
    def create_service(call: Call, generic: Generic) -> Answer:
        call.body.setdefault("ingress", "INGRESS_TRAFFIC_ALL")  # a default the service fills in
        return generic(call)                                      # then the store's own create

    @run.on_new
    def fill(call: Call, resource: dict[str, Any]) -> None:     # every new resource of this API
        resource["uri"] = f"https://{resource['name'].rsplit('/', 1)[-1]}.run.app"

A handler gets the `Call` (method, path variables, query, body, the store) and `generic`, the
store's behaviour for the method's verb; it may change the call and delegate, answer itself
(`Answer(200, {...})`), or raise `ApiError(404, "...")` for Google's error shape. `call.store`
gives the resources (`get`, `put`, `delete`, `children`) for cross-collection rules (a
subscription needs its topic). Methods no handler and no generic verb serve answer 501.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from cloudorch_gcp.testserver.server import Answer, Call

    Generic = Callable[[Call], Answer]
    Handler = Callable[[Call, Generic], Answer]
    NewHook = Callable[[Call, dict[str, Any]], None]


@dataclass
class ApiQuirks:
    """What one API does beyond the generic store.

    `style`: `compute` (short `name`, numeric `id`, `selfLink`, `kind`, `compute#operation`s) or
    `resource_name` (the full resource name in `name`, google.longrunning operations).
    """

    style: Literal["compute", "resource_name"] = "resource_name"
    handlers: dict[str, Handler] = field(default_factory=dict)
    new_hooks: list[NewHook] = field(default_factory=list)

    def handler(self, method_id: str) -> Callable[[Handler], Handler]:
        """Register `fn(call, generic)` as the server's answer to the discovery method `method_id`."""

        def register(fn: Handler) -> Handler:
            self.handlers[method_id] = fn
            return fn

        return register

    def on_new(self, fn: NewHook) -> NewHook:
        """Register `fn(call, resource)`, called on each resource this API creates, after the
        server set its own fields and before it is stored (server-side defaults go here)."""
        self.new_hooks.append(fn)
        return fn


_REGISTRY: dict[str, ApiQuirks] = {}
_LOADED = threading.Lock()
_DONE: list[bool] = []


def quirks(api: str, default: ApiQuirks | None = None) -> ApiQuirks:
    """The quirks of `api`, registered as `default` (or a plain `ApiQuirks`) on first use."""
    if api not in _REGISTRY:
        _REGISTRY[api] = default or ApiQuirks(style="compute" if api == "compute" else "resource_name")
    return _REGISTRY[api]


def load_all() -> None:
    """Import every module of this package once, so each registers its API's quirks."""
    with _LOADED:
        if _DONE:
            return
        for info in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{info.name}")
        _DONE.append(True)
