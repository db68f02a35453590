"""`gcp.service_account` and `gcp.project_iam_member`: identities and who may do what.

Owns a service account's create/read/update/delete/import/find/lookup through iam v1, and one
member of one role in a project's IAM policy through cloudresourcemanager v1: a
read-modify-write of the whole policy guarded by its etag, redone when another writer got there
first, touching no member or binding but its own.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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
from cloudorch_gcp.api_type import ApiType, PendingCreates, pages

# --------------------------------------------------------------------------- service accounts


def sa_email(account_id: str, project: str) -> str:
    return f"{account_id}@{project}.iam.gserviceaccount.com"


class ServiceAccountProperties(ResourceProperties):
    account_id: str = prop(
        force_new=True,
        pattern=r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$",
        description="The part of the email before `@` (6-30: a-z, 0-9, -), unique in the project.",
    )
    project: str | None = prop(None, force_new=True, description="Owning project; unset: providers.gcp.project.")
    display_name: str | None = prop(None, max_length=100, description="A human-readable name.")
    description: str | None = prop(None, max_length=256, description="Free text.")


class ServiceAccount(ApiType[ServiceAccountProperties]):
    """A service account."""

    type_name = "gcp.service_account"
    Properties = ServiceAccountProperties
    description = "A service account; account_id is force-new, display_name and description change in place."
    attributes = {
        "id": "projects/PROJECT/serviceAccounts/EMAIL.",
        "email": "The account's email (ACCOUNT_ID@PROJECT.iam.gserviceaccount.com).",
        "member": "serviceAccount:EMAIL, the form an IAM binding names it in.",
        "unique_id": "The account's numeric unique id.",
        "name": "projects/PROJECT/serviceAccounts/EMAIL, the API's resource name.",
    }
    # an update changes only the display name and description: email and unique id are kept
    recomputed_on_update = frozenset()

    def __init__(self, provider: Any) -> None:
        super().__init__(provider)
        self.pending = PendingCreates()

    @property
    def accounts(self) -> Any:
        return self.api("iam", "v1").projects().serviceAccounts()

    def _name(self, project: str, account_id: str) -> str:
        return f"projects/{project}/serviceAccounts/{sa_email(account_id, project)}"

    def _get(self, address: str | None, name: str) -> dict[str, Any] | None:
        got: dict[str, Any] | None = self.call(
            address, f"read service account {name.rsplit('/', 1)[-1]}", self.accounts.get(name=name), missing=True
        )
        return got

    def _observe(self, raw: Mapping[str, Any], applied: ServiceAccountProperties | None, *,
                 imported: bool = False) -> Observed:  # fmt: skip
        email = str(raw["email"])
        project = str(raw.get("projectId") or email.split("@", 1)[1].split(".", 1)[0])
        name = str(raw.get("name") or f"projects/{project}/serviceAccounts/{email}")
        properties = {
            "account_id": email.split("@", 1)[0],
            **self.project_field(project, applied.project if applied else None, imported=imported),
            "display_name": raw.get("displayName") or None,
            "description": raw.get("description") or None,
        }
        return Observed(
            id=name,
            properties=properties,
            attributes={
                "id": name,
                "email": email,
                "member": f"serviceAccount:{email}",
                "unique_id": raw.get("uniqueId"),
                "name": name,
            },
        )

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        # the email follows from the account id and the project; the unique id is the service's
        account_id, project = desired.get("account_id"), desired.get("project") or self.default_project
        if isinstance(account_id, str) and isinstance(project, str):
            email = sa_email(account_id, project)
            name = f"projects/{project}/serviceAccounts/{email}"
            return {"id": name, "name": name, "email": email, "member": f"serviceAccount:{email}"}
        return {}

    def create(self, address: str, props: ServiceAccountProperties) -> Observed:
        project = self.project_of(props.project)
        name = self._name(project, props.account_id)
        key = f"{address}\0{name}"
        retried = self.pending.sent_before(key)
        self.pending.request_id(key)
        account: dict[str, Any] = {}
        if props.display_name is not None:
            account["displayName"] = props.display_name
        if props.description is not None:
            account["description"] = props.description
        body = {"accountId": props.account_id, "serviceAccount": account}
        what = f"create service account {props.account_id}"
        try:
            raw = self.call(address, what, self.accounts.create(name=f"projects/{project}", body=body))
        except ProviderError as exc:
            if not (retried and self.status_of(exc.cause) == 409):
                raise
            # our own create acted and its answer was lost: the account is ours
            raw = self._get(address, name)
            if raw is None:
                raise
        self.pending.done(key)
        return self._observe(raw, props)

    def read(self, address: str, id: str, props: ServiceAccountProperties) -> Observed | None:
        raw = self._get(address, id)
        return None if raw is None else self._observe(raw, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        """One list per project answers every account in it."""
        if len(requests) < 2:
            return [self.read(r.address, r.id, r.properties) for r in requests]  # type: ignore[arg-type]
        by_project: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            by_project[self._project_of_id(r.id)].append(i)
        out: list[Observed | None] = [None] * len(requests)
        for project, indexes in by_project.items():
            by_email = {a["email"]: a for a in self._list(requests[indexes[0]].address, project)}
            for i in indexes:
                raw = by_email.get(requests[i].id.rsplit("/", 1)[-1])
                out[i] = None if raw is None else self._observe(raw, requests[i].properties)  # type: ignore[arg-type]
        return out

    def _project_of_id(self, id: str) -> str:
        parts = id.split("/")
        if len(parts) != 4 or parts[0] != "projects" or parts[2] != "serviceAccounts":
            raise ConfigError(
                f"not a service account id: {id!r}",
                hint="expected projects/PROJECT/serviceAccounts/EMAIL, or the account's email",
            )
        return parts[1]

    def _list(self, address: str | None, project: str) -> list[dict[str, Any]]:
        def fetch(token: str | None) -> Mapping[str, Any]:
            request = self.accounts.list(name=f"projects/{project}", pageSize=100, pageToken=token)
            got: Mapping[str, Any] = self.call(address, "list service accounts", request)
            return got

        return list(pages(fetch, "accounts"))

    def update(self, address: str, id: str, old: ServiceAccountProperties, new: ServiceAccountProperties) -> Observed:
        body = {
            "serviceAccount": {"displayName": new.display_name or "", "description": new.description or ""},
            "updateMask": "displayName,description",
        }
        self.call(address, f"update service account {new.account_id}", self.accounts.patch(name=id, body=body))
        raw = self._get(address, id)
        if raw is None:
            raise self.gone(address, f"service account {id}")
        return self._observe(raw, new)

    def delete(self, address: str, id: str, props: ServiceAccountProperties) -> None:
        self.call(address, f"delete service account {id}", self.accounts.delete(name=id), missing=True)

    def _id_of(self, value: str) -> str:
        """The API name for an id, an email, or `projects/P/serviceAccounts/EMAIL`."""
        if value.startswith("projects/"):
            self._project_of_id(value)
            return value
        if "@" in value:
            project = value.split("@", 1)[1].split(".", 1)[0]
            return f"projects/{project}/serviceAccounts/{value}"
        raise ConfigError(
            f"not a service account id: {value!r}",
            hint="import a service account by its email or projects/PROJECT/serviceAccounts/EMAIL",
        )

    def import_(self, address: str, id: str) -> Observed:
        name = self._id_of(id)
        raw = self._get(address, name)
        if raw is None:
            raise ProviderError(f"{address}: service account {id} does not exist", kind=ErrorKind.FATAL,
                                address=address)  # fmt: skip
        return self._observe(raw, None, imported=True)

    def find(self, address: str, props: ServiceAccountProperties) -> Observed | None:
        # the account id is the identity: accounts carry no labels to mark them with
        raw = self._get(address, self._name(self.project_of(props.project), props.account_id))
        return None if raw is None else self._observe(raw, props)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            raw = self._get(address, self._id_of(query.id))
            found = [] if raw is None else [self._observe(raw, None, imported=True)]
        else:
            project = query.filter.get("project")
            project = self.project_of(project if isinstance(project, str) else None)
            found = [self._observe(raw, None, imported=True) for raw in self._list(address, project)]
        return [o for o in found if matches_filter(o, query.filter)]

    def estimate_seconds(self, props: ServiceAccountProperties) -> float:
        return 2.0


# --------------------------------------------------------------------------- project IAM members

#: a role: predefined (`roles/X`) or custom (`projects/P/roles/X`, `organizations/O/roles/X`)
ROLE_PATTERN = r"^(roles/[A-Za-z0-9_.]+|(projects|organizations)/[A-Za-z0-9_.:-]+/roles/[A-Za-z0-9_.]+)$"
#: how many times a policy write is redone after another writer changed the policy first
ETAG_ATTEMPTS = 12


@dataclass(eq=False)
class _QueuedChange:
    """One writer's change of a project's policy, and what became of it once a batch wrote it."""

    change: Callable[[dict[str, Any]], bool]
    finished: bool = False
    policy: dict[str, Any] | None = None
    error: BaseException | None = None


class IamMemberProperties(ResourceProperties):
    project: str | None = prop(None, force_new=True, description="The project; unset: providers.gcp.project.")
    role: str = prop(force_new=True, pattern=ROLE_PATTERN, description="`roles/NAME` or a custom role's full name.")
    member: str = prop(
        force_new=True,
        pattern=r"^[A-Za-z]+:.+$|^allUsers$|^allAuthenticatedUsers$",
        description="Who: `user:EMAIL`, `serviceAccount:EMAIL` (a service account's `member`), `group:EMAIL`, "
        "`domain:DOMAIN`, `principal://...`.",
    )


def parse_member_id(id: str) -> tuple[str, str, str]:
    """(project, role, member) of `PROJECT/ROLE/MEMBER`, or of `PROJECT ROLE MEMBER` (as Terraform
    imports it). A role holds slashes; a member may too (`principal://...`)."""
    words = id.split()
    if len(words) == 3:
        return words[0], words[1], words[2]
    project, _, rest = id.partition("/")
    match = re.match(r"^(roles/[^/]+|(?:projects|organizations)/[^/]+/roles/[^/]+)/(.+)$", rest)
    if not project or match is None:
        raise ConfigError(
            f"not a project IAM member id: {id!r}",
            hint="expected PROJECT/ROLE/MEMBER, e.g. my-project/roles/viewer/user:ana@example.com",
        )
    return project, match.group(1), match.group(2)


class ProjectIamMember(ApiType[IamMemberProperties]):
    """One member of one role in a project's IAM policy (the policy's other members are left alone)."""

    type_name = "gcp.project_iam_member"
    Properties = IamMemberProperties
    description = (
        "One member of one role in a project's IAM policy, added and removed by an etag-guarded "
        "read-modify-write that never touches other members."
    )
    attributes = {"id": "PROJECT/ROLE/MEMBER."}
    recomputed_on_update = frozenset()

    def __init__(self, provider: Any) -> None:
        super().__init__(provider)
        self._locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._locks_lock = threading.Lock()
        #: project -> changes waiting for the project's turn (see `_modify`)
        self._queued: dict[str, list[_QueuedChange]] = defaultdict(list)

    @property
    def projects(self) -> Any:
        return self.api("cloudresourcemanager", "v1").projects()

    def _lock(self, project: str) -> threading.Lock:
        # this process's writers of one policy take turns; the etag guards against the others
        with self._locks_lock:
            return self._locks[project]

    def _policy(self, address: str | None, project: str) -> dict[str, Any] | None:
        request = self.projects.getIamPolicy(resource=project, body={"options": {"requestedPolicyVersion": 3}})
        got: dict[str, Any] | None = self.call(address, f"read the IAM policy of project {project}", request,
                                               missing=True)  # fmt: skip
        return got

    @staticmethod
    def _has(policy: Mapping[str, Any], role: str, member: str) -> bool:
        return any(
            b.get("role") == role and not b.get("condition") and member in (b.get("members") or [])
            for b in policy.get("bindings") or []
        )

    def _observed(self, project: str, role: str, member: str, applied: IamMemberProperties | None, *,
                  imported: bool = False) -> Observed:  # fmt: skip
        id = f"{project}/{role}/{member}"
        properties = {
            **self.project_field(project, applied.project if applied else None, imported=imported),
            "role": role,
            "member": member,
        }
        return Observed(id=id, properties=properties, attributes={"id": id})

    def _modify(
        self, address: str, project: str, what: str, change: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        """Apply `change` to the project's policy (it edits the policy it is given and says
        whether it changed anything); the final policy, or None if the project is gone.

        Changes of one project's policy made at once in this process are written together: a
        writer that finds the policy's turn taken queues its change, and the writer holding the
        turn applies every change queued by then in one read-modify-write. A queued change whose
        batch failed is written again by its own writer, so an error it meets names its own address.
        """
        mine = _QueuedChange(change)
        with self._locks_lock:
            self._queued[project].append(mine)
        with self._lock(project):
            if mine.finished and mine.error is None:
                return mine.policy  # written in another writer's batch
            with self._locks_lock:
                batch = [c for c in self._queued[project] if not c.finished] or [mine]
                self._queued[project] = [c for c in self._queued[project] if c not in batch]
            if mine not in batch:
                batch.append(mine)
            try:
                policy = self._write(address, project, what, batch)
            except BaseException as exc:
                for queued in batch:
                    queued.finished, queued.error = True, exc
                raise
            for queued in batch:
                queued.finished, queued.policy, queued.error = True, policy, None
            return policy

    def _write(
        self, address: str, project: str, what: str, batch: Sequence[_QueuedChange]
    ) -> dict[str, Any] | None:
        """Read the policy, apply every change of `batch`, write it back with the etag it was read
        with; the whole read-modify-write redone when the etag is stale."""
        for attempt in range(1, ETAG_ATTEMPTS + 1):
            policy = self._policy(address, project)
            if policy is None:
                return None
            if not any([queued.change(policy) for queued in batch]):  # every change applied
                return policy
            request = self.projects.setIamPolicy(resource=project, body={"policy": policy})
            try:
                written: dict[str, Any] = self.call(address, what, request)
                return written
            except ProviderError as exc:
                if not self._stale_etag(exc) or attempt == ETAG_ATTEMPTS:
                    raise
            time.sleep(min(2.0, 0.05 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
        raise AssertionError("unreachable")

    def _stale_etag(self, exc: ProviderError) -> bool:
        """Whether a policy write failed because another writer changed the policy first
        (409 ABORTED; a precondition 412 from older front ends)."""
        return self.status_of(exc.cause) in (409, 412)

    def create(self, address: str, props: IamMemberProperties) -> Observed:
        project = self.project_of(props.project)

        def add(policy: dict[str, Any]) -> bool:
            if self._has(policy, props.role, props.member):
                return False  # already there (a lost answer of ours, or someone else's grant)
            bindings = policy.setdefault("bindings", [])
            for b in bindings:
                if b.get("role") == props.role and not b.get("condition"):
                    b.setdefault("members", []).append(props.member)
                    break
            else:
                bindings.append({"role": props.role, "members": [props.member]})
            return True

        policy = self._modify(address, project, f"add {props.member} to {props.role} in project {project}", add)
        if policy is None:
            raise ProviderError(f"{address}: project {project} does not exist", kind=ErrorKind.FATAL, address=address,
                                hint="check `project` (and providers.gcp.project)")  # fmt: skip
        return self._observed(project, props.role, props.member, props)

    def read(self, address: str, id: str, props: IamMemberProperties) -> Observed | None:
        project, role, member = parse_member_id(id)
        policy = self._policy(address, project)
        if policy is None or not self._has(policy, role, member):
            return None
        return self._observed(project, role, member, props)

    def read_many(self, requests: Sequence[ReadRequest]) -> list[Observed | None]:
        """One policy read per project answers every member in it."""
        by_project: dict[str, list[int]] = defaultdict(list)
        parsed = [parse_member_id(r.id) for r in requests]
        for i, (project, _, _) in enumerate(parsed):
            by_project[project].append(i)
        out: list[Observed | None] = [None] * len(requests)
        for project, indexes in by_project.items():
            policy = self._policy(requests[indexes[0]].address, project)
            for i in indexes:
                _, role, member = parsed[i]
                if policy is not None and self._has(policy, role, member):
                    applied = requests[i].properties
                    out[i] = self._observed(project, role, member, applied)  # type: ignore[arg-type]
        return out

    def update(self, address: str, id: str, old: IamMemberProperties, new: IamMemberProperties) -> Observed:
        # every property is force-new: an update only takes the plan's spelling of the same member
        seen = self.read(address, id, new)
        if seen is None:
            raise self.gone(address, f"{new.member} in {new.role}")
        return seen

    def delete(self, address: str, id: str, props: IamMemberProperties) -> None:
        project, role, member = parse_member_id(id)

        def remove(policy: dict[str, Any]) -> bool:
            changed = False
            kept = []
            for b in policy.get("bindings") or []:
                if b.get("role") == role and not b.get("condition") and member in (b.get("members") or []):
                    b["members"] = [m for m in b["members"] if m != member]
                    changed = True
                    if not b["members"]:
                        continue  # an empty binding is dropped, as the service itself does
                kept.append(b)
            policy["bindings"] = kept
            return changed

        self._modify(address, project, f"remove {member} from {role} in project {project}", remove)

    def import_(self, address: str, id: str) -> Observed:
        project, role, member = parse_member_id(id)
        policy = self._policy(address, project)
        if policy is None or not self._has(policy, role, member):
            raise ProviderError(f"{address}: {member} does not hold {role} in project {project}",
                                kind=ErrorKind.FATAL, address=address)  # fmt: skip
        return self._observed(project, role, member, None, imported=True)

    def find(self, address: str, props: IamMemberProperties) -> Observed | None:
        project = self.project_of(props.project)
        return self.read(address, f"{project}/{props.role}/{props.member}", props)

    def lookup(self, address: str, query: LookupQuery) -> list[Observed]:
        if query.id is not None:
            project, role, member = parse_member_id(query.id)
            policy = self._policy(address, project)
            pairs = [(role, member)] if policy is not None and self._has(policy, role, member) else []
        else:
            wanted = query.filter.get("project")
            project = self.project_of(wanted if isinstance(wanted, str) else None)
            policy = self._policy(address, project)
            pairs = [
                (b["role"], m)
                for b in (policy or {}).get("bindings") or []
                if not b.get("condition")
                for m in b.get("members") or []
            ]
        found = [self._observed(project, r, m, None, imported=True) for r, m in pairs]
        return [o for o in found if matches_filter(o, query.filter)]

    def plan_create(self, desired: Mapping[str, Any]) -> dict[str, Any]:
        project = desired.get("project") or self.default_project
        role, member = desired.get("role"), desired.get("member")
        if all(isinstance(v, str) for v in (project, role, member)):
            return {"id": f"{project}/{role}/{member}"}
        return {}

    def estimate_seconds(self, props: IamMemberProperties) -> float:
        return 2.0
