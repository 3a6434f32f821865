"""The pure decision core: catalogs, the carbon model, jobs, decisions and policies.

No I/O, no clock, no logging: policies are given ``now``, forecasts, devices and jobs, and
return decisions with reasons. The carbon model lives in :mod:`policies.footprint`.
"""

from policies import builtin
from policies.base import (
    Policy,
    UnknownPolicyError,
    get_policy,
    policy_names,
    register_policy,
    with_plan_interval,
    with_recalibration,
)
from policies.errors import PoliciesError
from policies.types import (
    Action,
    Alternative,
    Decision,
    Device,
    JobSpec,
    PlannedStart,
    ZoneIntensity,
)

__all__ = [
    "Action",
    "Alternative",
    "Decision",
    "Device",
    "JobSpec",
    "PlannedStart",
    "PoliciesError",
    "Policy",
    "UnknownPolicyError",
    "ZoneIntensity",
    "builtin",
    "get_policy",
    "policy_names",
    "register_policy",
    "with_plan_interval",
    "with_recalibration",
]
