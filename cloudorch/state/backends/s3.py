"""State in Amazon S3: the object store adapter and its two lock slots (lock object, DynamoDB item).

State is `prefix/KEY.json`, replaced with `IfMatch` on the ETag we read; the lock is
`prefix/KEY.lock`, created with `IfNoneMatch="*"` and renewed or taken over with `IfMatch`.
History is the bucket's object versions, which must be enabled. Teams that already run a
DynamoDB lock table can keep it (`lock_table`). boto3 is imported only when a backend is opened.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from cloudorch.errors import StateError
from cloudorch.state.backends.store import (
    Acquired,
    LockSlot,
    ObjectStore,
    ObjectVersion,
    PreconditionFailed,
    SeenLock,
    StoredObject,
    parse_lock,
)
from cloudorch.state.lock import LockInfo

if TYPE_CHECKING:  # not at run time: a store worker hosts stores without pydantic
    from cloudorch.state.backends.url import BackendURL, S3Options

_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchVersion"}


def _code(exc: Exception) -> str:
    response: Any = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _server_now(response: Any) -> Any:
    """The store's clock when it answered: the response's Date header."""
    from email.utils import parsedate_to_datetime

    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date) if date else None
    except (TypeError, ValueError):
        return None


_SESSIONS: dict[str | None, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def _session(profile: str | None) -> Any:
    """One botocore session per profile and process: it caches the loaded service models, so a
    second backend in the same process (migrate, the API used as a library) costs ~25 ms, not ~100."""
    import botocore.session

    with _SESSIONS_LOCK:
        if profile not in _SESSIONS:
            _SESSIONS[profile] = botocore.session.Session(profile=profile)
        return _SESSIONS[profile]


class S3Store(ObjectStore):
    """One bucket, reached with the provider's credential chain (profile, env, instance role)."""

    def __init__(self, url: BackendURL, options: S3Options, env: Mapping[str, str]) -> None:
        self.bucket = url.bucket
        self.options = options
        self.endpoint = options.endpoint or env.get("AWS_ENDPOINT_URL") or None
        # explicit keys in `env` (a caller's environment, not necessarily os.environ) win over the chain
        self.keys = {
            arg: env[var]
            for arg, var in (
                ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                ("aws_session_token", "AWS_SESSION_TOKEN"),
            )
            if env.get(var) and not options.profile
        }
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def warm_up(cls) -> None:
        # a throwaway client (no request) loads the S3 model, the endpoint rules and the client
        # class once; the real client then takes ~10 ms instead of ~80
        from botocore.config import Config

        session = _session(None)
        with _SESSIONS_LOCK:
            session.create_client(
                "s3",
                region_name="us-east-1",
                aws_access_key_id="warm-up",
                aws_secret_access_key="warm-up",
                config=Config(retries={"mode": "standard", "max_attempts": 5}),
            )

    def client(self, service: str = "s3") -> Any:
        """A botocore client (boto3 itself is not needed: its import pulls in s3transfer, ~0.1 s)."""
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=10, read_timeout=30)
        with self._lock:
            if service == "s3" and self._client is not None:
                return self._client
            session = _session(self.options.profile)
            try:
                with _SESSIONS_LOCK:  # a botocore session is not thread-safe; its clients are
                    region = self.options.region or session.get_config_variable("region") or "us-east-1"
                    client = session.create_client(
                        service, region_name=region, endpoint_url=self.endpoint, config=config, **self.keys
                    )
            except ProfileNotFound as exc:
                raise StateError(
                    f"backend s3://{self.bucket}: AWS profile {self.options.profile!r} not found",
                    hint="check ~/.aws/config or drop `profile` to use the default credential chain",
                ) from exc
            if service == "s3":
                self._client = client
            return client

    @contextlib.contextmanager
    def errors(self, doing: str, name: str = "") -> Iterator[None]:
        """SDK failures become StateErrors saying what was being done and what to check."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = _code(exc)
            if code in _PRECONDITION_CODES:
                raise PreconditionFailed(code) from exc
            where = self.url(name)
            if code == "NoSuchBucket":
                raise StateError(
                    f"could not {doing} {where}: bucket {self.bucket} does not exist",
                    hint=f"create it with versioning on: aws s3api create-bucket --bucket {self.bucket} && "
                    f"aws s3api put-bucket-versioning --bucket {self.bucket} "
                    "--versioning-configuration Status=Enabled",
                ) from exc
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
                raise StateError(
                    f"could not {doing} {where}: {code} ({exc})",
                    hint="check the AWS credentials (profile, AWS_* variables) and the bucket policy",
                ) from exc
            raise StateError(f"could not {doing} {where}: {exc}", hint="check the backend block and retry") from exc
        except BotoCoreError as exc:
            raise StateError(
                f"could not {doing} {self.url(name)}: {exc}",
                hint="check the endpoint, network and AWS credentials (profile, AWS_* variables)",
            ) from exc

    # -- ObjectStore -----------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"s3://{self.bucket}/{name}"

    def get_lock(self, name: str) -> StoredObject | None:
        return self._get(name, "read the state lock in", {})

    def get(self, name: str) -> StoredObject | None:
        return self._get(name, "read state from", {})

    def get_head(self, name: str, n: int, version_id: str | None = None) -> StoredObject | None:
        extra: dict[str, Any] = {"Range": f"bytes=0-{n - 1}"}
        if version_id is not None:
            extra["VersionId"] = version_id
        return self._get(name, "read state from", extra)

    def _get(self, name: str, doing: str, extra: dict[str, Any]) -> StoredObject | None:
        from botocore.exceptions import ClientError

        with self.errors(doing, name):
            try:
                got = self.client().get_object(Bucket=self.bucket, Key=name, **extra)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES or _code(exc) == "InvalidRange":
                    return None
                raise
            return StoredObject(got["Body"].read(), str(got["ETag"]), got.get("LastModified"), _server_now(got))

    def get_version(self, name: str, version_id: str) -> bytes:
        with self.errors("read state history from", name):
            got = self.client().get_object(Bucket=self.bucket, Key=name, VersionId=version_id)
            data: bytes = got["Body"].read()
            return data

    def put(self, name: str, data: bytes, *, if_token: str | None) -> str:
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_token is None else {"IfMatch": if_token}
        if self.options.kms_key_id:
            extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.options.kms_key_id)
        with self.errors("write", name):
            got = self.client().put_object(
                Bucket=self.bucket, Key=name, Body=data, ContentType="application/json", **extra
            )
            return str(got["ETag"])

    def delete(self, name: str, *, if_token: str) -> None:
        from botocore.exceptions import ClientError

        with self.errors("remove", name):
            try:
                self.client().delete_object(Bucket=self.bucket, Key=name, IfMatch=if_token)
            except ClientError as exc:
                if _code(exc) in _MISSING_CODES:
                    return
                raise

    def list_names(self, prefix: str) -> list[str]:
        names: list[str] = []
        with self.errors("list the journal in", prefix):
            for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                names += [str(o["Key"]) for o in page.get("Contents", [])]
        return names

    def delete_many(self, names: list[str]) -> None:
        with self.errors("remove the journal in", names[0] if names else ""):
            for start in range(0, len(names), 1000):  # one request per 1,000 keys
                chunk = [{"Key": n} for n in names[start : start + 1000]]
                self.client().delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})

    def delete_version(self, name: str, version_id: str) -> None:
        with self.errors("remove an old version of", name):
            self.client().delete_object(Bucket=self.bucket, Key=name, VersionId=version_id)

    def versions(self, name: str, limit: int) -> list[ObjectVersion]:
        found: list[tuple[Any, bool, str]] = []
        with self.errors("list state history in", name):
            pages = self.client().get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=name)
            for page in pages:
                for v in page.get("Versions", []):
                    if v["Key"] == name:
                        found.append((v["LastModified"], bool(v["IsLatest"]), str(v["VersionId"])))
                if len(found) >= limit:  # one key's versions come newest first: the rest are older
                    break
        found.sort(key=lambda f: (f[1], f[0]), reverse=True)
        return [ObjectVersion(vid, latest) for _, latest, vid in found[:limit]]

    def require_history(self) -> None:
        with self.errors("check versioning of", ""):
            status = self.client().get_bucket_versioning(Bucket=self.bucket).get("Status")
        if status != "Enabled":
            raise StateError(
                f"bucket {self.bucket} has versioning {'suspended' if status else 'off'}: cloudorch keeps state "
                "history (state history, rollback) in object versions and will not write state without them",
                hint=f"aws s3api put-bucket-versioning --bucket {self.bucket} "
                "--versioning-configuration Status=Enabled",
            )


class DynamoLock(LockSlot):
    """The lock as an item of an existing DynamoDB lock table (hash key `LockID`, a string).

    Every write carries a fresh `Token`; renewals, takeovers and releases are conditional on the
    token read, so they act on exactly the lock that was judged.
    """

    def __init__(self, store: S3Store, table: str, lock_id: str) -> None:
        self.store = store
        self.table = table
        self.lock_id = lock_id
        self._client: Any = None

    def _ddb(self) -> Any:
        if self._client is None:
            self._client = self.store.client("dynamodb")
        return self._client

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise PreconditionFailed(_code(exc)) from exc
            hint = (
                f"create the table: aws dynamodb create-table --table-name {self.table} "
                "--attribute-definitions AttributeName=LockID,AttributeType=S "
                "--key-schema AttributeName=LockID,KeyType=HASH --billing-mode PAY_PER_REQUEST"
                if _code(exc) == "ResourceNotFoundException"
                else "check the lock_table name and the AWS credentials"
            )
            raise StateError(f"could not {doing} DynamoDB table {self.table}: {exc}", hint=hint) from exc
        except BotoCoreError as exc:
            raise StateError(f"could not {doing} DynamoDB table {self.table}: {exc}") from exc

    def _put(self, info: LockInfo, condition: str, values: dict[str, Any]) -> str | None:
        token = uuid.uuid4().hex
        item = {"LockID": {"S": self.lock_id}, "Info": {"S": info.to_json()}, "Token": {"S": token}}
        try:
            with self._errors("write the state lock in"):
                self._ddb().put_item(TableName=self.table, Item=item, ConditionExpression=condition, **values)
        except PreconditionFailed:
            return None
        return token

    def _delete_if(self, token: str) -> bool:
        try:
            with self._errors("remove the state lock in"):
                self._ddb().delete_item(
                    TableName=self.table,
                    Key={"LockID": {"S": self.lock_id}},
                    ConditionExpression="#t = :t",
                    ExpressionAttributeNames={"#t": "Token"},
                    ExpressionAttributeValues={":t": {"S": token}},
                )
        except PreconditionFailed:
            return False
        return True

    def create(self, info: LockInfo) -> Acquired | None:
        token = self._put(info, "attribute_not_exists(LockID)", {})
        return None if token is None else Acquired(token)

    def read(self) -> SeenLock | None:
        with self._errors("read the state lock in"):
            got = self._ddb().get_item(TableName=self.table, Key={"LockID": {"S": self.lock_id}}, ConsistentRead=True)
        item = got.get("Item")
        if not item:
            return None
        raw = item.get("Info", {}).get("S", "")
        token = item.get("Token", {}).get("S", "")
        return parse_lock(raw.encode(), token, None, None)

    def _if_token(self, token: str) -> dict[str, Any]:
        return {"ExpressionAttributeNames": {"#t": "Token"}, "ExpressionAttributeValues": {":t": {"S": token}}}

    def take_over(self, info: LockInfo, seen: SeenLock) -> Acquired | None:
        token = self._put(info, "#t = :t", self._if_token(seen.token))
        return None if token is None else Acquired(token)

    def renew(self, info: LockInfo, token: str) -> str | None:
        return self._put(info, "#t = :t", self._if_token(token))

    def release(self, info: LockInfo, token: str) -> None:
        self._delete_if(token)

    def remove(self, seen: SeenLock) -> bool:
        return self._delete_if(seen.token)
