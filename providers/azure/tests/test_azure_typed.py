"""What the conformance kit does not cover of the typed Azure types: a network's update keeping
the subnets managed apart, throttling and 503s retried by the engine, located validation errors,
role assignments' deterministic names and scopes, what a create leaves unknown, lookups, and the
sandbox's own ARM server serving the same routes (its storage account PUT polled asynchronously).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure_testkit import SUBSCRIPTION
from cloudorch_azure import AzureConfig, AzureProvider
from cloudorch_azure.provider import TOKEN_ENV
from cloudorch_azure.role_assignment import assignment_name
from test_azure_typed_conformance import PRINCIPAL, PRINCIPAL2, READER, RG, RG_ID, TENANT, provider_for

from cloudorch.errors import CloudorchError
from cloudorch.provider.contract import RECOMPUTED, ConfigError, LookupQuery, Observed, ProviderContext
from cloudorch.testing.arm import ArmServer

VNET_ID = f"{RG_ID}/providers/Microsoft.Network/virtualNetworks/vnet-a"
RULE = {"name": "https", "priority": 100, "direction": "Inbound", "access": "Allow", "destination_port_range": "443"}


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's provider (built from the plan file) authenticates with a fixed token."""
    monkeypatch.setenv(TOKEN_ENV, "test-token")


@pytest.fixture
def azure(arm: ArmServer, tmp_path: Path) -> Iterator[AzureProvider]:
    provider = provider_for(arm, tmp_path)
    rg = provider.resource_type("azure.resource_group")
    rg.create("setup.rg", rg.Properties.model_validate({"name": RG}))
    yield provider
    provider.close()


def make(azure: AzureProvider, type_name: str, address: str, **props: Any) -> Observed:
    rt = azure.resource_type(type_name)
    return rt.create(address, rt.Properties.model_validate(props))


def write_plan(path: Path, arm: ArmServer, resources: dict[str, Any]) -> Path:
    doc = {
        "version": 1,
        "name": "typed",
        "providers": {
            "azure": {
                "subscription_id": SUBSCRIPTION,
                "arm_endpoint": arm.url,
                "ca_bundle": str(arm.ca_bundle),
                "location": "westeurope",
                "polling_interval": 0,
            }
        },
        "resources": resources,
    }
    path.write_text(json.dumps(doc, indent=2))
    return path


def run_apply(plan_file: Path, **kw: Any) -> Any:
    from cloudorch.run.apply import apply
    from cloudorch.run.options import RunOptions

    result = apply(replace(RunOptions(plan_file=plan_file, command="test"), **kw))
    assert result is not None and result.ok, result and result.failed
    return result


def changes(plan_file: Path) -> list[Any]:
    from cloudorch.run.options import RunOptions
    from cloudorch.run.plan import plan

    return [c for c in plan(RunOptions(plan_file=plan_file, command="test")).changeset.changes if c.is_change]


NETWORK = {
    "rg": {"type": "azure.resource_group", "properties": {"name": RG}},
    "vnet": {
        "type": "azure.virtual_network",
        "properties": {"name": "vnet-a", "resource_group": "${resources.rg.name}", "address_space": ["10.0.0.0/16"]},
    },
    "web": {
        "type": "azure.subnet",
        "properties": {
            "name": "web",
            "virtual_network": "${resources.vnet.name}",
            "resource_group": "${resources.rg.name}",
            "address_prefixes": ["10.0.1.0/24"],
        },
    },
    "data": {
        "type": "azure.subnet",
        "properties": {
            "name": "data",
            "virtual_network": "${resources.vnet.name}",
            "resource_group": "${resources.rg.name}",
            "address_prefixes": ["10.0.2.0/24"],
            "service_endpoints": ["Microsoft.Storage"],
        },
    },
}


def _subnets(arm: ArmServer) -> set[str]:
    prefix = VNET_ID.lower() + "/subnets/"
    return {k[len(prefix) :] for k in arm.state.resources if k.startswith(prefix)}


def test_a_network_update_keeps_the_subnets_managed_apart(arm: ArmServer, tmp_path: Path) -> None:
    plan_file = write_plan(tmp_path / "net.yaml", arm, NETWORK)
    run_apply(plan_file)
    assert _subnets(arm) == {"web", "data"}
    assert changes(plan_file) == []

    # the trap is real on this server: a PUT of the network without its subnets deletes them
    config = AzureConfig.model_validate(
        {"subscription_id": SUBSCRIPTION, "arm_endpoint": arm.url, "ca_bundle": str(arm.ca_bundle)}
    )
    sdk = AzureProvider(config, "azure", ProviderContext(plan_dir=tmp_path, env={TOKEN_ENV: "t"})).resources
    raw = sdk.resources.get_by_id(VNET_ID, api_version="2024-05-01").as_dict()
    assert {s["name"] for s in raw["properties"]["subnets"]} == {"web", "data"}
    assert "provisioningState" in raw["properties"]["subnets"][0]["properties"]

    # an in-place update of the network (DNS servers, a second prefix) keeps both subnets
    grown = json.loads(json.dumps(NETWORK))
    grown["vnet"]["properties"].update({"dns_servers": ["10.0.0.4"], "address_space": ["10.0.0.0/16", "10.1.0.0/16"]})
    write_plan(plan_file, arm, grown)
    assert [c.action.value for c in changes(plan_file)] == ["update"]
    run_apply(plan_file)
    assert _subnets(arm) == {"web", "data"}
    stored = arm.state.resources[VNET_ID.lower() + "/subnets/data"]
    assert stored["properties"]["serviceEndpoints"][0]["service"] == "Microsoft.Storage"
    assert changes(plan_file) == []

    raw = sdk.resources.get_by_id(VNET_ID, api_version="2024-05-01").as_dict()
    without = {k: v for k, v in raw.items() if k in ("location", "tags")}
    without["properties"] = {k: v for k, v in raw["properties"].items() if k != "subnets"}
    sdk.resources.begin_create_or_update_by_id(VNET_ID, without, api_version="2024-05-01", polling_interval=0).result()
    assert _subnets(arm) == set()
    # and the next plan sees both subnets gone, and brings them back
    assert sorted(c.action.value for c in changes(plan_file)) == ["create", "create"]
    run_apply(plan_file)
    assert _subnets(arm) == {"web", "data"}
    sdk.close()
    run_apply(plan_file, destroy=True)
    assert arm.state.resources == {}


def test_429_and_503_are_retried_by_the_engine(arm: ArmServer, tmp_path: Path) -> None:
    resources = {
        **NETWORK,
        "account": {
            "type": "azure.storage_account",
            "properties": {"name": "stretried", "resource_group": "${resources.rg.name}"},
        },
        "vault": {
            "type": "azure.key_vault",
            "properties": {"name": "kv-retried", "resource_group": "${resources.rg.name}", "tenant_id": TENANT},
        },
    }
    plan_file = write_plan(tmp_path / "retry.yaml", arm, resources)
    arm.inject_throttle(2, retry_after="0", method="PUT", path_contains="/virtualNetworks/vnet-a/subnets/web")
    arm.inject(503, "ServiceUnavailable", "try later", method="PUT", path_contains="storageAccounts")
    arm.inject(503, "ServerBusy", "busy", method="GET", path_contains="vaults/kv-retried")
    run_apply(plan_file)
    puts = [(p, s) for m, p, s in arm.requests("PUT")]
    assert [s for p, s in puts if p.endswith("/subnets/web")] == [429, 429, 201]
    assert [s for p, s in puts if "storageAccounts" in p] == [503, 201]
    assert next(s for _, p, s in arm.requests("GET") if p.endswith("vaults/kv-retried")) == 503
    # exactly one of each object, and nothing left to do
    assert _subnets(arm) == {"web", "data"}
    assert sum("storageaccounts/" in k for k in arm.state.resources) == 1
    assert changes(plan_file) == []


def test_a_bad_storage_account_name_is_a_located_error(arm: ArmServer, tmp_path: Path) -> None:
    plan_file = write_plan(
        tmp_path / "bad.yaml",
        arm,
        {"account": {"type": "azure.storage_account", "properties": {"name": "My-Account", "resource_group": "rg"}}},
    )
    with pytest.raises(CloudorchError) as err:
        changes(plan_file)
    text = str(err.value) + " " + str(getattr(err.value, "hint", "") or "")
    assert "bad.yaml" in text and "name" in text and "lowercase letters and digits" in text
    assert arm.requests() == []  # refused before any call


def test_purge_protection_cannot_be_turned_off(azure: AzureProvider, arm: ArmServer) -> None:
    rt = azure.resource_type("azure.key_vault")
    on = rt.Properties.model_validate(
        {"name": "kv-pp", "resource_group": RG, "tenant_id": TENANT, "purge_protection": True}
    )
    seen = rt.create("dev.vault", on)
    assert seen.attributes["vault_uri"] == "https://kv-pp.vault.azure.net/"
    off = on.model_copy(update={"purge_protection": False})
    puts = len(arm.requests("PUT"))
    with pytest.raises(ConfigError) as err:
        rt.update("dev.vault", seen.id, on, off)
    assert "dev.vault" in str(err.value) and "purge_protection" in str(err.value)
    assert len(arm.requests("PUT")) == puts
    # an update that leaves it on keeps it on
    rt.update("dev.vault", seen.id, on, on.model_copy(update={"sku": "premium"}))
    assert arm.state.resources[seen.id.lower()]["properties"]["enablePurgeProtection"] is True


def test_role_assignment_names_and_scopes(azure: AzureProvider, arm: ArmServer) -> None:
    rt = azure.resource_type("azure.role_assignment")
    account = make(azure, "azure.storage_account", "dev.account", name="stscope", resource_group=RG)
    subscription = f"/subscriptions/{SUBSCRIPTION}"
    for scope in (subscription, RG_ID, account.id):
        props = rt.Properties.model_validate({"scope": scope, "role_definition_id": READER, "principal_id": PRINCIPAL})
        made = rt.create("dev.reader", props)
        name = assignment_name("dev.reader", props)
        assert made.id == f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        assert made.properties["role_definition_id"] == READER  # as written, though ARM holds the full id
        assert rt.find("dev.reader", props) is not None
        assert rt.find("dev.other", props) is None  # another address names another GUID
        # a create repeated after a lost answer adopts it: one assignment, no PUT
        puts = len(arm.requests("PUT"))
        assert rt.create("dev.reader", props).id == made.id and len(arm.requests("PUT")) == puts
        # the same role for the same principal at the scope under another name: ARM refuses it
        with pytest.raises(CloudorchError) as err:
            rt.create("dev.copy", props)
        assert "RoleAssignmentExists" in str(err.value)
    # a different principal is another name
    other = rt.Properties.model_validate({"scope": RG_ID, "role_definition_id": READER, "principal_id": PRINCIPAL2})
    assert assignment_name("dev.reader", other) != assignment_name(
        "dev.reader", other.model_copy(update={"principal_id": PRINCIPAL})
    )
    # deleting the storage account takes the assignments at its scope with it
    acct = azure.resource_type("azure.storage_account")
    acct.delete("dev.account", account.id, acct.Properties.model_validate({"name": "stscope", "resource_group": RG}))
    assert not [k for k in arm.state.resources if k.startswith(account.id.lower())]
    with pytest.raises(ConfigError):
        rt.import_("dev.reader", VNET_ID)


def test_azure_values_are_unknown_at_create_and_kept_by_an_update(azure: AzureProvider) -> None:
    cases = {
        "azure.key_vault": ({"name": "kv-u", "resource_group": RG, "tenant_id": TENANT}, "vault_uri",
                            {"sku": "premium"}),
        "azure.storage_account": ({"name": "stunknown", "resource_group": RG}, "primary_endpoints",
                                  {"access_tier": "Cool"}),
        "azure.user_assigned_identity": ({"name": "id-u", "resource_group": RG}, "principal_id",
                                         {"tags": {"a": "b"}}),
    }
    for type_name, (props, attribute, change) in cases.items():
        rt = azure.resource_type(type_name)
        assert attribute not in rt.plan_create(props)  # the cloud's to say, at create
        seen = rt.create("dev.x", rt.Properties.model_validate(props))
        assert seen.attributes[attribute]
        planned = rt.plan_update(seen, {**seen.properties, **change})
        assert planned[attribute] == seen.attributes[attribute], type_name
        updated = rt.update(
            "dev.x", seen.id, rt.Properties.model_validate(props), rt.Properties.model_validate({**props, **change})
        )
        assert updated.attributes[attribute] == seen.attributes[attribute]
        if "provisioning_state" in planned:
            assert planned["provisioning_state"] is RECOMPUTED


def test_lookup(azure: AzureProvider) -> None:
    vnet = make(azure, "azure.virtual_network", "dev.vnet", name="vnet-a", resource_group=RG,
                address_space=["10.0.0.0/16"])
    make(azure, "azure.virtual_network", "dev.vnet2", name="vnet-b", resource_group=RG, address_space=["10.5.0.0/16"])
    make(azure, "azure.subnet", "dev.sn", name="web", virtual_network="vnet-a", resource_group=RG,
         address_prefixes=["10.0.1.0/24"])
    rt = azure.resource_type("azure.virtual_network")
    assert [o.id for o in rt.lookup("data.v", LookupQuery(id=vnet.id))] == [vnet.id]
    found = rt.lookup("data.v", LookupQuery(filter={"resource_group": RG, "name": "vnet-b"}))
    assert [o.properties["address_space"] for o in found] == [["10.5.0.0/16"]]
    subnets = azure.resource_type("azure.subnet").lookup(
        "data.s", LookupQuery(filter={"resource_group": RG, "virtual_network": "vnet-a"})
    )
    assert [o.properties["name"] for o in subnets] == ["web"]
    with pytest.raises(ConfigError):
        azure.resource_type("azure.subnet").lookup("data.s", LookupQuery(filter={"name": "web"}))


# ---------------------------------------------------------------------- the sandbox's server


@pytest.fixture
def sandbox_arm(tmp_path: Path) -> Iterator[str]:
    """The sandbox's ARM server (cloudorch/sandbox/arm.py) on a thread: its URL; its CA is at tmp_path."""
    from cloudorch.sandbox import arm as sandbox

    cert, key = sandbox.make_certificate(tmp_path / "certs")
    httpd = sandbox.make_server(0, cert, key)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_sandbox_server_serves_the_typed_types(
    sandbox_arm: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    seen: list[tuple[str, str]] = []

    class Record(SansIOHTTPPolicy):  # type: ignore[misc]
        def on_request(self, request: Any) -> None:
            seen.append((request.http_request.method, request.http_request.url))

    monkeypatch.setattr(AzureProvider, "extra_policies", [Record()])
    config = AzureConfig.model_validate(
        {
            "subscription_id": SUBSCRIPTION,
            "arm_endpoint": sandbox_arm,
            "ca_bundle": str(tmp_path / "certs" / "arm-ca.pem"),
            "location": "westeurope",
            "polling_interval": 0,
        }
    )
    azure = AzureProvider(config, "azure", ProviderContext(plan_dir=tmp_path, env={TOKEN_ENV: "t"}))
    make(azure, "azure.resource_group", "s.rg", name=RG)
    vnet_props = {"name": "vnet-a", "resource_group": RG, "address_space": ["10.0.0.0/16"]}
    vnet = make(azure, "azure.virtual_network", "s.vnet", **vnet_props)
    assert vnet.attributes["resource_guid"]
    make(azure, "azure.subnet", "s.web", name="web", virtual_network="vnet-a", resource_group=RG,
         address_prefixes=["10.0.1.0/24"])
    rt = azure.resource_type("azure.virtual_network")
    old = rt.Properties.model_validate(vnet_props)
    rt.update("s.vnet", vnet.id, old, old.model_copy(update={"dns_servers": ["10.0.0.4"]}))
    subnets = azure.resource_type("azure.subnet").lookup(
        "data.s", LookupQuery(filter={"resource_group": RG, "virtual_network": "vnet-a"})
    )
    assert [s.properties["name"] for s in subnets] == ["web"]  # kept across the network's update

    account = make(azure, "azure.storage_account", "s.account", name="stsandbox", resource_group=RG)
    assert account.attributes["primary_blob_endpoint"] == "https://stsandbox.blob.core.windows.net/"
    assert any(m == "GET" and "asyncoperations" in u.lower() for m, u in seen)  # the PUT was polled
    identity = make(azure, "azure.user_assigned_identity", "s.id", name="id-app", resource_group=RG)
    assert identity.attributes["principal_id"]
    assignment = make(azure, "azure.role_assignment", "s.ra", scope=account.id, role_definition_id=READER,
                      principal_id=identity.attributes["principal_id"], principal_type="ServicePrincipal")
    ra = azure.resource_type("azure.role_assignment")
    props = ra.Properties.model_validate(
        {"scope": account.id, "role_definition_id": READER, "principal_id": identity.attributes["principal_id"],
         "principal_type": "ServicePrincipal"}
    )
    assert ra.read("s.ra", assignment.id, props) is not None
    ra.delete("s.ra", assignment.id, props)
    ra.delete("s.ra", assignment.id, props)  # already gone: fine
    assert ra.read("s.ra", assignment.id, props) is None
    vault = make(azure, "azure.key_vault", "s.kv", name="kv-sandbox", resource_group=RG, tenant_id=TENANT)
    assert vault.attributes["vault_uri"] == "https://kv-sandbox.vault.azure.net/"
    azure.close()


def test_reads_report_exactly_what_was_asked(azure: AzureProvider, arm: ArmServer) -> None:
    """ARM's defaults and spellings never show as a difference (the planner's rule: every key)."""
    from azure_testkit import changed_keys

    asked = {
        "azure.storage_account": {"name": "stblock", "resource_group": RG, "kind": "blockblobstorage",
                                  "sku": "premium_lrs"},
        "azure.key_vault": {"name": "kv-exact", "resource_group": RG, "tenant_id": TENANT.upper()},
        "azure.network_security_group": {"name": "nsg-exact", "resource_group": RG, "location": "West Europe",
                                         "security_rules": [{"name": "b", "priority": 300, "direction": "Outbound",
                                                             "access": "Deny"},
                                                            {"name": "a", "priority": 200, "direction": "Inbound",
                                                             "access": "Allow", "protocol": "Udp"}]},
    }
    for type_name, user in asked.items():
        rt = azure.resource_type(type_name)
        seen = rt.create("dev.exact", rt.Properties.model_validate(user))
        assert changed_keys(rt, seen, user) == set(), type_name
    stored = arm.state.resources[f"{RG_ID}/providers/Microsoft.Storage/storageAccounts/stblock".lower()]
    assert "accessTier" not in stored["properties"]  # ARM refuses a tier on this kind


def test_a_wired_plan_applies_replans_clean_and_destroys(arm: ArmServer, tmp_path: Path) -> None:
    """Every typed type in one plan, wired by references whose values Azure gives at create."""
    resources = {
        **NETWORK,
        "nsg": {
            "type": "azure.network_security_group",
            "properties": {"name": "nsg-web", "resource_group": "${resources.rg.name}", "security_rules": [RULE]},
        },
        "identity": {
            "type": "azure.user_assigned_identity",
            "properties": {"name": "id-app", "resource_group": "${resources.rg.name}"},
        },
        "account": {
            "type": "azure.storage_account",
            "properties": {"name": "stwired", "resource_group": "${resources.rg.name}", "sku": "Standard_ZRS"},
        },
        "vault": {
            "type": "azure.key_vault",
            "properties": {"name": "kv-wired", "resource_group": "${resources.rg.name}", "tenant_id": TENANT},
        },
        "reader": {
            "type": "azure.role_assignment",
            "properties": {
                "scope": "${resources.account.id}",
                "role_definition_id": READER,
                "principal_id": "${resources.identity.principal_id}",
                "principal_type": "ServicePrincipal",
            },
        },
    }
    resources["web"] = json.loads(json.dumps(resources["web"]))
    resources["web"]["properties"]["network_security_group_id"] = "${resources.nsg.id}"
    plan_file = write_plan(tmp_path / "wired.yaml", arm, resources)
    run_apply(plan_file)
    assert changes(plan_file) == []
    web = arm.state.resources[VNET_ID.lower() + "/subnets/web"]
    assert web["properties"]["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/nsg-web")
    kind = "Microsoft.Authorization/roleAssignments"
    assignments = [r for r in arm.state.resources.values() if r.get("type") == kind]
    assert len(assignments) == 1 and assignments[0]["properties"]["scope"].endswith("/storageAccounts/stwired")
    run_apply(plan_file, destroy=True)
    assert arm.state.resources == {}

