"""The conformance kit (`cloudorch.testing.conformance`) on `gcp.compute_network`,
`gcp.compute_subnetwork`, `gcp.compute_firewall`, `gcp.service_account`,
`gcp.project_iam_member` and `gcp.cloud_run_service`, against the Google REST test server
(`cloudorch_gcp.testserver`), driven through the engine on generated plan files.

Faults go through `cloudorch_gcp.faults.WriteFaults` in front of the discovery clients' httplib2
connections (`GcpProvider.http_wrapper`); the crash check's subprocess reads
`CLOUDORCH_GCP_KILL_AFTER_CALLS`. Drift and censuses use googleapiclient as a user would
(`google_testkit.sdk`), never the type under test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from cloudorch_gcp import GcpProvider
from cloudorch_gcp.faults import WriteFaults
from cloudorch_gcp.testserver import GoogleServer
from google_testkit import sdk

from cloudorch.provider.contract import Observed, ResourceType
from cloudorch.testing.conformance import ConformanceEnv, ConformanceExample, ConformanceSuite

PROJECT = "conformance-project"
REGION = "europe-west1"
SEAM = WriteFaults()
#: the test server of the running test, and the SDK clients on it that drift and census use
_SERVER: list[GoogleServer] = []
_SDKS: dict[tuple[str, str], Any] = {}
PROVIDER = {"project": PROJECT, "api_endpoint": "{google_url}", "operation_poll_interval": 0.01}
NETWORK = f"projects/{PROJECT}/global/networks/conformance-net"


def _send(api: str, build: Any) -> Any:
    """One request through the cloud's own SDK, apart from the provider: `build(service)` makes it."""
    key = (_SERVER[0].url, api)
    if key not in _SDKS:
        _SDKS[key] = sdk(_SERVER[0], *api.split("/"))
    return build(_SDKS[key]).execute(num_retries=0)


def _exists(api: str, build: Any) -> int:
    from googleapiclient.errors import HttpError

    try:
        _send(api, build)
    except HttpError as exc:
        if int(exc.resp.status) == 404:
            return 0
        raise
    return 1


def _project(props: Mapping[str, Any]) -> str:
    return str(props.get("project") or PROJECT)


# --------------------------------------------------------------------------- censuses


def _networks(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return _exists("compute/v1", lambda s: s.networks().get(project=_project(props), network=props["name"]))


def _subnetworks(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return _exists("compute/v1", lambda s: s.subnetworks().get(project=_project(props), region=props["region"],
                                                               subnetwork=props["name"]))  # fmt: skip


def _firewalls(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    return _exists("compute/v1", lambda s: s.firewalls().get(project=_project(props), firewall=props["name"]))


def _accounts(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    project = _project(props)
    name = f"projects/{project}/serviceAccounts/{props['account_id']}@{project}.iam.gserviceaccount.com"
    return _exists("iam/v1", lambda s: s.projects().serviceAccounts().get(name=name))


def _policy(project: str) -> dict[str, Any]:
    got: dict[str, Any] = _send("cloudresourcemanager/v1", lambda s: s.projects().getIamPolicy(resource=project,
                                                                                                body={}))  # fmt: skip
    return got


def _members(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    bindings = _policy(_project(props)).get("bindings") or []
    return sum(b["members"].count(props["member"]) for b in bindings if b["role"] == props["role"])


def _services(rt: ResourceType[Any], address: str, props: Mapping[str, Any]) -> int:
    name = f"projects/{_project(props)}/locations/{props['location']}/services/{props['name']}"
    return _exists("run/v2", lambda s: s.projects().locations().services().get(name=name))


# --------------------------------------------------------------------------- drift, out of band


def _drift_network(rt: ResourceType[Any], seen: Observed) -> None:
    other = "GLOBAL" if seen.properties["routing_mode"] != "GLOBAL" else "REGIONAL"
    _send("compute/v1", lambda s: s.networks().patch(project=PROJECT, network=seen.properties["name"],
                                                     body={"routingConfig": {"routingMode": other}}))  # fmt: skip


def _drift_subnetwork(rt: ResourceType[Any], seen: Observed) -> None:
    flipped = not seen.properties["private_ip_google_access"]
    _send("compute/v1", lambda s: s.subnetworks().setPrivateIpGoogleAccess(
        project=PROJECT, region=REGION, subnetwork=seen.properties["name"],
        body={"privateIpGoogleAccess": flipped}))  # fmt: skip


def _drift_firewall(rt: ResourceType[Any], seen: Observed) -> None:
    _send("compute/v1", lambda s: s.firewalls().patch(project=PROJECT, firewall=seen.properties["name"],
                                                      body={"priority": 4242}))  # fmt: skip


def _drift_account(rt: ResourceType[Any], seen: Observed) -> None:
    body = {"serviceAccount": {"displayName": "changed by hand"}, "updateMask": "displayName"}
    _send("iam/v1", lambda s: s.projects().serviceAccounts().patch(name=seen.id, body=body))


def _drift_member(rt: ResourceType[Any], seen: Observed) -> None:
    # someone removes the grant by hand: a read-modify-write of the policy, as gcloud does it
    policy = _policy(PROJECT)
    for b in policy.get("bindings") or []:
        if b["role"] == seen.properties["role"]:
            b["members"] = [m for m in b["members"] if m != seen.properties["member"]]
    _send("cloudresourcemanager/v1",
          lambda s: s.projects().setIamPolicy(resource=PROJECT, body={"policy": policy}))  # fmt: skip


def _drift_service(rt: ResourceType[Any], seen: Observed) -> None:
    body = {"template": {"containers": [{"image": "europe-docker.pkg.dev/p/r/changed-by-hand:9"}]}}
    _send("run/v2", lambda s: s.projects().locations().services().patch(name=seen.id, body=body,
                                                                        updateMask="template"))  # fmt: skip


IMAGE = "europe-docker.pkg.dev/conformance/apps/web"


def _canonical(type_name: str, base: Mapping[str, Any]) -> Callable[[str, Any], Any]:
    """Compare a property as the planner does: validated by the type's model (rules and tag sets
    sorted, nested defaults filled in), on top of a valid property set."""

    def normalise(prop: str, value: Any) -> Any:
        from pydantic import ValidationError

        from cloudorch.provider.registry import Registry

        model = Registry().type_class(type_name).Properties
        try:
            valid = {k: v.replace("{run}", "cf1") if isinstance(v, str) else v for k, v in base.items()}
            return model.model_validate({**valid, prop: value}).model_dump(mode="json")[prop]
        except ValidationError:
            return value

    return normalise


SUBNETWORK = {"name": "s-{run}", "region": REGION, "network": "{network}", "ip_cidr_range": "10.1.0.0/24"}
FIREWALL = {"name": "f-{run}", "network": "{network}", "allow": [{"protocol": "tcp", "ports": ["22"]}]}
RUN = {"name": "r-{run}", "location": REGION, "containers": [{"image": f"{IMAGE}:1"}]}


class TestGcpComputeIamRunConformance(ConformanceSuite):
    # each operation's mutating calls are few, but every one hit is a whole apply: a seeded sample
    max_calls = 1
    examples = (
        ConformanceExample(
            type="gcp.compute_network",
            minimal={"name": "n-{run}", "auto_create_subnetworks": False},
            full={"name": "n-{run}", "auto_create_subnetworks": False, "routing_mode": "REGIONAL", "mtu": 1460,
                  "description": "made by the conformance kit"},
            updates={"routing_mode": "GLOBAL", "mtu": 1500},
            force_new={"name": "n2-{run}"},
            drift=_drift_network,
            census=_networks,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="gcp.compute_subnetwork",
            minimal=SUBNETWORK,
            full={"name": "s-{run}", "region": REGION, "network": "{network}", "ip_cidr_range": "10.1.0.0/24",
                  "secondary_ip_ranges": [{"range_name": "pods", "ip_cidr_range": "10.8.0.0/20"}],
                  "private_ip_google_access": False},
            updates={
                "ip_cidr_range": "10.1.0.0/22",
                "private_ip_google_access": True,
                "secondary_ip_ranges": [{"range_name": "pods", "ip_cidr_range": "10.8.0.0/20"},
                                        {"range_name": "services", "ip_cidr_range": "10.9.0.0/24"}],
            },
            force_new={"name": "s2-{run}"},
            drift=_drift_subnetwork,
            normalise=_canonical("gcp.compute_subnetwork", SUBNETWORK),
            census=_subnetworks,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="gcp.compute_firewall",
            minimal=FIREWALL,
            full={"name": "f-{run}", "network": "{network}", "priority": 1000,
                  "allow": [{"protocol": "tcp", "ports": ["80", "443"]}, {"protocol": "icmp"}],
                  "source_ranges": ["10.0.0.0/8"], "target_tags": ["web"], "description": "web in"},
            updates={
                "priority": 900,
                "allow": [{"protocol": "tcp", "ports": ["8080"]}],
                "source_ranges": ["10.0.0.0/8", "192.168.0.0/16"],
                "target_tags": ["web", "api"],
                "description": "web and api in",
                "disabled": True,
            },
            force_new={"name": "f2-{run}"},
            drift=_drift_firewall,
            normalise=_canonical("gcp.compute_firewall", FIREWALL),
            census=_firewalls,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="gcp.service_account",
            minimal={"account_id": "sa-{run}"},
            full={"account_id": "sa-{run}", "display_name": "Web runner", "description": "runs the web service"},
            updates={"display_name": "Web runtime", "description": "runs web"},
            force_new={"account_id": "sb-{run}"},
            drift=_drift_account,
            census=_accounts,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="gcp.project_iam_member",
            minimal={"role": "roles/viewer", "member": "user:u-{run}@example.com"},
            full={"project": PROJECT, "role": "roles/run.invoker", "member": "user:u-{run}@example.com"},
            force_new={"member": "user:v-{run}@example.com", "role": "roles/editor"},
            drift=_drift_member,
            census=_members,
            provider_config=PROVIDER,
        ),
        ConformanceExample(
            type="gcp.cloud_run_service",
            minimal=RUN,
            full={"name": "r-{run}", "location": REGION,
                  "containers": [{"image": f"{IMAGE}:1", "env": {"MODE": "prod"},
                                  "ports": [{"container_port": 8080, "name": "http1"}]}],
                  "min_instance_count": 0, "max_instance_count": 4, "ingress": "INGRESS_TRAFFIC_ALL",
                  "labels": {"app": "web"}},
            updates={
                "containers": [{"image": f"{IMAGE}:2", "env": {"MODE": "prod", "LOG": "debug"},
                                "ports": [{"container_port": 9090, "name": "http1"}]}],
                "max_instance_count": 8,
                "ingress": "INGRESS_TRAFFIC_INTERNAL_ONLY",
                "labels": {"app": "web", "tier": "front"},
            },
            force_new={"name": "r2-{run}", "location": "us-central1"},
            drift=_drift_service,
            normalise=_canonical("gcp.cloud_run_service", RUN),
            census=_services,
            provider_config=PROVIDER,
        ),
    )  # fmt: skip


@pytest.fixture
def conformance_env(google_server: GoogleServer, monkeypatch: pytest.MonkeyPatch) -> ConformanceEnv:
    """The seam on every discovery connection the engine makes; the network the subnetworks and
    firewalls join is made once, out of band (the session's server is shared: names are unique)."""
    _SERVER[:] = [google_server]
    if not _exists("compute/v1", lambda s: s.networks().get(project=PROJECT, network="conformance-net")):
        _send("compute/v1", lambda s: s.networks().insert(project=PROJECT, body={
            "name": "conformance-net", "autoCreateSubnetworks": False}))  # fmt: skip
    monkeypatch.setattr(GcpProvider, "http_wrapper", SEAM.wrap_http)
    return ConformanceEnv(seam=SEAM, values={"google_url": google_server.url, "network": NETWORK})
