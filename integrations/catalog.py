"""The kinds a version's config and the policies speak of: capabilities, destinations, data
scopes, LLM providers. The tool actions themselves are ``integrations.tools.registry.TOOLS``:
each needs a capability and an allowed destination kind from here in the same version
(``agents.config`` checks), and the run's tool calls check both again at every call.
"""

from __future__ import annotations

CAPABILITIES = ("read", "write", "notify", "execute")
DESTINATIONS = ("email", "slack", "external_api", "webhook")
DATA_SCOPES = ("datasets", "apis", "services")
LLM_PROVIDERS = ("anthropic", "openai", "simulated")
