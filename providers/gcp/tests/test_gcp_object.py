"""gcp.storage_object against fake-gcs-server with the real google-cloud-storage client."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudorch_gcp import GcpProvider
from gcp_testkit import changed_keys, replaced_by

from cloudorch.errors import ConfigError, ErrorKind, ProviderError

ADDR = "dev.obj"


@pytest.fixture
def bucket(gcp: GcpProvider) -> Iterator[str]:
    rt = gcp.resource_type("gcp.storage_bucket")
    props = rt.Properties.model_validate({"name": "objects", "force_destroy": True})
    rt.create("dev.bucket", props)
    yield "objects"
    rt.delete("dev.bucket", "objects", props)


def test_lifecycle(gcp: GcpProvider, bucket: str) -> None:
    rt = gcp.resource_type("gcp.storage_object")
    user = {"bucket": bucket, "name": "conf/app.json", "content": '{"a": 1}', "metadata": {"owner": "web"}}
    props = rt.Properties.model_validate(user)
    created = rt.create(ADDR, props)
    assert created.id == "objects/conf/app.json"
    assert isinstance(created.attributes["generation"], int)
    assert created.attributes["md5_hex"] == hashlib.md5(b'{"a": 1}').hexdigest()
    blob = gcp.client.bucket(bucket).get_blob("conf/app.json")
    assert blob.download_as_bytes() == b'{"a": 1}'
    assert blob.content_type == "application/json"
    assert blob.metadata["cloudorch-address"] == ADDR

    seen = rt.read(ADDR, created.id, props)
    assert seen is not None
    assert seen.properties["metadata"] == {"owner": "web"}
    assert changed_keys(rt, seen, user) == set()

    user2 = {**user, "content": '{"a": 2}', "metadata": {"owner": "data"}}
    assert changed_keys(rt, seen, user2) == {"content", "metadata"}
    assert replaced_by(rt, seen, user2) == set()
    updated = rt.update(ADDR, created.id, props, rt.Properties.model_validate(user2))
    assert updated.attributes["generation"] != created.attributes["generation"]
    assert changed_keys(rt, updated, user2) == set()
    props = rt.Properties.model_validate(user2)
    assert replaced_by(rt, updated, {**user2, "bucket": "other"}) == {"bucket"}

    gcp.client.bucket(bucket).blob("conf/app.json").upload_from_string(b"tampered")  # changed outside
    seen = rt.read(ADDR, created.id, props)
    assert seen is not None and "content" in changed_keys(rt, seen, user2)

    gcp.client.bucket(bucket).blob("conf/app.json").delete()  # deleted outside
    assert rt.read(ADDR, created.id, props) is None
    assert rt.find(ADDR, props) is None
    rt.create(ADDR, props)
    assert rt.find(ADDR, props) is not None
    rt.create(ADDR, props)  # a crashed apply's object is ours: adopted
    with pytest.raises(ProviderError) as err:
        rt.create("other.obj", props)  # not ours: if_generation_match=0 refuses to overwrite
    assert err.value.kind is ErrorKind.FATAL

    imported = rt.import_(ADDR, "gs://objects/conf/app.json")
    assert imported.properties["content"] == '{"a": 2}'
    assert imported.properties["metadata"] == {"owner": "data"}

    rt.delete(ADDR, created.id, props)
    assert rt.read(ADDR, created.id, props) is None
    rt.delete(ADDR, created.id, props)


def test_source_file_compared_by_hash(gcp: GcpProvider, bucket: str, tmp_path: Path) -> None:
    (tmp_path / "page.html").write_bytes(b"<p>1</p>")
    rt = gcp.resource_type("gcp.storage_object")
    user = {"bucket": bucket, "name": "index.html", "source": "page.html"}
    props = rt.Properties.model_validate(user)
    created = rt.create(ADDR, props)
    assert gcp.client.bucket(bucket).get_blob("index.html").content_type == "text/html"
    seen = rt.read(ADDR, created.id, props)
    assert seen is not None and changed_keys(rt, seen, user) == set()
    (tmp_path / "page.html").write_bytes(b"<p>2</p>")
    seen = rt.read(ADDR, created.id, props)
    assert seen is not None and changed_keys(rt, seen, user) == {"source"}
    rt.update(ADDR, created.id, props, props)
    assert gcp.client.bucket(bucket).get_blob("index.html").download_as_bytes() == b"<p>2</p>"
    with pytest.raises(ConfigError):
        rt.update(ADDR, created.id, props, rt.Properties.model_validate({**user, "source": "nope"}))


def test_object_in_missing_bucket_reads_as_gone(gcp: GcpProvider) -> None:
    rt = gcp.resource_type("gcp.storage_object")
    assert rt.read(ADDR, "x/y", rt.Properties.model_validate({"bucket": "no-such-bucket", "name": "y"})) is None
