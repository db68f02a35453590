"""Helpers of the GCP tests that use the Google REST test server: the cloud's own SDK, apart from
the provider under test, for censuses and out-of-band changes."""

from __future__ import annotations

from typing import Any

from cloudorch_gcp.testserver import GoogleServer


def sdk(server: GoogleServer, api: str, version: str) -> Any:
    """A googleapiclient service of `api` `version` on the test server, built as a user would,
    sharing nothing with the provider (its own connection, no fault seam)."""
    import httplib2
    from googleapiclient.discovery import build

    options = {"api_endpoint": server.endpoint(api, version)}
    return build(api, version, static_discovery=True, http=httplib2.Http(), client_options=options)


def exists(server: GoogleServer, api: str, relative: str) -> int:
    """1 if the server holds a resource at `relative` (`projects/p/topics/t`), else 0."""
    with server.store.lock:
        return int(server.store.get(api, relative) is not None)
