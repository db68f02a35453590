"""The `aws` provider block: its configuration, the boto3 session and clients, error classification.

It owns how cloudorch talks to AWS (one session per provider block, one thread-safe client per
service, no hidden botocore retries: the engine retries what `classify` calls retryable). It
does not know any resource type; those live in one module per service.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    Provider,
    ProviderContext,
    ProviderError,
    ResourceType,
    retry_after,
)
from cloudorch_aws.cloudwatch import AlarmResource
from cloudorch_aws.dynamodb import TableResource
from cloudorch_aws.ec2 import SecurityGroupResource, SubnetResource, VpcResource
from cloudorch_aws.ec2_network import (
    InternetGatewayResource,
    RouteTableAssociationResource,
    RouteTableResource,
    SecurityGroupRuleResource,
)
from cloudorch_aws.ecr import RepositoryResource
from cloudorch_aws.ecs import ClusterResource, ServiceResource, TaskDefinitionResource
from cloudorch_aws.elbv2 import ListenerResource, LoadBalancerResource, TargetGroupResource
from cloudorch_aws.errors import error_code, error_kind, http_status
from cloudorch_aws.events import RuleResource, TargetResource
from cloudorch_aws.faults import hooks_from_env
from cloudorch_aws.iam import PolicyResource, RoleResource
from cloudorch_aws.kms import AliasResource, KeyResource
from cloudorch_aws.lambda_ import FunctionResource
from cloudorch_aws.logs import LogGroupResource
from cloudorch_aws.rds import InstanceResource, SubnetGroupResource
from cloudorch_aws.route53 import RecordResource, ZoneResource
from cloudorch_aws.s3 import BucketResource, ObjectResource
from cloudorch_aws.secretsmanager import SecretResource
from cloudorch_aws.sns import SubscriptionResource, TopicResource
from cloudorch_aws.sqs import QueueResource
from cloudorch_aws.ssm import ParameterResource

log = logging.getLogger(__name__)

#: a function called with every new boto3 client, e.g. to register botocore event handlers
ClientHook = Callable[[Any], None]

#: botocore's loaders of API models, one per data path, shared by every session of the process
_LOADERS: dict[Any, Any] = {}
_LOADERS_LOCK = threading.Lock()


class _UniquePaths(list[str]):
    """A loader's search path that keeps each folder once: boto3 appends its own data folder to
    the loader of every Session it makes, and a shared loader would grow with each."""

    def append(self, item: str) -> None:
        if item not in self:
            super().append(item)


def core_session(**kwargs: Any) -> Any:
    """A botocore session whose API models come from this process's shared loader: parsing a
    model such as EC2's costs about a second, and each provider block of each run in a process
    (tests, a long-lived server) would otherwise parse it again."""
    import botocore.loaders
    import botocore.session

    core = botocore.session.Session(**kwargs)
    path = core.get_config_variable("data_path")
    with _LOADERS_LOCK:
        loader = _LOADERS.get(path)
        if loader is None:
            extra = [os.path.expanduser(os.path.expandvars(p)) for p in str(path).split(os.pathsep)] if path else []
            loader = _LOADERS[path] = botocore.loaders.Loader(extra_search_paths=_UniquePaths(extra))
    core.register_component("data_loader", loader)
    return core


class AssumeRole(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role_arn: str = Field(description="ARN of the role to assume for every call of this provider block.")
    session_name: str = Field("cloudorch", description="RoleSessionName, visible in CloudTrail.")
    external_id: str | None = Field(None, description="ExternalId the role's trust policy requires, if any.")
    duration_seconds: int = Field(3600, ge=900, le=43200, description="Lifetime of each set of credentials.")


class AwsConfig(BaseModel):
    """The `providers.aws` block (and aliased blocks such as `providers.aws.west`)."""

    model_config = ConfigDict(extra="forbid")
    region: str | None = Field(None, description="AWS region; defaults to the profile's or AWS_REGION, then us-east-1.")
    profile: str | None = Field(None, description="Named profile from ~/.aws/config; default: the boto3 chain.")
    endpoint_url: str | None = Field(
        None, description="Send every call here (LocalStack, moto). AWS_ENDPOINT_URL also works."
    )
    assume_role: AssumeRole | None = Field(None, description="Assume this role on top of the base credentials.")
    default_tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags merged into every taggable resource; a resource's own tags win.",
    )
    max_concurrency: int | None = Field(None, ge=1, description="Most AWS operations in flight at once (32).")
    max_attempts: int | None = Field(
        None,
        ge=1,
        description="Attempts per operation on throttling and transient errors (the engine retries).",
    )


class AwsProvider(Provider):
    """Amazon Web Services through boto3; one instance per provider block."""

    name = "aws"
    package = "cloudorch-aws"
    contract = ">=2.1,<3"
    Config = AwsConfig
    resource_types: ClassVar[tuple[type[ResourceType[Any]], ...]] = (
        BucketResource,
        ObjectResource,
        TableResource,
        RoleResource,
        PolicyResource,
        QueueResource,
        TopicResource,
        SubscriptionResource,
        VpcResource,
        SubnetResource,
        SecurityGroupResource,
        ZoneResource,
        RecordResource,
        FunctionResource,
        AlarmResource,
        KeyResource,
        AliasResource,
        SecretResource,
        ParameterResource,
        LogGroupResource,
        RepositoryResource,
        ClusterResource,
        TaskDefinitionResource,
        ServiceResource,
        SubnetGroupResource,
        InstanceResource,
        LoadBalancerResource,
        TargetGroupResource,
        ListenerResource,
        RuleResource,
        TargetResource,
        InternetGatewayResource,
        RouteTableResource,
        RouteTableAssociationResource,
        SecurityGroupRuleResource,
    )
    default_concurrency = 32
    default_max_attempts = 6

    #: called with every client any AwsProvider creates: the seam tests and benchmarks use to
    #: add latency or faults on the wire (botocore `before-send` handlers), never a mock
    client_hooks: ClassVar[list[ClientHook]] = []

    config: AwsConfig

    def __init__(self, config: BaseModel, alias: str = "aws", context: ProviderContext | None = None) -> None:
        if not isinstance(config, AwsConfig):
            config = AwsConfig.model_validate(config.model_dump() if isinstance(config, BaseModel) else config)
        super().__init__(config, alias, context or ProviderContext())
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}
        self._account_id: str | None = None

    # ------------------------------------------------------------------ sessions and clients

    @property
    def endpoint_url(self) -> str | None:
        return self.config.endpoint_url or self.context.env.get("AWS_ENDPOINT_URL") or None

    @property
    def region(self) -> str:
        session = self._get_session()
        return str(self.config.region or session.region_name or "us-east-1")

    @property
    def default_tags(self) -> Mapping[str, str]:
        return self.config.default_tags

    def _get_session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._make_session()
        return self._session

    def _make_session(self) -> Any:
        import boto3.session
        import botocore.exceptions

        if self.context.sandbox:
            # the sandbox's moto takes any key: throwaway ones keep real credentials out of reach, and
            # AWS_PROFILE is not even looked at (a profile the machine lacks would fail the session)
            core = core_session(session_vars={"profile": (None, None, None, None)})
            return boto3.session.Session(
                botocore_session=core,
                aws_access_key_id="sandbox",
                aws_secret_access_key="sandbox",
                region_name=self.config.region or "us-east-1",
            )
        try:
            base = boto3.session.Session(
                botocore_session=core_session(), profile_name=self.config.profile, region_name=self.config.region
            )
        except botocore.exceptions.ProfileNotFound as exc:
            raise ConfigError(
                f"providers.{self.alias}: AWS profile {self.config.profile!r} not found",
                hint="check ~/.aws/config or drop `profile` to use the default credential chain",
            ) from exc
        if self.config.assume_role is None:
            return base
        return self._assumed_session(base, self.config.assume_role)

    def _assumed_session(self, base: Any, role: AssumeRole) -> Any:
        import boto3.session
        import botocore.credentials

        region = self.config.region or base.region_name or "us-east-1"
        sts = base.client("sts", region_name=region, endpoint_url=self.endpoint_url)

        def refresh() -> dict[str, str]:
            kwargs: dict[str, Any] = {
                "RoleArn": role.role_arn,
                "RoleSessionName": role.session_name,
                "DurationSeconds": role.duration_seconds,
            }
            if role.external_id:
                kwargs["ExternalId"] = role.external_id
            try:
                creds = sts.assume_role(**kwargs)["Credentials"]
            except Exception as exc:
                raise self.classify(exc, None) from exc
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        core = core_session()
        core._credentials = credentials  # the documented way to hand a session refreshable creds
        core.set_config_variable("region", region)
        return boto3.session.Session(botocore_session=core)

    def client(self, service: str) -> Any:
        """The one boto3 client of `service` for this provider block (thread-safe to share)."""
        found = self._clients.get(service)
        if found is not None:
            return found
        session = self._get_session()
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                found = self._clients[service] = self._make_client(session, service)
        return found

    def _make_client(self, session: Any, service: str) -> Any:
        from botocore.config import Config

        options: dict[str, Any] = {
            # one attempt per call: the engine retries, with backoff, and counts it. botocore's
            # `max_attempts` counts *retries* (max_attempts=1 would hide one); `total_max_attempts`
            # counts every attempt including the first
            "retries": {"total_max_attempts": 1, "mode": "standard"},
            "max_pool_connections": max(self.max_concurrency, 10) + 8,
            "connect_timeout": 10,
            "read_timeout": 60,
        }
        endpoint = self.endpoint_url
        if endpoint:
            options["s3"] = {"addressing_style": "path"}  # emulators do not resolve virtual hosts
        client = session.client(
            service,
            region_name=self.region,
            endpoint_url=endpoint,
            config=Config(**options),
        )
        for hook in [*self.client_hooks, *hooks_from_env(os.environ)]:
            hook(client)
        log.debug("created %s client for providers.%s (endpoint %s)", service, self.alias, endpoint or "aws")
        return client

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            try:
                ident = self.client("sts").get_caller_identity()
            except Exception as exc:
                raise self.classify(exc, None) from exc
            self._account_id = str(ident["Account"])
        return self._account_id

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------------ release health checks

    def check_health(self, kind: str, spec: Mapping[str, Any]) -> tuple[bool, str]:
        """`aws_alarms`: no CloudWatch alarm with the prefix (or names) in ALARM."""
        from cloudorch_aws.health import CHECKS

        check = CHECKS.get(kind)
        if check is None:
            return super().check_health(kind, spec)
        return check(self, spec)

    # ------------------------------------------------------------------ errors

    def classify(self, exc: BaseException, address: str | None = None) -> ProviderError:
        """Map a botocore exception to a ProviderError the engine knows how to retry (or not)."""
        if isinstance(exc, ProviderError):
            return exc
        where = f" ({address})" if address else ""
        code = error_code(exc)
        if code is not None:
            response: dict[str, Any] = getattr(exc, "response", {})
            op = getattr(exc, "operation_name", "call")
            message = response.get("Error", {}).get("Message") or ""
            status = http_status(exc) or 0
            kind = error_kind(code, status, message)
            headers = response.get("ResponseMetadata", {}).get("HTTPHeaders")
            hint = None
            if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
                hint = f"the credentials of providers.{self.alias} lack permission for {op}"
            elif code in ("InvalidClientTokenId", "ExpiredToken", "SignatureDoesNotMatch"):
                hint = "refresh the AWS credentials (aws sso login, or check the profile)"
            return ProviderError(
                f"AWS {op} failed{where}: {code}: {message}".rstrip(": "),
                kind=kind,
                address=address,
                retry_after=retry_after(headers),
                hint=hint,
                cause=exc,
            )
        import botocore.exceptions as bex

        if isinstance(exc, bex.NoCredentialsError | bex.PartialCredentialsError | bex.NoRegionError):
            return ProviderError(
                f"AWS credentials or region missing{where}: {exc}",
                kind=ErrorKind.FATAL,
                address=address,
                hint="configure credentials (AWS_PROFILE, aws configure, or providers.aws.profile)",
                cause=exc,
            )
        if isinstance(exc, bex.HTTPClientError | bex.ConnectionError | bex.ReadTimeoutError | TimeoutError):
            return ProviderError(f"AWS unreachable{where}: {exc}", kind=ErrorKind.TRANSIENT, address=address, cause=exc)
        if isinstance(exc, bex.WaiterError):
            return ProviderError(
                f"AWS did not reach the wanted state{where}: {exc}",
                kind=ErrorKind.TRANSIENT,
                address=address,
                cause=exc,
            )
        return ProviderError(
            f"AWS call failed{where}: {type(exc).__name__}: {exc}",
            kind=ErrorKind.FATAL,
            address=address,
            cause=exc,
        )
