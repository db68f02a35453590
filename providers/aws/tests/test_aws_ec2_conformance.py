"""The conformance kit on the AWS EC2 types (VPC, subnet, security group), against moto; the
examples, censuses and fault seam are those of test_aws_conformance.py."""

from __future__ import annotations

from test_aws_conformance import EC2_EXAMPLES, conformance_env

from cloudorch.testing.conformance import ConformanceSuite

__all__ = ["conformance_env"]  # the fixture, found by pytest in this module's namespace


class TestAwsEc2Conformance(ConformanceSuite):
    max_calls = 2
    examples = EC2_EXAMPLES
