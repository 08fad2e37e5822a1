"""send_email through Django's SMTP backend to a real SMTP server (aiosmtpd) on loopback:
the message as received, the credential override with a login, the recipient rules, and
how SMTP failures are classified."""

from __future__ import annotations

import email
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from integrations.email.tool import SendEmailTool
from integrations.tools.base import ToolContext, ToolError, ToolRefused
from integrations.tools.registry import get_tool
from integrations.vault import Secret

TOOL = SendEmailTool()
# The authenticating test server takes a login without TLS: it only listens on loopback.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
ARGS = {"to": ["ops@company.com"], "subject": "Daily digest", "body": "All green.\nBye."}


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: Message
    login: LoginPassword | None


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it receives, and can be told to refuse."""

    received: list[Received] = field(default_factory=list)
    rcpt_reply: str | None = None
    data_reply: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                email.message_from_bytes(envelope.content),
                session.auth_data,
            )
        )
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"pw-123")
    return AuthResult(success=ok, handled=False, auth_data=data if ok else None)


@pytest.fixture
def authenticated_mailbox() -> Iterator[tuple[Mailbox, int]]:
    """A second server that only takes mail after a login (plain, it is loopback)."""
    handler = Mailbox()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=check_login,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def smtp_settings(settings: Any, mailbox: tuple[Mailbox, int]) -> Mailbox:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = mailbox[1]
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "controlplane@company.com"
    return mailbox[0]


def context(
    credential: Secret | None = None, key: str = "exec-9:call-1", **config: Any
) -> ToolContext:
    return ToolContext(
        execution_id="exec-9",
        agent_name="digest",
        config=config,
        idempotency_key=key,
        credential=credential,
        timeout=5,
    )


def test_sends_through_the_email_settings(smtp_settings: Mailbox) -> None:
    result = TOOL.run(context(allowed_domains=["company.com"]), ARGS)

    [received] = smtp_settings.received
    message = received.message
    assert received.mail_from == "controlplane@company.com"
    assert received.rcpt_tos == ["ops@company.com"]
    assert message["Subject"] == "Daily digest"
    assert message["To"] == "ops@company.com"
    # SMTP carries lines as CRLF
    assert message.get_payload(decode=True).decode().splitlines() == ["All green.", "Bye."]
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["X-ControlPlane-Execution"] == "exec-9"
    assert message["Message-ID"] == result.content["message_id"]
    assert result.content == {
        "sent": True,
        "to": ["ops@company.com"],
        "subject": "Daily digest",
        "message_id": result.content["message_id"],
    }
    assert (result.target, result.method) == ("ops@company.com", "smtp")


def test_message_id_follows_the_idempotency_key(smtp_settings: Mailbox) -> None:
    first = TOOL.run(context(key="k-1"), ARGS)
    again = TOOL.run(context(key="k-1"), ARGS)
    other = TOOL.run(context(key="k-2"), ARGS)

    ids = [received.message["Message-ID"] for received in smtp_settings.received]
    assert again.content["message_id"] == first.content["message_id"]
    assert ids == [first.content["message_id"]] * 2 + [other.content["message_id"]]
    assert ids[0] != ids[2]
    assert ids[0].endswith("@company.com>")


def test_one_address_as_a_string_and_duplicates_are_accepted(smtp_settings: Mailbox) -> None:
    TOOL.run(context(), {**ARGS, "to": "ops@company.com"})
    TOOL.run(context(), {**ARGS, "to": ["a@company.com", "A@company.com", "b@company.com"]})

    assert [r.rcpt_tos for r in smtp_settings.received] == [
        ["ops@company.com"],
        ["a@company.com", "b@company.com"],
    ]


def test_credential_overrides_server_sender_and_logs_in(
    smtp_settings: Mailbox, authenticated_mailbox: tuple[Mailbox, int]
) -> None:
    handler, port = authenticated_mailbox
    secret = Secret(
        "email",
        "email",
        {"username": "mailer", "password": "pw-123"},
        {"host": "127.0.0.1", "port": port, "use_tls": False, "from_email": "bot@agents.io"},
    )

    result = TOOL.run(context(secret), ARGS)

    [received] = handler.received
    assert smtp_settings.received == []  # not the settings' server
    assert received.login == LoginPassword(b"mailer", b"pw-123")
    assert received.mail_from == "bot@agents.io"
    assert received.message["From"] == "bot@agents.io"
    assert "pw-123" not in str(result)


def test_wrong_password_is_a_permanent_error(
    smtp_settings: Mailbox, authenticated_mailbox: tuple[Mailbox, int]
) -> None:
    secret = Secret(
        "email",
        "email",
        {"username": "mailer", "password": "wrong"},
        {"host": "127.0.0.1", "port": authenticated_mailbox[1]},
    )

    with pytest.raises(ToolError) as caught:
        TOOL.run(context(secret), ARGS)

    assert (caught.value.retryable, caught.value.status) == (False, 535)
    assert "wrong" not in caught.value.message


@pytest.mark.parametrize(
    ("config", "to", "allowed"),
    [
        ({"allowed_domains": ["company.com"]}, "x@company.com", True),
        ({"allowed_domains": ["company.com"]}, "x@eu.company.com", True),
        ({"allowed_domains": ["company.com"]}, "x@evilcompany.com", False),
        ({"allowed_domains": ["company.com"]}, "x@company.com.evil.net", False),
        ({"allowed_recipients": ["Boss@partner.org"]}, "boss@partner.org", True),
        ({"allowed_recipients": ["boss@partner.org"]}, "intern@partner.org", False),
        (
            {"allowed_recipients": ["boss@partner.org"], "allowed_domains": ["company.com"]},
            "x@company.com",
            True,
        ),
        ({}, "anyone@anywhere.example", True),
    ],
)
def test_recipient_rules(config: dict[str, Any], to: str, allowed: bool) -> None:
    arguments = {**ARGS, "to": [to]}
    if allowed:
        TOOL.authorize(arguments, config)
    else:
        with pytest.raises(ToolRefused, match="not an allowed recipient"):
            TOOL.authorize(arguments, config)


def test_one_disallowed_recipient_refuses_the_whole_message(smtp_settings: Mailbox) -> None:
    arguments = {**ARGS, "to": ["ok@company.com", "leak@gmail.com"]}

    with pytest.raises(ToolRefused, match=r"leak@gmail\.com"):
        TOOL.run(context(allowed_domains=["company.com"]), arguments)

    assert smtp_settings.received == []


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({**ARGS, "to": ["not-an-address"]}, "is not an e-mail address"),
        ({**ARGS, "to": []}, "should be non-empty"),
        ({**ARGS, "subject": "Hi\r\nBcc: victim@x.com"}, "one line"),
        ({"to": ["a@b.com"], "subject": "s"}, "'body' is a required property"),
        ({**ARGS, "cc": ["x@y.com"]}, "Additional properties"),
    ],
)
def test_bad_arguments_are_refused(arguments: dict[str, Any], problem: str) -> None:
    with pytest.raises(ToolRefused) as refused:
        TOOL.authorize(arguments, {})

    assert problem in refused.value.reason


@pytest.mark.parametrize(
    ("where", "reply", "retryable", "code"),
    [
        ("rcpt", "450 4.2.1 Mailbox busy, try later", True, 450),
        ("rcpt", "550 5.1.1 No such user", False, 550),
        ("data", "451 4.3.0 Local problem", True, 451),
        ("data", "554 5.7.1 Rejected as spam", False, 554),
    ],
)
def test_smtp_4xx_is_retryable_5xx_is_not(
    smtp_settings: Mailbox, where: str, reply: str, retryable: bool, code: int
) -> None:
    setattr(smtp_settings, f"{where}_reply", reply)

    with pytest.raises(ToolError) as caught:
        TOOL.run(context(), ARGS)

    assert (caught.value.retryable, caught.value.status) == (retryable, code)
    assert smtp_settings.received == []


def test_unreachable_server_is_retryable(settings: Any) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()  # nothing listens there

    with pytest.raises(ToolError) as caught:
        TOOL.run(context(), ARGS)

    assert caught.value.retryable is True


def test_registered_and_not_retried_blindly() -> None:
    tool = get_tool("send_email")

    assert isinstance(tool, SendEmailTool)
    assert tool.idempotent_retry is False  # SMTP cannot deduplicate
    assert set(tool.input_schema["properties"]) == {"to", "subject", "body"}
