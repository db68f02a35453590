"""What the conformance kit does not cover for the AWS service types, against moto.

The kit's `read_many` check reads one object, which these types answer with `read`: here the
bulk path (list calls, batches) is compared with `read` and its calls counted. Also: deletion
windows (a KMS key and a secret are scheduled, not gone at once), ECR's `force_delete`, what an
update recomputes, retention validated at load, and one plan file wiring the types by
references through the CLI (apply, re-plan with no change, no secret in clear, destroy).
"""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cloudorch.provider.contract import RECOMPUTED, Observed, ProviderError, ReadRequest
from cloudorch_aws import AwsProvider
from cloudorch_aws.faults import CallCounter

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures"
N = 3  # one deleted and two present: the bulk path needs two or more


def _make(provider: AwsProvider, type_name: str, props: dict[str, Any], address: str) -> tuple[Any, Observed]:
    rt = provider.resource_type(type_name)
    model = rt.Properties.model_validate(props)
    return model, rt.create(address, model)


def _examples(key_id: str, key_arn: str) -> dict[str, list[dict[str, Any]]]:
    return {
        "aws.kms_key": [{"description": f"k{i}", "tags": {"n": str(i)}} for i in range(N)],
        "aws.kms_alias": [{"name": f"alias/a{i}", "target_key_id": key_id} for i in range(N)],
        "aws.secretsmanager_secret": [{"name": f"s{i}", "secret_string": f"v{i}", "tags": {"n": str(i)}}
                                      for i in range(N)],
        "aws.ssm_parameter": [{"name": f"/p/{i}", "type": "SecureString", "value": f"v{i}", "key_id": key_arn}
                              for i in range(N)],
        "aws.cloudwatch_log_group": [{"name": f"/g/{i}", "retention_in_days": 7} for i in range(N)],
        "aws.ecr_repository": [{"name": f"r{i}", "scan_on_push": i % 2 == 0} for i in range(N)],
    }


def test_bulk_refresh_agrees_with_read_in_at_most_two_calls_per_object(provider: AwsProvider, aws: Any) -> None:
    key = aws("kms").create_key()["KeyMetadata"]
    counter = CallCounter()
    for type_name, examples in _examples(key["KeyId"], key["Arn"]).items():
        rt = provider.resource_type(type_name)
        requests = []
        for i, props in enumerate(examples):
            model, made = _make(provider, type_name, props, f"r{i}")
            requests.append(ReadRequest(f"r{i}", made.id, model))
        gone = ReadRequest("gone", requests[0].id, requests[0].properties)
        rt.delete("gone", gone.id, gone.properties)
        counter.reset()
        counter(rt.client)  # hooks added now count from here on
        bulk = rt.read_many(requests)
        calls = counter.total()
        single = [rt.read(r.address, r.id, r.properties) for r in requests]
        assert bulk[0] is None and single[0] is None, f"{type_name}: a deleted object reads as present"
        for b, s in zip(bulk[1:], single[1:], strict=True):
            assert b is not None and s is not None
            assert (b.id, b.properties, b.attributes) == (s.id, s.properties, s.attributes), type_name
        assert calls <= 2 * N, f"{type_name}: {calls} calls to refresh {N} objects"


def test_kms_key_destroy_schedules_deletion_and_then_reads_as_gone(provider: AwsProvider, aws: Any) -> None:
    model, made = _make(provider, "aws.kms_key", {"deletion_window_in_days": 9}, "key")
    rt = provider.resource_type("aws.kms_key")
    rt.delete("key", made.id, model)
    meta = aws("kms").describe_key(KeyId=made.id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    days = (meta["DeletionDate"] - datetime.datetime.now(datetime.UTC)).total_seconds() / 86400
    assert 8.5 < days <= 9.0, f"deletion scheduled in {days:.2f} days, asked 9"
    assert rt.read("key", made.id, model) is None
    assert rt.find("key", model) is None, "a key pending deletion was found for its address"
    rt.delete("key", made.id, model)  # again: not an error


@pytest.mark.parametrize(("window", "left"), [(7, True), (0, False)])
def test_secret_destroy_keeps_it_for_the_recovery_window_or_deletes_it_at_once(
    provider: AwsProvider, aws: Any, window: int, left: bool
) -> None:
    model, made = _make(
        provider, "aws.secretsmanager_secret", {"name": "s", "secret_string": "v", "recovery_window_in_days": window},
        "secret",
    )  # fmt: skip
    rt = provider.resource_type("aws.secretsmanager_secret")
    rt.delete("secret", made.id, model)
    sm = aws("secretsmanager")
    if left:
        assert sm.describe_secret(SecretId=made.id).get("DeletedDate"), "the secret is not scheduled for deletion"
    else:
        with pytest.raises(sm.exceptions.ResourceNotFoundException):
            sm.describe_secret(SecretId=made.id)
    assert rt.read("secret", made.id, model) is None
    rt.delete("secret", made.id, model)  # again (pending or gone): not an error


def test_ecr_repository_with_images_is_destroyed_only_with_force_delete(provider: AwsProvider, aws: Any) -> None:
    ecr = aws("ecr")
    model, made = _make(provider, "aws.ecr_repository", {"name": "web"}, "repo")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {}, "layers": []}  # fmt: skip
    ecr.put_image(repositoryName="web", imageManifest=json.dumps(manifest), imageTag="v1")
    rt = provider.resource_type("aws.ecr_repository")
    with pytest.raises(ProviderError) as err:
        rt.delete("repo", made.id, model)
    assert err.value.hint is not None and "force_delete" in err.value.hint
    assert ecr.describe_repositories(repositoryNames=["web"])["repositories"]
    forced = rt.Properties.model_validate({"name": "web", "force_delete": True})
    assert rt.update("repo", made.id, model, forced).id == made.id  # a destroy-time setting: in place
    rt.delete("repo", made.id, forced)
    assert rt.read("repo", made.id, forced) is None


def test_update_recomputes_a_version_only_when_the_value_changes(provider: AwsProvider) -> None:
    secret = provider.resource_type("aws.secretsmanager_secret")
    prior = Observed("arn:s", {"name": "s", "secret_string": "old", "tags": {}}, {"arn": "arn:s", "name": "s",
                                                                                 "version_id": "v1"})  # fmt: skip
    assert secret.plan_update(prior, {"name": "s", "secret_string": "old", "tags": {"a": "b"}})["version_id"] == "v1"
    assert secret.plan_update(prior, {"name": "s", "secret_string": "new", "tags": {}})["version_id"] is RECOMPUTED
    hashed = Observed("arn:s", {"secret_string": {"$sensitive": "sha256:00"}}, prior.attributes)
    assert secret.plan_update(hashed, {"secret_string": "old"})["version_id"] is RECOMPUTED  # not refreshed
    assert secret.plan_update(prior, {"secret_string": "new"})["arn"] == "arn:s"

    param = provider.resource_type("aws.ssm_parameter")
    prior = Observed("/p", {"name": "/p", "value": "old", "description": "", "tags": {}},
                     {"arn": "arn:p", "name": "/p", "version": 3})  # fmt: skip
    assert param.plan_update(prior, {**prior.properties, "tags": {"a": "b"}})["version"] == 3
    assert param.plan_update(prior, {**prior.properties, "description": "d"})["version"] is RECOMPUTED
    assert param.plan_update(prior, {**prior.properties, "value": "new"})["arn"] == "arn:p"

    alias = provider.resource_type("aws.kms_alias")
    prior = Observed("alias/a", {"name": "alias/a", "target_key_id": "k1"},
                     {"name": "alias/a", "arn": "arn:alias/a", "target_key_arn": "arn:key/k1"})  # fmt: skip
    after = alias.plan_update(prior, {"name": "alias/a", "target_key_id": "k2"})
    assert after["target_key_arn"] is RECOMPUTED and after["arn"] == "arn:alias/a"


def test_values_aws_would_refuse_are_refused_when_the_plan_loads(provider: AwsProvider) -> None:
    bad = [
        ("aws.cloudwatch_log_group", {"name": "g", "retention_in_days": 8}),
        ("aws.ssm_parameter", {"name": "/p", "type": "SecureString", "insecure_value": "x"}),
        ("aws.ssm_parameter", {"name": "/p", "value": "x", "insecure_value": "x"}),
        ("aws.secretsmanager_secret", {"name": "s", "recovery_window_in_days": 3}),
        ("aws.kms_key", {"key_spec": "RSA_2048", "enable_key_rotation": True}),
        ("aws.kms_alias", {"name": "alias/aws/mine", "target_key_id": "k"}),
        ("aws.ecr_repository", {"name": "Web"}),
    ]
    for type_name, props in bad:
        with pytest.raises(ValueError):
            provider.resource_type(type_name).Properties.model_validate(props)


def _cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_bad_retention_is_a_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.yaml"
    shutil.copy(FIXTURES / "aws_bad_retention.yaml", plan)
    code, text = _cli(capsys, "plan", plan)
    assert code == 1
    assert "plan.yaml:9" in text and "retention_in_days" in text and "nearest: 7" in text, text


def test_wired_plan_applies_replans_clean_keeps_secrets_out_and_destroys(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.yaml"
    shutil.copy(FIXTURES / "aws_service_secrets.yaml", plan)
    code, text = _cli(capsys, "apply", plan, "--auto-approve", "--json")
    assert code == 0, text
    password, url = "correct-horse-battery-staple", "tr0ub4dor"
    assert password not in text and url not in text, "apply --json shows a sensitive value in clear"
    secret = aws("secretsmanager").get_secret_value(SecretId="app/db-password")
    assert secret["SecretString"] == password
    key_arn = aws("kms").describe_key(KeyId="alias/app-data")["KeyMetadata"]["Arn"]
    assert aws("secretsmanager").describe_secret(SecretId="app/db-password")["KmsKeyId"] == key_arn
    param = aws("ssm").get_parameter(Name="/app/db-secret-arn")["Parameter"]
    assert param["Value"] == secret["ARN"]
    code, text = _cli(capsys, "plan", plan, "--detailed-exitcode", "--json")
    assert code == 0, f"a re-plan after apply shows changes: {text}"
    assert password not in text and url not in text, "plan --json shows a sensitive value in clear"
    stored = "\n".join(p.read_text(errors="replace") for p in (tmp_path / ".cloudorch").rglob("*") if p.is_file())
    assert password not in stored and url not in stored, "state, journal or history holds a secret in clear"
    code, text = _cli(capsys, "destroy", plan, "--auto-approve")
    assert code == 0, text
    assert not aws("ecr").describe_repositories()["repositories"]
    assert not aws("ssm").describe_parameters()["Parameters"]
    assert not aws("secretsmanager").list_secrets()["SecretList"]


def test_lookup_finds_by_id_and_by_filter_and_never_returns_a_secret_value(provider: AwsProvider, aws: Any) -> None:
    from cloudorch.provider.contract import LookupQuery

    key = aws("kms").create_key()["KeyMetadata"]
    for type_name, examples in _examples(key["KeyId"], key["Arn"]).items():
        rt = provider.resource_type(type_name)
        made = [_make(provider, type_name, props, f"r{i}")[1] for i, props in enumerate(examples[:2])]
        by_id = rt.lookup("data.x", LookupQuery(id=made[1].id))
        assert [o.id for o in by_id] == [made[1].id], type_name
        wanted = {k: v for k, v in made[0].properties.items() if k in ("name", "description", "tags") and v}
        by_filter = rt.lookup("data.x", LookupQuery(filter=wanted))
        assert made[0].id in [o.id for o in by_filter], f"{type_name}: {wanted} finds {[o.id for o in by_filter]}"
        for seen in by_id + by_filter:
            assert seen.properties.get("secret_string") is None and seen.properties.get("value") is None, type_name
