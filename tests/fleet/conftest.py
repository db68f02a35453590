"""Fleets written by the tests: a network stack read by many service stacks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

NETWORK_CORE = """\
version: 1
name: network
resources:
  vpc: {type: core.null, properties: {values: {cidr: 10.0.0.0/16}}}
outputs:
  vpc_id: "${resources.vpc.id}"
  cidr: "${resources.vpc.values.cidr}"
"""

NETWORK_AWS = """\
version: 1
name: network
providers:
  aws: {region: us-east-1}
resources:
  vpc: {type: aws.vpc, properties: {cidr_block: 10.0.0.0/16, tags: {Name: fleet-net}}}
outputs:
  vpc_id: "${resources.vpc.id}"
"""

SERVICE_CORE = """\
version: 1
name: svc{i}
stacks:
  network: {{plan: ../network/plan.yaml}}
resources:
  app:
    type: core.null
    properties: {{values: {{vpc: "${{stacks.network.outputs.vpc_id}}", n: {i}}}, fail_on_create: {fail}}}
outputs:
  app_id: "${{resources.app.id}}"
"""

SERVICE_AWS = """\
version: 1
name: bucket{i}
providers:
  aws: {{region: us-east-1}}
stacks:
  network: {{plan: ../network/plan.yaml}}
resources:
  data:
    type: aws.s3_bucket
    properties: {{name: fleet-bucket-{i}, tags: {{vpc: "${{stacks.network.outputs.vpc_id}}"}}}}
"""

# reads a service stack: the third layer
EDGE = """\
version: 1
name: edge
stacks:
  svc: {plan: ../services/svc0.yaml}
resources:
  route: {type: core.null, properties: {values: {to: "${stacks.svc.outputs.app_id}"}}}
"""


@pytest.fixture
def make_fleet(tmp_path: Path) -> Callable[..., Path]:
    def make(services: int = 5, buckets: int = 0, *, aws_network: bool = False, failing: tuple[int, ...] = (),
             edge: bool = True) -> Path:
        root = tmp_path / "fleet"
        (root / "network").mkdir(parents=True)
        (root / "services").mkdir()
        (root / "network" / "plan.yaml").write_text(NETWORK_AWS if aws_network else NETWORK_CORE)
        for i in range(services):
            text = SERVICE_CORE.format(i=i, fail="true" if i in failing else "false")
            (root / "services" / f"svc{i}.yaml").write_text(text)
        for i in range(buckets):
            (root / "services" / f"bucket{i}.yaml").write_text(SERVICE_AWS.format(i=i))
        if edge and services:
            (root / "edge").mkdir()
            (root / "edge" / "plan.yaml").write_text(EDGE)
        return root

    return make
