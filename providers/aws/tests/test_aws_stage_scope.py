"""Stages share an AWS account: what one stage tagged must never be taken for the other's.

The VPC is found only by its `cloudorch:address` tag (it has no name), so the tag has to say
which stage made it: `dev.net`, not `net`. Runs the CLI in this process against moto.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

FIXTURE = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "staged_vpc.yaml"


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, Any, str]:
    from cloudorch.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    try:
        doc = json.loads(captured.out)
    except json.JSONDecodeError:
        doc = None
    return code, doc, captured.out + captured.err


def test_one_stages_vpc_is_not_found_as_the_others(
    tmp_path: Path, aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "staged_vpc.yaml"
    shutil.copy(FIXTURE, plan)
    code, _, text = cli(capsys, "apply", plan, "--stage", "dev", "--auto-approve")
    assert code == 0, text
    [vpc] = [v for v in aws("ec2").describe_vpcs()["Vpcs"] if any(t["Key"] == "env" for t in v.get("Tags", []))]
    assert {t["Key"]: t["Value"] for t in vpc["Tags"]}["cloudorch:address"] == "dev.net"

    # staging has made nothing yet: dev's VPC is not "created outside" staging's state
    code, doc, text = cli(capsys, "drift", plan, "--stage", "staging", "--json")
    assert code == 0 and doc["resources"] == [], text
    # and dev's own drift check still recognises its VPC
    code, doc, text = cli(capsys, "drift", plan, "--stage", "dev", "--json")
    assert code == 0 and doc["resources"] == [], text

    code, _, text = cli(capsys, "apply", plan, "--stage", "staging", "--auto-approve")
    assert code == 0, text
    tags = sorted(
        {t["Key"]: t["Value"] for t in v.get("Tags", [])}["cloudorch:address"]
        for v in aws("ec2").describe_vpcs()["Vpcs"]
        if any(t["Key"] == "env" for t in v.get("Tags", []))
    )
    assert tags == ["dev.net", "staging.net"]
