"""Numeric provider settings are checked before anything runs, with file:line, field and range."""

from __future__ import annotations

from pathlib import Path

import pytest

CASES = [
    # provider, resource type, the block's YAML, the field, the range the hint must give
    ("core", "core.null", "max_concurrency: -1", "max_concurrency", "1 <= max_concurrency"),
    ("core", "core.null", "max_concurrency: 0", "max_concurrency", "1 <= max_concurrency"),
    ("aws", "aws.s3_bucket", "max_concurrency: 0", "max_concurrency", "1 <= max_concurrency"),
    ("aws", "aws.s3_bucket", "max_attempts: -3", "max_attempts", "1 <= max_attempts"),
    (
        "aws",
        "aws.s3_bucket",
        "assume_role: {role_arn: 'arn:aws:iam::1:role/r', duration_seconds: 60}",
        "assume_role.duration_seconds",
        "900 <= duration_seconds <= 43200",
    ),
    ("azure", "azure.resource_group", "timeout: 0", "timeout", "0 < timeout"),
    ("azure", "azure.resource_group", "polling_interval: -1", "polling_interval", "0 <= polling_interval"),
    ("azure", "azure.resource_group", "max_attempts: 0", "max_attempts", "1 <= max_attempts"),
    ("gcp", "gcp.storage_bucket", "timeout: -5", "timeout", "0 < timeout"),
    ("gcp", "gcp.storage_bucket", "max_concurrency: 0", "max_concurrency", "1 <= max_concurrency"),
]


def _plan(tmp_path: Path, provider: str, type_name: str, block: str) -> Path:
    plan = tmp_path / "settings.yaml"
    plan.write_text(
        "version: 1\n"
        "name: settings\n"
        "providers:\n"
        f"  {provider}:\n"
        f"    {block}\n"
        "resources:\n"
        f"  r: {{type: {type_name}, properties: {{name: cloudorch-settings-test}}}}\n"
        if provider != "core"
        else "version: 1\nname: settings\nproviders:\n  core:\n"
        f"    {block}\nresources:\n  r: {{type: core.null}}\n"
    )
    return plan


@pytest.mark.parametrize(("provider", "type_name", "block", "field", "allowed"), CASES)
def test_a_numeric_setting_out_of_range_is_a_located_error(  # type: ignore[no-untyped-def]
    cli, tmp_path: Path, provider: str, type_name: str, block: str, field: str, allowed: str
) -> None:
    plan = _plan(tmp_path, provider, type_name, block)
    r = cli("validate", str(plan))
    assert r.code == 1, r.out + r.err
    assert "Internal error" not in r.err
    assert "settings.yaml:5:" in r.err  # the line of the setting
    assert f"providers.{provider}.{field}" in r.err
    assert f"allowed: {allowed}" in r.err


def test_a_setting_of_the_wrong_type_is_a_located_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, "core", "core.null", "max_concurrency: lots")
    r = cli("plan", str(plan))
    assert r.code == 1
    assert "settings.yaml:5:" in r.err and "max_concurrency" in r.err
    assert "allowed: 1 <= max_concurrency (a whole number)" in r.err


def test_settings_in_range_are_accepted(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, "core", "core.null", "max_concurrency: 4")
    r = cli("apply", str(plan), "--auto-approve")
    assert r.code == 0, r.out + r.err
