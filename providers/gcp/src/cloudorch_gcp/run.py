"""`gcp.cloud_run_service`: a Cloud Run service (run v2), its operations awaited.

Owns create/read/update/delete/import/find/lookup of one service: its containers (image, env,
ports), scaling, ingress, runtime service account and labels. The service is labelled with its
address, so `find` and a create retried after a lost answer tell it from another's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from cloudorch.provider.contract import (
    ConfigError,
    ErrorKind,
    LookupQuery,
    Observed,
    ProviderError,
    ReadRequest,
    ResourceProperties,
    matches_filter,
    prop,
)
from cloudorch_gcp.api_type import ApiType, pages

#: Cloud Run gives a container with no port this one
DEFAULT_PORT = {"container_port": 8080, "name": "http1"}


class RunPort(ResourceProperties):
    container_port: int = prop(ge=1, le=65535, description="The port the container listens on.")
    name: str | None = prop(None, description="`http1` or `h2c`; unset: the service's (http1).")


class RunContainer(ResourceProperties):
    image: str = prop(description="Container image URL, e.g. europe-docker.pkg.dev/P/REPO/app:1.2.")
    name: str | None = prop(None, description="Container name (needed when there are several).")
    env: dict[str, str] = prop(default_factory=dict, description="Plain environment variables.")
    ports: list[RunPort] = prop(
        default_factory=list, max_length=1, description="The port requests arrive on; unset: 8080."
    )


class RunServiceProperties(ResourceProperties):
    name: str = prop(
        force_new=True, pattern=r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$", description="Service name, unique per region."
    )
    location: str = prop(force_new=True, description="Region, e.g. europe-west1.")
    project: str | None = prop(None, force_new=True, description="Owning project; unset: providers.gcp.project.")
    containers: list[RunContainer] = prop(
        min_length=1, description="The revision template's containers (one serves requests)."
    )
    min_instance_count: int | None = prop(None, ge=0, description="Instances kept warm; unset: the service's (0).")
    max_instance_count: int | None = prop(None, ge=1, description="Most instances; unset: the service's (100).")
    ingress: (
        Literal["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"] | None
    ) = prop(None, description="Who may reach it; unset: the service's (INGRESS_TRAFFIC_ALL).")
    service_account: str | None = prop(
        None, description="Runtime identity's email (a gcp.service_account's `email`); unset: the default."
    )
    labels: dict[str, str] = prop(default_factory=dict, description="Labels; providers.gcp.default_labels are added.")


class CloudRunService(ApiType[RunServiceProperties]):
    """A Cloud Run service."""

    type_name = "gcp.cloud_run_service"
    Properties = RunServiceProperties
    description = "A Cloud Run service (run v2): containers, scaling and ingress change in place as a new revision."
    attributes = {
        "id": "projects/PROJECT/locations/LOCATION/services/NAME.",
        "name": "The service name.",
        "uri": "The service's https URL (known once it is created).",
        "latest_ready_revision": "The newest revision serving (a new one after each update).",
        "uid": "The service's unique id.",
    }
    # an update rolls out a new revision; the URL and the ids stay
    recomputed_on_update = frozenset({"latest_ready_revision"})

    @property
    def services(self) -> Any:
        return self.api("run", "v2").projects().locations().services()

    def _name(self, props: RunServiceProperties) -> str:
        return f"projects/{self.project_of(props.project)}/locations/{props.location}/services/{props.name}"

    @staticmethod
    def _split(id: str) -> tuple[str, str, str]:
        parts = id.split("/")
        if len(parts) != 6 or parts[0] != "projects" or parts[2] != "locations" or parts[4] != "services":
            raise ConfigError(
                f"not a Cloud Run service id: {id!r}", hint="expected projects/PROJECT/locations/LOCATION/services/NAME"
            )
        return parts[1], parts[3], parts[5]

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        name, location = desired.get("name"), desired.get("location")
        project = desired.get("project") or self.default_project
        if all(isinstance(v, str) for v in (name, location, project)):
            return {"id": f"projects/{project}/locations/{location}/services/{name}", "name": name}
        return {}

    def _body(self, address: str, props: RunServiceProperties) -> dict[str, Any]:
        props = self.valid(props)
        containers = []
        for c in props.containers:
            container: dict[str, Any] = {"image": c.image}
            if c.name:
                container["name"] = c.name
            if c.env:
                container["env"] = [{"name": k, "value": v} for k, v in c.env.items()]
            if c.ports:
                container["ports"] = [
                    {"containerPort": p.container_port, **({"name": p.name} if p.name else {})} for p in c.ports
                ]
            containers.append(container)
        template: dict[str, Any] = {"containers": containers}
        scaling = {
            k: v
            for k, v in (("minInstanceCount", props.min_instance_count), ("maxInstanceCount", props.max_instance_count))
            if v is not None
        }
        if scaling:
            template["scaling"] = scaling
        if props.service_account:
            template["serviceAccount"] = props.service_account
        body: dict[str, Any] = {"template": template, "labels": self.gcp.labels_for(address, props.labels)}
        if props.ingress:
            body["ingress"] = props.ingress
        return body

    def _observe(self, raw: Mapping[str, Any], applied: RunServiceProperties | None, *,
                 imported: bool = False) -> Observed:  # fmt: skip
        applied = None if applied is None else self.valid(applied)
        full = str(raw["name"])
        project, location, name = self._split(full)
        template = raw.get("template") or {}
        scaling = template.get("scaling") or {}
        containers: list[dict[str, Any]] = []
        for i, c in enumerate(template.get("containers") or []):
            want = applied.containers[i] if applied is not None and i < len(applied.containers) else None
            ports = [{"container_port": int(p.get("containerPort", 0)), "name": p.get("name") or None}
                     for p in c.get("ports") or []]  # fmt: skip
            if want is not None:
                # what the user left to the service reads as unset
                if not want.ports and ports in ([DEFAULT_PORT], []):
                    ports = []
                for j, p in enumerate(ports):
                    if j < len(want.ports) and want.ports[j].name is None and p["name"] == "http1":
                        p["name"] = None
            containers.append({
                "image": c.get("image"),
                "name": None if want is not None and want.name is None else c.get("name") or None,
                "env": {e["name"]: e.get("value", "") for e in c.get("env") or [] if "valueSource" not in e},
                "ports": ports,
            })  # fmt: skip
        min_count, max_count = scaling.get("minInstanceCount"), scaling.get("maxInstanceCount")
        properties: dict[str, Any] = {
            "name": name,
            "location": location,
            **self.project_field(project, applied.project if applied else None, imported=imported),
            "containers": containers,
            "min_instance_count": int(min_count) if min_count is not None else None,
            "max_instance_count": int(max_count) if max_count is not None else None,
            "ingress": raw.get("ingress"),
            "service_account": template.get("serviceAccount") or None,
            "labels": self.gcp.user_labels(raw.get("labels"), applied.labels if applied else {}),
        }
        if applied is not None:
            for key in ("min_instance_count", "max_instance_count", "ingress", "service_account"):
                if getattr(applied, key) is None:
                    properties[key] = None
        return Observed(
            id=full,
            properties=properties,
            attributes={
                "id": full,
                "name": name,
                "uri": raw.get("uri"),
                "latest_ready_revision": last_segment(raw.get("latestReadyRevision")),
                "uid": raw.get("uid"),
            },
        )

    def _get(self, address: str | None, name: str) -> dict[str, Any] | None:
        got: dict[str, Any] | None = self.call(
            address, f"read Cloud Run service {name.rsplit('/', 1)[-1]}", self.services.get(name=name), missing=True
        )
        return got

    def _ours(self, raw: Mapping[str, Any], address: str) -> bool:
        from cloudorch_gcp.provider import ADDRESS_LABEL, label_value

        return (raw.get("labels") or {}).get(ADDRESS_LABEL) == label_value(address)

    def create(self, address: str, props: RunServiceProperties) -> Observed:
        name = self._name(props)
        parent = name.rsplit("/services/", 1)[0]
        what = f"create Cloud Run service {props.name}"
        try:
            op = self.call(address, what, self.services.create(parent=parent, serviceId=props.name,
                                                                body=self._body(address, props)))  # fmt: skip
        except ProviderError as exc:
            if self.status_of(exc.cause) != 409:
                raise
            existing = self._get(address, name)
            if existing is None or not self._ours(existing, address):
                raise ProviderError(
                    f"{address}: Cloud Run service {name} already exists and was not made for this address",
                    kind=ErrorKind.FATAL,
                    address=address,
                    hint=f"import it: cloudorch import {address} {name}",
                ) from exc
            return self.update(address, name, props, props)  # ours, from an apply whose answer was lost

        def settle() -> Observed:
            self.wait(address, what, op)
            raw = self._get(address, name)
            if raw is None:
                raise ProviderError(f"{address}: {what}: not there after the create", kind=ErrorKind.TRANSIENT,
                                    address=address)  # fmt: skip
            return self._observe(raw, props)

        return self.finish_create(address, name, settle)

    def read(self, address: str, id: str, props: RunServiceProperties) -> Observed | None:
        raw = self._get(address, id)
        return None if raw is None else self._observe(raw, props)

    def _list(self, address: str | None, project: str, location: str) -> list[dict[str, Any]]:
        def fetch(token: str | None) -> Mapping[str, Any]:
            request = self.services.list(parent=f"projects/{project}/locations/{location}", pageSize=500,
                                         pageToken=token)  # fmt: skip
            got: Mapping[str, Any] = self.call(address, "list Cloud Run services", request)
            return got

        return list(pages(fetch, "services"))

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        """One list per project and region answers every service in it."""
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            project, location, _ = self._split(r.id)
            groups[(project, location)].append(i)
        out: list[Observed | None] = [None] * len(requests)
        for (project, location), indexes in groups.items():
            if len(indexes) == 1:
                r = requests[indexes[0]]
                out[indexes[0]] = self.read(r.address, r.id, r.properties)  # type: ignore[arg-type]
                continue
            by_name = {s["name"]: s for s in self._list(requests[indexes[0]].address, project, location)}
            for i in indexes:
                raw = by_name.get(requests[i].id)
                out[i] = None if raw is None else self._observe(raw, requests[i].properties)  # type: ignore[arg-type]
        return out

    def update(self, address: str, id: str, old: RunServiceProperties, new: RunServiceProperties) -> Observed:
        mask = ["template", "labels"] + (["ingress"] if new.ingress else [])
        what = f"update Cloud Run service {new.name}"
        request = self.services.patch(name=id, body=self._body(address, new), updateMask=",".join(mask))
        op = self.call(address, what, request)
        self.wait(address, what, op)
        raw = self._get(address, id)
        if raw is None:
            raise self.gone(address, f"Cloud Run service {id}")
        return self._observe(raw, new)

    def delete(self, address: str, id: str, props: RunServiceProperties) -> None:
        what = f"delete Cloud Run service {id}"
        op = self.call(address, what, self.services.delete(name=id), missing=True)
        if op is not None:
            try:
                self.wait(address, what, op)
            except ProviderError as exc:
                if self.status_of(exc.cause) != 404:
                    raise

    def import_(self, address: str, id: str) -> Observed:
        self._split(id)
        raw = self._get(address, id)
        if raw is None:
            raise ProviderError(f"{address}: Cloud Run service {id} does not exist", kind=ErrorKind.FATAL,
                                address=address)  # fmt: skip
        return self._observe(raw, None, imported=True)

    def find(self, address: str, props: RunServiceProperties) -> Observed | None:
        raw = self._get(address, self._name(props))
        if raw is None or not self._ours(raw, address):
            return None
        return self._observe(raw, props)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            self._split(query.id)
            raw = self._get(address, query.id)
            found = [] if raw is None else [self._observe(raw, None, imported=True)]
        else:
            location = query.filter.get("location")
            if not isinstance(location, str):
                raise ConfigError(
                    f"{address}: a gcp.cloud_run_service lookup needs `location` in its filter (or an `id`)",
                    hint="filter: {location: europe-west1, name: ...}",
                )
            project = query.filter.get("project")
            project = self.project_of(project if isinstance(project, str) else None)
            found = [self._observe(raw, None, imported=True) for raw in self._list(address, project, location)]
        return [o for o in found if matches_filter(o, query.filter)]

    def estimate_seconds(self, props: RunServiceProperties) -> float:
        return 30.0


def last_segment(value: Any) -> str | None:
    """`svc-00002-abc` for `projects/P/locations/L/services/S/revisions/svc-00002-abc` (as is when short)."""
    return None if not value else str(value).rsplit("/", 1)[-1]
