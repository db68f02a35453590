"""gcp.storage_bucket against fake-gcs-server (memory backend) with the real google-cloud-storage client.

fake-gcs-server keeps names, versioning and objects, but drops labels, storage class, uniform
bucket-level access, lifecycle rules and retention, and reports every bucket's location as the
one it was started with (US). The tests say where that limits what they can assert.
"""

from __future__ import annotations

import pytest
from cloudorch_gcp import GcpProvider
from cloudorch_gcp.provider import label_value
from gcp_testkit import changed_keys, replaced_by

from cloudorch.errors import ErrorKind, ProviderError

ADDR = "prod.site_bucket"


def test_lifecycle(gcp: GcpProvider) -> None:
    rt = gcp.resource_type("gcp.storage_bucket")
    user = {"name": "site-bucket", "location": "us", "versioning": True}
    props = rt.Properties.model_validate(user)

    created = rt.create(ADDR, props)
    assert created.id == "site-bucket"
    assert created.attributes["url"] == "gs://site-bucket"
    seen = rt.read(ADDR, created.id, props)
    assert seen is not None
    assert seen.properties["versioning"] is True
    assert seen.properties["location"] == "us"  # the service's "US", in the user's spelling
    assert changed_keys(rt, seen, user) == set()  # no-change plan

    # update in place: versioning off
    user2 = {**user, "versioning": False}
    assert changed_keys(rt, seen, user2) == {"versioning"}
    assert replaced_by(rt, seen, user2) == set()
    updated = rt.update(ADDR, created.id, props, rt.Properties.model_validate(user2))
    assert updated.properties["versioning"] is False
    assert gcp.client.get_bucket("site-bucket").versioning_enabled is False
    props = rt.Properties.model_validate(user2)

    # force-new: location. (fake-gcs-server puts every bucket in US, so only the plan side is shown)
    assert replaced_by(rt, updated, {**user2, "location": "EU"}) == {"location"}
    assert replaced_by(rt, updated, {**user2, "name": "other-bucket"}) == {"name"}

    # deleted outside -> read None -> re-create
    gcp.client.bucket("site-bucket").delete()
    assert rt.read(ADDR, created.id, props) is None
    assert rt.find(ADDR, props) is None
    rt.create(ADDR, props)

    imported = rt.import_(ADDR, "gs://site-bucket")
    assert imported.properties["name"] == "site-bucket"
    assert imported.properties["versioning"] is False

    rt.delete(ADDR, created.id, props)
    assert rt.read(ADDR, created.id, props) is None
    rt.delete(ADDR, created.id, props)


def test_properties_the_server_drops(gcp: GcpProvider) -> None:
    """Labels, storage class, lifecycle and retention are sent (the request is valid) but
    fake-gcs-server does not keep them, so read reports the server's values and a plan would
    show a change: asserted as such rather than faked."""
    rt = gcp.resource_type("gcp.storage_bucket")
    user = {
        "name": "rich-bucket",
        "labels": {"env": "dev"},
        "storage_class": "NEARLINE",
        "lifecycle_rules": [{"action": {"type": "Delete"}, "condition": {"age": 30}}],
        "retention_period": 60,
        "uniform_bucket_level_access": True,
    }
    props = rt.Properties.model_validate(user)
    seen = rt.create(ADDR, props)
    assert seen.properties["labels"] == {}  # dropped by the server (a real bucket keeps them)
    assert seen.properties["storage_class"] == "STANDARD"
    assert changed_keys(rt, seen, user) == {
        "labels",
        "storage_class",
        "lifecycle_rules",
        "retention_period",
        "uniform_bucket_level_access",
    }
    # find needs the address label, which this server drops: it must not adopt an unlabelled bucket
    assert rt.find(ADDR, props) is None
    rt.delete(ADDR, seen.id, props)


def test_labels_and_address_label_shape(gcp: GcpProvider) -> None:
    """What is written, checked on the provider side since the server drops labels."""
    assert gcp.labels_for("prod.site", {"env": "x"}) == {
        "team": "platform",
        "env": "x",
        "cloudorch-address": label_value("prod.site"),
    }
    value = label_value("prod.Site[0]")
    assert value.startswith("prod_site_0_-") and len(value) <= 63
    assert label_value("plain-name") == "plain-name"
    assert gcp.user_labels({"team": "platform", "env": "x", "cloudorch-address": "a"}, {"env": "x"}) == {"env": "x"}


def test_name_taken_is_a_clear_fatal_error(gcp: GcpProvider) -> None:
    rt = gcp.resource_type("gcp.storage_bucket")
    gcp.client.create_bucket("someone-elses")
    with pytest.raises(ProviderError) as err:
        rt.create(ADDR, rt.Properties.model_validate({"name": "someone-elses"}))
    assert err.value.kind is ErrorKind.FATAL
    assert ADDR in str(err.value) and "taken" in str(err.value)
    assert "another name" in (err.value.hint or "")


def test_force_destroy_empties_the_bucket(gcp: GcpProvider) -> None:
    rt = gcp.resource_type("gcp.storage_bucket")
    props = rt.Properties.model_validate({"name": "full-bucket", "versioning": True})
    rt.create(ADDR, props)
    bucket = gcp.client.bucket("full-bucket")
    bucket.blob("a").upload_from_string(b"1")
    bucket.blob("a").upload_from_string(b"2")  # a second version
    with pytest.raises(ProviderError) as err:
        rt.delete(ADDR, "full-bucket", props)
    assert err.value.kind is ErrorKind.FATAL and "force_destroy" in (err.value.hint or "")
    rt.delete(ADDR, "full-bucket", rt.Properties.model_validate({"name": "full-bucket", "force_destroy": True}))
    assert rt.read(ADDR, "full-bucket", props) is None


def test_connection_refused_is_transient(fake_gcs: object) -> None:
    from cloudorch_gcp import GcpConfig

    from cloudorch.provider.contract import ProviderContext
    from cloudorch.testing import free_port

    provider = GcpProvider(GcpConfig(endpoint=f"http://127.0.0.1:{free_port()}"), "gcp", ProviderContext(env={}))
    rt = provider.resource_type("gcp.storage_bucket")
    with pytest.raises(ProviderError) as err:
        rt.read(ADDR, "x", rt.Properties.model_validate({"name": "xyz"}))
    assert err.value.kind is ErrorKind.TRANSIENT
