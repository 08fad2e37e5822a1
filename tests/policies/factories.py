"""Seed 000's policy payloads, exactly as written (``tests.factories.policy`` makes
policies through the service)."""

from __future__ import annotations

import copy
from typing import Any

# seed 000, "Create Rate Limit Policy", exactly as written
RATE_LIMIT_SEED: dict[str, Any] = {
    "policy_name": "job-agent-rate-limit",
    "policy_type": "rate_limit",
    "applies_to": "agent",
    "target_agent_id": "agent_job_app_123",
    "rules": {"max_executions": 50, "window_minutes": 60, "action_on_violation": "queue"},
    "enabled": True,
    "priority": 50,
}

# seed 000, "Create Approval Requirement Policy", exactly as written
APPROVAL_SEED: dict[str, Any] = {
    "policy_name": "email-approval-required",
    "policy_type": "approval_required",
    "applies_to": "all",
    "rules": {
        "require_approval_for": ["send_email", "external_api_post"],
        "approvers": ["manager@company.com", "ops-team@company.com"],
        "auto_expire_hours": 24,
        "risk_threshold": "medium",
    },
    "enabled": True,
    "priority": 10,
}

# seed 000, "Time Window Policy" (a Python dict), exactly as written
TIME_WINDOW_SEED: dict[str, Any] = {
    "policy_name": "business-hours-only",
    "policy_type": "time_window",
    "applies_to": "tag",
    "target_tags": ["customer-facing"],
    "rules": {
        "allowed_days": ["MON", "TUE", "WED", "THU", "FRI"],
        "allowed_hours": list(range(9, 18)),  # 9 AM - 6 PM
        "timezone": "America/New_York",
        "action_on_violation": "delay_until_allowed",
    },
}

# seed 000, "Cost Optimization Policy" (a Python dict), exactly as written
COST_OPTIMIZATION_SEED: dict[str, Any] = {
    "policy_name": "use-cheaper-model-for-simple-tasks",
    "policy_type": "model_routing",
    "applies_to": "all",
    "rules": {
        "route_by_complexity": {
            "simple": {"provider": "openai", "model": "gpt-4o-mini", "max_tokens": 500},
            "medium": {"provider": "anthropic", "model": "claude-haiku-4", "max_tokens": 2000},
            "complex": {"provider": "anthropic", "model": "claude-sonnet-4-5", "max_tokens": 8000},
        },
        "complexity_detector": "token_estimate",  # or "task_classifier"
    },
}

RATE_LIMIT_RULES: dict[str, Any] = {
    "max_executions": 10,
    "window_minutes": 60,
    "action_on_violation": "reject",
}


def seed(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(payload), **changes}
