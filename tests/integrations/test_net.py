"""The outbound HTTP guard, against real sockets on loopback: refused address classes,
redirect re-checks, the allowlist, the caps, and how failures are classified."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from integrations.addresses import (
    Allowlist,
    check_host,
    checked_url,
    forbidden_reason,
    host_matches,
)
from integrations.net import safe_request
from integrations.tools.base import ToolError, ToolRefused

LOOPBACK_ALLOWED = ["127.0.0.1/32"]


def call(url: str, **kwargs: Any) -> Any:
    kwargs.setdefault("timeout", 5)
    kwargs.setdefault("max_response_bytes", 100_000)
    return safe_request(kwargs.pop("method", "GET"), url, **kwargs)


def local(server: HTTPServer, path: str, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.port}{path}"


@pytest.fixture
def loopback_allowed(settings: Any) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = LOOPBACK_ALLOWED


@pytest.fixture
def other_loopback() -> Iterator[HTTPServer]:
    """A second server on 127.0.0.2: loopback too, but outside 127.0.0.1/32."""
    server = HTTPServer(host="127.0.0.2", port=0)
    server.start()
    yield server
    server.clear()
    server.stop()


# --- refused before anything is sent ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://169.254.1.1/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://100.64.0.1/", "non-public"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.100.100.200/latest/meta-data/", "metadata"),
        ("http://192.0.0.192/", "metadata"),
        # other spellings of loopback and private addresses
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 of 127.0.0.1
        ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 of 10.0.0.1
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number
        ("http://0x7f.1/", "loopback"),
    ],
)
def test_refuses_every_non_public_address_class(url: str, reason: str) -> None:
    with pytest.raises(ToolRefused) as refused:
        call(url)

    assert reason in refused.value.reason
    assert "TOOL_ALLOWED_PRIVATE_NETWORKS" in refused.value.reason


@pytest.mark.parametrize(
    "host", ["metadata.google.internal", "METADATA.google.internal.", "metadata", "metadata.goog"]
)
def test_refuses_metadata_host_names_without_resolving_them(host: str) -> None:
    def resolver(name: str, port: int) -> list[str]:
        raise AssertionError("a metadata host name must not even be resolved")

    with pytest.raises(ToolRefused, match="metadata"):
        call(f"http://{host}/computeMetadata/v1/", resolver=resolver)


def test_refuses_a_name_that_resolves_to_loopback(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("secret")

    with pytest.raises(ToolRefused, match=r"localhost resolves to 127\.0\.0\.1.*loopback"):
        call(local(httpserver, "/", host="localhost"))

    assert httpserver.log == []


def test_a_name_is_refused_when_any_of_its_addresses_is_private() -> None:
    def resolver(name: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]

    with pytest.raises(ToolRefused, match=r"10\.0\.0\.7.*private"):
        check_host("mixed.example", 80, resolver=resolver)


def test_public_addresses_pass_the_check() -> None:
    assert check_host("one.example", 443, resolver=lambda name, port: ["93.184.215.14"]) == [
        "93.184.215.14"
    ]
    assert forbidden_reason(ipaddress.ip_address("2606:4700::1111")) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "Only http and https"),
        ("ftp://example.com/x", "Only http and https"),
        ("gopher://example.com/", "Only http and https"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http:///nohost", "no host"),
        ("not a url", "Only http and https"),
    ],
)
def test_refuses_urls_that_are_not_plain_http(url: str, message: str) -> None:
    with pytest.raises(ToolRefused, match=message):
        checked_url(url)


# --- the allowlist ------------------------------------------------------------------------


def test_allowlist_by_network_lets_the_call_through(
    httpserver: HTTPServer, loopback_allowed: None
) -> None:
    httpserver.expect_request("/ok").respond_with_json({"fine": True})

    response = call(local(httpserver, "/ok"))

    assert response.status == 200
    assert response.json() == {"fine": True}
    assert response.url == local(httpserver, "/ok")


def test_allowlist_by_host_name(httpserver: HTTPServer, settings: Any) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["localhost"]
    httpserver.expect_request("/ok").respond_with_data("named")

    assert call(local(httpserver, "/ok", host="localhost")).text == "named"
    # The name is allowed, not its address under another name.
    with pytest.raises(ToolRefused, match="loopback"):
        call(local(httpserver, "/ok"))


def test_allowlist_does_not_open_metadata_addresses_inside_a_broad_network() -> None:
    broad = Allowlist.parse(["169.254.0.0/16", "0.0.0.0/0"])
    exact = Allowlist.parse(["169.254.169.254/32"])
    metadata = ipaddress.ip_address("169.254.169.254")

    assert broad.allows("x", ipaddress.ip_address("169.254.1.1"))
    assert not broad.allows("x", metadata)
    assert exact.allows("x", metadata)


def test_allowlist_covers_ipv4_mapped_ipv6_addresses() -> None:
    allowlist = Allowlist.parse(["10.0.5.0/24"])

    assert allowlist.allows("x", ipaddress.ip_address("::ffff:10.0.5.9"))
    assert not allowlist.allows("x", ipaddress.ip_address("::ffff:10.0.6.9"))


def test_host_matches_exact_domains_and_subdomains_only() -> None:
    domains = ["example.com", "API.other.org."]

    assert host_matches("example.com", domains)
    assert host_matches("a.b.example.com", domains)
    assert host_matches("api.other.org", domains)
    assert not host_matches("badexample.com", domains)
    assert not host_matches("example.com.evil.net", domains)
    assert not host_matches("other.org", domains)
    assert not host_matches("example.com", [])


# --- redirects ----------------------------------------------------------------------------


def test_redirect_to_a_forbidden_address_is_refused_and_not_followed(
    httpserver: HTTPServer, other_loopback: HTTPServer, loopback_allowed: None
) -> None:
    other_loopback.expect_request("/internal").respond_with_data("internal secret")
    httpserver.expect_request("/start").respond_with_data(
        "", status=302, headers={"Location": local(other_loopback, "/internal", "127.0.0.2")}
    )

    with pytest.raises(ToolRefused, match=r"127\.0\.0\.2 is a loopback address"):
        call(local(httpserver, "/start"))

    assert len(httpserver.log) == 1
    assert other_loopback.log == []


def test_redirect_from_an_allowed_name_to_a_private_address(
    httpserver: HTTPServer, settings: Any
) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["localhost"]
    httpserver.expect_request("/start").respond_with_data(
        "", status=301, headers={"Location": local(httpserver, "/private")}
    )
    httpserver.expect_request("/private").respond_with_data("should not be read")

    with pytest.raises(ToolRefused, match="loopback"):
        call(local(httpserver, "/start", host="localhost"))

    assert [request.path for request, _ in httpserver.log] == ["/start"]


def test_redirect_to_another_scheme_is_refused(
    httpserver: HTTPServer, loopback_allowed: None
) -> None:
    httpserver.expect_request("/start").respond_with_data(
        "", status=302, headers={"Location": "file:///etc/passwd"}
    )

    with pytest.raises(ToolRefused, match="Only http and https"):
        call(local(httpserver, "/start"))


def test_redirects_keep_the_idempotency_key_and_drop_credentials_across_origins(
    httpserver: HTTPServer, settings: Any
) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32", "127.0.0.2/32"]
    second = HTTPServer(host="127.0.0.2", port=0)
    second.start()
    try:
        httpserver.expect_request("/a").respond_with_data(
            "", status=307, headers={"Location": "/b"}
        )
        httpserver.expect_request("/b").respond_with_data(
            "", status=308, headers={"Location": local(second, "/c", "127.0.0.2")}
        )
        second.expect_request("/c", method="POST").respond_with_json({"done": True})

        response = call(
            local(httpserver, "/a"),
            method="POST",
            json={"n": 1},
            headers={"X-Trace": "t1"},
            auth_headers={"Authorization": "Bearer s3cret"},
            idempotency_key="action-123",
        )

        assert response.json() == {"done": True}
        assert response.url == local(second, "/c", "127.0.0.2")
        hops = [request for request, _ in httpserver.log] + [r for r, _ in second.log]
        assert [hop.path for hop in hops] == ["/a", "/b", "/c"]
        assert all(hop.headers["Idempotency-Key"] == "action-123" for hop in hops)
        assert all(hop.headers["X-Trace"] == "t1" for hop in hops)
        assert all(hop.get_json() == {"n": 1} for hop in hops)  # 307/308 keep method and body
        assert [hop.headers.get("Authorization") for hop in hops] == [
            "Bearer s3cret",
            "Bearer s3cret",
            None,  # another origin never gets the credential
        ]
    finally:
        second.clear()
        second.stop()


def test_303_turns_a_post_into_a_get_without_body(
    httpserver: HTTPServer, loopback_allowed: None
) -> None:
    httpserver.expect_request("/submit", method="POST").respond_with_data(
        "", status=303, headers={"Location": "/result"}
    )
    httpserver.expect_request("/result", method="GET").respond_with_data("created")

    response = call(
        local(httpserver, "/submit"), method="POST", json={"a": 1}, idempotency_key="k-303"
    )

    assert response.text == "created"
    result, _ = httpserver.log[1]
    assert result.method == "GET"
    assert result.get_data() == b""
    assert "Content-Type" not in result.headers
    assert result.headers["Idempotency-Key"] == "k-303"


def test_too_many_redirects_is_a_permanent_error(
    httpserver: HTTPServer, loopback_allowed: None
) -> None:
    httpserver.expect_request("/loop").respond_with_data(
        "", status=302, headers={"Location": "/loop"}
    )

    with pytest.raises(ToolError) as error:
        call(local(httpserver, "/loop"), max_redirects=3)

    assert error.value.retryable is False
    assert "More than 3 redirects" in error.value.message
    assert len(httpserver.log) == 4


def test_allowed_domains_are_enforced_on_every_hop(httpserver: HTTPServer, settings: Any) -> None:
    settings.TOOL_ALLOWED_PRIVATE_NETWORKS = ["localhost", "127.0.0.1/32"]
    httpserver.expect_request("/a").respond_with_data(
        "", status=302, headers={"Location": local(httpserver, "/b")}
    )

    with pytest.raises(ToolRefused, match=r"127\.0\.0\.1 is not one of this tool's allowed"):
        call(local(httpserver, "/a", host="localhost"), allowed_domains=["localhost"])

    assert len(httpserver.log) == 1


# --- DNS rebinding ------------------------------------------------------------------------


def test_connects_to_the_address_that_was_checked(
    httpserver: HTTPServer, loopback_allowed: None
) -> None:
    """A name that answers an allowed address first and a forbidden one afterwards (DNS
    rebinding) is resolved once per connection: the check and the connect use that one
    answer, so the connection goes to the checked address."""
    httpserver.expect_request("/").respond_with_data("pinned")
    answers = [["127.0.0.1"], ["10.9.9.9"]]
    asked: list[str] = []

    def rebinding(name: str, port: int) -> list[str]:
        asked.append(name)
        return answers[min(len(asked) - 1, 1)]

    response = call(f"http://rebind.test:{httpserver.port}/", resolver=rebinding)

    assert response.text == "pinned"
    assert asked == ["rebind.test"]  # resolved exactly once
    request, _ = httpserver.log[0]
    assert request.headers["Host"] == f"rebind.test:{httpserver.port}"  # the name, not the IP


def test_a_rebinding_answer_at_connect_time_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("must not be reached")

    with pytest.raises(ToolRefused, match=r"rebind\.test resolves to 127\.0\.0\.1"):
        call(f"http://rebind.test:{httpserver.port}/", resolver=lambda name, port: ["127.0.0.1"])

    assert httpserver.log == []


# --- caps ---------------------------------------------------------------------------------


def test_response_over_the_size_cap_fails(httpserver: HTTPServer, loopback_allowed: None) -> None:
    httpserver.expect_request("/big").respond_with_data("x" * 5000)

    with pytest.raises(ToolError, match="5000 bytes, over the 1000-byte limit") as error:
        call(local(httpserver, "/big"), max_response_bytes=1000)

    assert error.value.retryable is False


def test_streamed_response_without_length_is_cut_at_the_cap(
    httpserver: HTTPServer, loopback_allowed: None
) -> None:
    sent: list[int] = []

    def endless(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(10_000):
                sent.append(1)
                yield b"y" * 1000

        return Response(chunks(), mimetype="text/plain")  # chunked: no Content-Length

    httpserver.expect_request("/stream").respond_with_handler(endless)

    with pytest.raises(ToolError, match="over the 4096-byte limit"):
        call(local(httpserver, "/stream"), max_response_bytes=4096)

    assert len(sent) < 10_000  # we hung up long before the end


def test_response_within_the_cap_is_returned_whole(
    httpserver: HTTPServer, loopback_allowed: None
) -> None:
    httpserver.expect_request("/exact").respond_with_data(
        "é" * 500, content_type="text/plain; charset=utf-8"
    )

    response = call(local(httpserver, "/exact"), max_response_bytes=1000)

    assert response.text == "é" * 500
    assert len(response.body) == 1000


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    yield listener.getsockname()[1]
    listener.close()


def test_a_server_that_never_answers_times_out(silent_server: int, loopback_allowed: None) -> None:
    started = time.monotonic()

    with pytest.raises(ToolError, match=r"did not answer within 0\.5 s") as error:
        call(f"http://127.0.0.1:{silent_server}/", timeout=0.5)

    assert error.value.retryable is True
    assert time.monotonic() - started < 2


@pytest.fixture
def dripping_server() -> Iterator[int]:
    """Answers headers, then one body byte every 100 ms, for ever (each read is quick, the
    whole is not)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50000\r\n\r\n")
                try:
                    while not stop.is_set():
                        conn.sendall(b".")
                        time.sleep(0.1)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(2)
    listener.close()


def test_timeout_is_one_deadline_for_the_whole_call(
    dripping_server: int, loopback_allowed: None
) -> None:
    started = time.monotonic()

    with pytest.raises(ToolError, match="did not answer within") as error:
        call(f"http://127.0.0.1:{dripping_server}/", timeout=0.8)

    elapsed = time.monotonic() - started
    assert error.value.retryable is True
    assert 0.7 < elapsed < 1.5


# --- failures: retryable or not ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (500, True), (502, True), (503, True), (408, True), (400, False),
     (401, False), (403, False), (404, False), (422, False)],
)  # fmt: skip
def test_status_errors_say_whether_retrying_can_help(
    httpserver: HTTPServer, loopback_allowed: None, status: int, retryable: bool
) -> None:
    httpserver.expect_request("/x").respond_with_data(
        f"problem {status}: " + "detail " * 200, status=status
    )

    with pytest.raises(ToolError) as error:
        call(local(httpserver, "/x"))

    assert error.value.status == status
    assert error.value.retryable is retryable
    assert f"answered {status}" in error.value.message
    assert f"problem {status}: detail" in error.value.message  # an excerpt of the body
    assert len(error.value.message) < 400


def test_connection_refused_is_retryable(loopback_allowed: None) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there

    with pytest.raises(ToolError, match=r"Could not reach 127\.0\.0\.1") as error:
        call(f"http://127.0.0.1:{port}/")

    assert error.value.retryable is True
    assert error.value.status is None


def test_unknown_host_name_is_a_permanent_error() -> None:
    with pytest.raises(ToolError, match=r"Cannot resolve no-such-host\.invalid") as error:
        call("http://no-such-host.invalid/")

    assert error.value.retryable is False


def test_sends_json_with_content_type_and_user_agent(
    httpserver: HTTPServer, loopback_allowed: None
) -> None:
    httpserver.expect_request("/post", method="POST").respond_with_json({"ok": 1}, status=201)

    response = call(local(httpserver, "/post"), method="POST", json={"é": [1, 2]})

    request, _ = httpserver.log[0]
    assert response.status == 201
    assert request.get_json() == {"é": [1, 2]}
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"].startswith("agent-control-plane/")
    assert "Idempotency-Key" not in request.headers


def test_operator_configured_targets_may_be_private_but_never_metadata(
    httpserver: HTTPServer,
) -> None:
    """``allow_private`` is for the external runtimes' own URLs (an n8n next door)."""
    httpserver.expect_request("/run", method="POST").respond_with_data("ok")

    response = call(local(httpserver, "/run"), method="POST", allow_private=True)

    assert response.status == 200
    with pytest.raises(ToolRefused, match="metadata"):
        check_host("169.254.169.254", 80, allow_private=True)
    with pytest.raises(ToolRefused):
        call(local(httpserver, "/run"), method="POST")  # not for a model's URL
