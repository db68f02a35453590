"""azure.storage_container and azure.storage_blob against Azurite with the real azure-storage-blob client."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure_testkit import changed_keys, replaced_by
from cloudorch_azure import AzureProvider

from cloudorch.errors import ConfigError, ErrorKind, ProviderError


def test_container_lifecycle(azure: AzureProvider) -> None:
    rt = azure.resource_type("azure.storage_container")
    user = {"name": "site-assets", "metadata": {"owner": "web"}}
    props = rt.Properties.model_validate(user)
    created = rt.create("dev.c", props)
    assert created.id.endswith("/devstoreaccount1/site-assets")
    raw = azure.blob_service.get_container_client("site-assets").get_container_properties()
    assert raw.metadata == {"owner": "web", "cloudorch_address": "dev.c"}

    seen = rt.read("dev.c", created.id, props)
    assert seen is not None
    assert seen.properties == {"name": "site-assets", "metadata": {"owner": "web"}, "public_access": None}
    assert changed_keys(rt, seen, user) == set()

    user2 = {**user, "metadata": {"owner": "data"}, "public_access": "blob"}
    assert changed_keys(rt, seen, user2) == {"metadata", "public_access"}
    assert replaced_by(rt, seen, user2) == set()
    updated = rt.update("dev.c", created.id, props, rt.Properties.model_validate(user2))
    assert updated.properties == {"name": "site-assets", "metadata": {"owner": "data"}, "public_access": "blob"}
    props = rt.Properties.model_validate(user2)
    assert replaced_by(rt, updated, {**user2, "name": "other"}) == {"name"}

    azure.blob_service.delete_container("site-assets")  # deleted outside
    assert rt.read("dev.c", created.id, props) is None
    assert rt.find("dev.c", props) is None
    rt.create("dev.c", props)
    assert rt.find("dev.c", props) is not None
    # a second create of our own container (a crashed apply) adopts it
    rt.create("dev.c", props)
    with pytest.raises(ProviderError) as err:
        rt.create("other.c", props)
    assert err.value.kind is ErrorKind.FATAL and "import" in (err.value.hint or "")

    imported = rt.import_("dev.c", created.id)
    assert imported.properties["metadata"] == {"owner": "data"}
    rt.delete("dev.c", created.id, props)
    assert rt.read("dev.c", created.id, props) is None
    rt.delete("dev.c", created.id, props)


def test_container_name_rules() -> None:
    from cloudorch_azure.blob import ContainerProperties

    for bad in ("ab", "Upper", "a--b", "-ab"):
        with pytest.raises(ValueError):
            ContainerProperties.model_validate({"name": bad})


def test_blob_lifecycle(azure: AzureProvider, tmp_path: Path) -> None:
    azure.blob_service.create_container("blobs")
    rt = azure.resource_type("azure.storage_blob")
    user = {"container": "blobs", "name": "conf/app.json", "content": '{"a": 1}', "metadata": {"Owner": "web"}}
    props = rt.Properties.model_validate(user)
    created = rt.create("dev.b", props)
    client = azure.blob_service.get_blob_client("blobs", "conf/app.json")
    assert client.download_blob().readall() == b'{"a": 1}'
    assert client.get_blob_properties().content_settings.content_type == "application/json"  # guessed
    assert created.attributes["md5"] and created.attributes["sha256"]

    seen = rt.read("dev.b", created.id, props)
    assert seen is not None
    assert seen.properties["content"] == '{"a": 1}'
    assert seen.properties["metadata"] == {"Owner": "web"}
    assert changed_keys(rt, seen, user) == set()

    # new content -> in-place update
    user2 = {**user, "content": '{"a": 2}', "content_type": "text/plain"}
    assert changed_keys(rt, seen, user2) == {"content", "content_type"}
    assert replaced_by(rt, seen, user2) == set()
    updated = rt.update("dev.b", created.id, props, rt.Properties.model_validate(user2))
    assert changed_keys(rt, updated, user2) == set()
    props = rt.Properties.model_validate(user2)
    assert replaced_by(rt, updated, {**user2, "container": "elsewhere"}) == {"container"}

    # overwritten outside cloudorch -> drift in `content`
    client.upload_blob(b"tampered", overwrite=True)
    seen = rt.read("dev.b", created.id, props)
    assert seen is not None
    assert changed_keys(rt, seen, user2) >= {"content"}

    client.delete_blob()  # deleted outside
    assert rt.read("dev.b", created.id, props) is None
    assert rt.find("dev.b", props) is None
    rt.create("dev.b", props)
    assert rt.find("dev.b", props) is not None
    with pytest.raises(ProviderError):
        rt.create("other.b", props)

    imported = rt.import_("dev.b", "blobs/conf/app.json")
    assert imported.properties["content"] == '{"a": 2}'
    assert imported.properties["content_type"] == "text/plain"
    assert rt.import_("dev.b", created.id).properties["name"] == "conf/app.json"

    rt.delete("dev.b", created.id, props)
    assert rt.read("dev.b", created.id, props) is None
    rt.delete("dev.b", created.id, props)


def test_blob_from_source_file_is_compared_by_hash(azure: AzureProvider, tmp_path: Path) -> None:
    azure.blob_service.create_container("files")
    (tmp_path / "site").mkdir()
    source = tmp_path / "site" / "index.html"
    source.write_bytes(b"<h1>v1</h1>")
    rt = azure.resource_type("azure.storage_blob")
    user = {"container": "files", "name": "index.html", "source": "site/index.html"}  # relative to plan dir
    props = rt.Properties.model_validate(user)
    created = rt.create("dev.page", props)
    seen = rt.read("dev.page", created.id, props)
    assert seen is not None and changed_keys(rt, seen, user) == set()
    assert azure.blob_service.get_blob_client(
        "files", "index.html"
    ).get_blob_properties().content_settings.content_type == ("text/html")

    source.write_bytes(b"<h1>v2</h1>")  # the local file changed: same path, new hash
    seen = rt.read("dev.page", created.id, props)
    assert seen is not None and changed_keys(rt, seen, user) == {"source"}
    rt.update("dev.page", created.id, props, props)
    assert azure.blob_service.get_blob_client("files", "index.html").download_blob().readall() == b"<h1>v2</h1>"

    with pytest.raises(ConfigError):
        rt.update("dev.page", created.id, props, rt.Properties.model_validate({**user, "source": "missing.txt"}))
    with pytest.raises(ValueError):
        rt.Properties.model_validate({**user, "content": "x"})
