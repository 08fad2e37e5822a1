"""A local HTTP server that answers as the LLM vendors' APIs do, for their providers' tests
(the real SDKs pointed at it through ``base_url``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_httpserver import HTTPServer


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    # Threaded: a handler that sleeps past the client's timeout must not hold up the next test.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def api(server: HTTPServer) -> Iterator[HTTPServer]:
    server.clear()
    yield server
    server.clear()
