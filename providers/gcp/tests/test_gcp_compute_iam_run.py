"""What the conformance kit leaves out for the compute, IAM and Cloud Run types, through the
engine and the real googleapiclient against the Google REST test server: an IAM member written
while someone else changes the policy (the etag guard, others' members kept), a subnetwork range
that may only grow, 429 from the server retried, and the attributes a plan knows before an
object exists or across an update."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cloudorch_gcp import GcpProvider
from cloudorch_gcp.faults import FaultHttp
from cloudorch_gcp.testserver import GoogleServer
from google_testkit import sdk

from cloudorch.errors import CloudorchError
from cloudorch.provider.contract import RECOMPUTED, Observed
from cloudorch.run.apply import apply
from cloudorch.run.options import RunOptions
from cloudorch.run.plan import plan

PROJECT = "p"
OWNER = "user:owner@example.com"  # every project of the test server starts with this owner


def _opts(tmp_path: Path, server: GoogleServer, resources: dict[str, Any]) -> RunOptions:
    path = tmp_path / "plan.yaml"
    gcp = {"project": PROJECT, "api_endpoint": server.url, "operation_poll_interval": 0}
    path.write_text(json.dumps({"version": 1, "name": "gcpb", "resources": resources, "providers": {"gcp": gcp}}))
    return RunOptions(plan_file=path, command="test")


def _members(server: GoogleServer) -> dict[str, list[str]]:
    policy = sdk(server, "cloudresourcemanager", "v1").projects().getIamPolicy(resource=PROJECT, body={}).execute()
    return {b["role"]: sorted(b["members"]) for b in policy.get("bindings") or []}


def _member(role: str, who: str) -> dict[str, Any]:
    return {"type": "gcp.project_iam_member", "properties": {"role": role, "member": who}}


def test_iam_member_redoes_its_write_when_another_writer_changed_the_policy(
    tmp_path: Path, google_api: GoogleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # another writer (gcloud, another apply) grants someone right between our read and our write
    other = sdk(google_api, "cloudresourcemanager", "v1").projects()
    raced: list[str] = []
    answers: list[int] = []  # the statuses our policy writes got

    def race(uri: str, method: str, send: Any) -> Any:
        writes = uri.split("?")[0].endswith(":setIamPolicy")
        if writes and not raced:
            raced.append(uri)
            policy = other.getIamPolicy(resource=PROJECT, body={}).execute()
            policy["bindings"].append({"role": "roles/viewer", "members": ["user:intruder@example.com"]})
            other.setIamPolicy(resource=PROJECT, body={"policy": policy}).execute()
        answer = send()
        if writes:
            answers.append(int(answer[0].status))
        return answer

    monkeypatch.setattr(GcpProvider, "http_wrapper", lambda http: FaultHttp(http, race))
    members = {f"m{i}": _member("roles/viewer", f"user:m{i}@example.com") for i in range(4)}
    opts = _opts(tmp_path, google_api, {**members, "runner": _member("roles/run.invoker", "user:run@example.com")})
    result = apply(opts)
    assert result is not None and result.ok, result and result.failed
    assert raced, "the race never happened"
    seen = _members(google_api)
    assert seen["roles/owner"] == [OWNER]
    assert seen["roles/viewer"] == sorted(["user:intruder@example.com", *(f"user:m{i}@example.com" for i in range(4))])
    assert seen["roles/run.invoker"] == ["user:run@example.com"]
    assert answers[0] == 409 and answers[-1] == 200, answers  # the stale write was refused, then redone
    assert [c for c in plan(opts).changeset.changes if c.is_change] == []

    monkeypatch.setattr(GcpProvider, "http_wrapper", None)
    result = apply(_opts(tmp_path, google_api, {"m0": members["m0"]}))  # the others go
    assert result is not None and result.ok
    seen = _members(google_api)
    # only what cloudorch made goes: the owner and the intruder stay, an emptied binding is dropped
    assert seen == {"roles/owner": [OWNER], "roles/viewer": ["user:intruder@example.com", "user:m0@example.com"]}


def test_subnetwork_range_only_grows_in_place(tmp_path: Path, google_api: GoogleServer) -> None:
    net = {"type": "gcp.compute_network", "properties": {"name": "vpc", "auto_create_subnetworks": False}}
    sub = {"type": "gcp.compute_subnetwork",
           "properties": {"name": "app", "region": "europe-west1", "network": "${resources.vpc.id}",
                          "ip_cidr_range": "10.0.0.0/24"}}  # fmt: skip
    result = apply(_opts(tmp_path, google_api, {"vpc": net, "app": sub}))
    assert result is not None and result.ok, result and result.failed

    def with_range(cidr: str) -> RunOptions:
        moved = {**sub, "properties": {**sub["properties"], "ip_cidr_range": cidr}}
        return _opts(tmp_path, google_api, {"vpc": net, "app": moved})

    calls = google_api.calls().get("compute.subnetworks.expandIpCidrRange", 0)
    result = apply(with_range("10.0.2.0/24"))  # elsewhere, not around the old range
    assert result is not None and not result.ok
    message = str(result.failed["app"])
    assert "10.0.2.0/24" in message and "can only grow" in message
    assert google_api.calls().get("compute.subnetworks.expandIpCidrRange", 0) == calls  # refused before any call
    result = apply(with_range("10.0.0.0/20"))
    assert result is not None and result.ok, result and result.failed
    raw = sdk(google_api, "compute", "v1").subnetworks().get(project=PROJECT, region="europe-west1",
                                                             subnetwork="app").execute()  # fmt: skip
    assert raw["ipCidrRange"] == "10.0.0.0/20"
    assert google_api.calls()["compute.subnetworks.expandIpCidrRange"] == calls + 1


SUBNETWORK = {"name": "sub-t", "region": "europe-west1", "network": "net0", "ip_cidr_range": "10.5.0.0/24"}
SERVICE = {"name": "web-t", "location": "europe-west1", "containers": [{"image": "europe-docker.pkg.dev/p/r/web:1"}]}
#: type -> (properties, a regex of its create's path, which the server answers 429 twice)
CREATES = {
    "gcp.compute_network": ({"name": "net-t", "auto_create_subnetworks": False}, r"/global/networks$"),
    "gcp.compute_firewall": ({"name": "fw-t", "network": "net0", "allow": [{"protocol": "tcp"}]}, r"/firewalls$"),
    "gcp.compute_subnetwork": (SUBNETWORK, r"/subnetworks$"),
    "gcp.service_account": ({"account_id": "runner-t"}, r"/serviceAccounts$"),
    "gcp.project_iam_member": ({"role": "roles/viewer", "member": "user:t@example.com"}, r":setIamPolicy$"),
    "gcp.cloud_run_service": (SERVICE, r"/services$"),
}


@pytest.mark.parametrize("type_name", sorted(CREATES))
def test_server_throttling_is_retried(type_name: str, tmp_path: Path, google_api: GoogleServer) -> None:
    sdk(google_api, "compute", "v1").networks().insert(project=PROJECT, body={"name": "net0"}).execute()
    props, path = CREATES[type_name]
    google_api.fail(429, times=2, retry_after="0", path=path)
    result = apply(_opts(tmp_path, google_api, {"subject": {"type": type_name, "properties": props}}))
    assert result is not None and result.ok, result and result.failed
    assert google_api.calls()["fault"] == 2  # both answered 429, the third try went through


def test_plan_knows_ids_before_create_and_keeps_them_across_updates(gcp_rest: GcpProvider) -> None:
    net = gcp_rest.resource_type("gcp.compute_network")
    assert net.plan_create({"name": "vpc", "auto_create_subnetworks": False}) == {
        "id": "projects/test-project/global/networks/vpc", "name": "vpc"}  # fmt: skip
    account = gcp_rest.resource_type("gcp.service_account")
    email = "runner@test-project.iam.gserviceaccount.com"
    assert account.plan_create({"account_id": "runner"})["member"] == f"serviceAccount:{email}"

    # a rollout makes a new revision; the URL and ids stay known
    run = gcp_rest.resource_type("gcp.cloud_run_service")
    prior = Observed("projects/p/locations/l/services/web", {"containers": []},
                     {"id": "projects/p/locations/l/services/web", "name": "web", "uri": "https://web.a.run.app",
                      "latest_ready_revision": "web-00001-abc", "uid": "u"})  # fmt: skip
    after = run.plan_update(prior, {"containers": [{"image": "x:2"}]})
    assert after["latest_ready_revision"] is RECOMPUTED
    assert after["uri"] == "https://web.a.run.app" and after["id"] == prior.id
    seen = account.plan_update(
        Observed("i", {"display_name": "a"}, {"email": email, "unique_id": "1"}), {"display_name": "b"}
    )
    assert seen == {"email": email, "unique_id": "1"}


def test_a_bad_import_id_is_a_located_error(gcp_rest: GcpProvider) -> None:
    for type_name, bad in [("gcp.project_iam_member", "p/viewer"), ("gcp.compute_subnetwork", "vpc"),
                           ("gcp.service_account", "runner"), ("gcp.cloud_run_service", "web")]:  # fmt: skip
        with pytest.raises(CloudorchError) as raised:
            gcp_rest.resource_type(type_name).import_("subject", bad)
        assert raised.value.hint, type_name
