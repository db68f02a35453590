"""Policy as code: built-in rules and Rego (OPA) policies over a changeset, a resource or live state,
with advisory / mandatory / hard enforcement and CI reports (`cloudorch/policy/README.md`).

It returns reports and raises `CloudorchError`s, never prints; it imports the ground floor,
`changes` and `state`, never `engine`, `run`, `release`, `api` or `cli`.
"""

from cloudorch.policy.actor import Actor, current_actor
from cloudorch.policy.builtin import RULES as BUILTIN_RULES
from cloudorch.policy.document import build_change_input, build_input, build_state_input
from cloudorch.policy.formats import FORMATS as REPORT_FORMATS
from cloudorch.policy.formats import parse_report_target
from cloudorch.policy.loader import load_policies
from cloudorch.policy.model import (
    Level,
    Override,
    OverrideRefusedError,
    PolicyBlockedError,
    PolicyEvaluationError,
    PolicyInfo,
    PolicyLoadError,
    RegoTestResult,
    Violation,
)
from cloudorch.policy.policyset import PolicySet
from cloudorch.policy.rego import run_rego_tests
from cloudorch.policy.report import PolicyReport

__all__ = [
    "BUILTIN_RULES",
    "REPORT_FORMATS",
    "Actor",
    "Level",
    "Override",
    "OverrideRefusedError",
    "PolicyBlockedError",
    "PolicyEvaluationError",
    "PolicyInfo",
    "PolicyLoadError",
    "PolicyReport",
    "PolicySet",
    "RegoTestResult",
    "Violation",
    "build_change_input",
    "build_input",
    "build_state_input",
    "current_actor",
    "load_policies",
    "parse_report_target",
    "run_rego_tests",
]
