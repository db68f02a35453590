"""Helpers for the remote state tests: a fresh bucket (or container) on an emulator, and a raw
SDK client on it to play the other writer. Fixtures that start the servers are in conftest.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudorch.state.backends import StateBackend, open_backend
from cloudorch.testing import RunningServer

SCHEMES = ["s3", "gs", "azblob"]


@dataclass
class Remote:
    """A fresh bucket (or container) on one emulator, and a raw SDK client on it for forging."""

    scheme: str
    bucket: str
    env: dict[str, str]
    url: str
    raw: Any = None
    local_root: Path = field(default_factory=lambda: Path(".cloudorch"))

    def backend(self, key: str = "shop", **block: Any) -> StateBackend:
        return open_backend(self.url, block, key=key, local_root=self.local_root, env=self.env)

    def raw_put(self, name: str, data: bytes) -> None:
        """Another client writing an object, with no precondition at all."""
        if self.scheme == "s3":
            self.raw.put_object(Bucket=self.bucket, Key=name, Body=data)
        elif self.scheme == "gs":
            self.raw.bucket(self.bucket).blob(name).upload_from_string(data)
        else:
            self.raw.get_blob_client(name).upload_blob(data, overwrite=True)

    def raw_get(self, name: str) -> bytes:
        if self.scheme == "s3":
            body: bytes = self.raw.get_object(Bucket=self.bucket, Key=name)["Body"].read()
            return body
        if self.scheme == "gs":
            data: bytes = self.raw.bucket(self.bucket).blob(name).download_as_bytes()
            return data
        got: bytes = self.raw.get_blob_client(name).download_blob().readall()
        return got


def _s3_client(server: RunningServer) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


def make_remote(
    scheme: str,
    servers: dict[str, RunningServer],
    *,
    versioning: bool = True,
    prefix: str = "team/shop",
) -> Remote:
    name = f"state-{uuid.uuid4().hex[:12]}"
    if scheme == "s3":
        server = servers["s3"]
        s3 = _s3_client(server)
        s3.create_bucket(Bucket=name)
        if versioning:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return Remote("s3", name, dict(server.env), f"s3://{name}/{prefix}", s3)
    if scheme == "gs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        server = servers["gs"]
        client = storage.Client(
            project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": server.url}
        )
        bucket = client.bucket(name)
        bucket.versioning_enabled = versioning
        client.create_bucket(bucket)
        return Remote("gs", name, dict(server.env), f"gs://{name}/{prefix}", client)
    from azure.storage.blob import BlobServiceClient

    server = servers["azblob"]
    service = BlobServiceClient.from_connection_string(server.extra["connection_string"])
    container = service.create_container(name)
    return Remote("azblob", name, dict(server.env), f"azblob://devstoreaccount1/{name}/{prefix}", container)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str
