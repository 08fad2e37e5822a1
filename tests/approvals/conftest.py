"""The real SMTP server of the e-mail tool's tests, for the approval notifications."""

from tests.integrations.test_tools_email import mailbox  # noqa: F401 - a fixture
