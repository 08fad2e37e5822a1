"""Regular expressions written by operators, run by RE2.

An operator's pattern (a JSON Schema ``pattern`` or ``patternProperties`` key, a
content-safety policy's ``custom_patterns``) is run against input the outside world sends.
Python's ``re`` backtracks: ``^(a+)+$`` takes seconds on 25 characters and doubles with each
one more. RE2 (the ``google-re2`` package) matches in time linear in the input, and so cannot
be made to hang; in return it refuses the features that need backtracking (backreferences
such as ``\\1``, lookahead and lookbehind). Such a pattern is refused when it is written, with
``UnsafePattern`` saying why, rather than run with ``re``.

Our own, fixed patterns (names, tags, PII detectors) stay on ``re``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, Protocol

import re2

# Memory RE2 may use for one compiled pattern (its default is 8 MiB); a pattern that needs
# more (e.g. a{1000}{1000}) is refused.
MAX_MEMORY = 8 << 20
MAX_LENGTH = 1000


class UnsafePattern(ValueError):
    """A pattern that is not a regular expression RE2 can run."""


class Match(Protocol):
    def group(self, index: int = 0) -> str: ...
    def span(self, index: int = 0) -> tuple[int, int]: ...


class Pattern(Protocol):
    """What the project uses of a compiled pattern (``re.Pattern``'s names)."""

    pattern: str

    def search(self, text: str) -> Match | None: ...
    def finditer(self, text: str) -> Iterator[Match]: ...
    def sub(self, replacement: Any, text: str) -> str: ...


_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr
_OPTIONS.max_mem = MAX_MEMORY


@functools.lru_cache(maxsize=2048)
def compile_pattern(pattern: str) -> Pattern:
    """``pattern`` compiled by RE2; ``UnsafePattern`` when RE2 cannot run it."""
    if not isinstance(pattern, str):
        raise UnsafePattern("A pattern must be a string.")
    if len(pattern) > MAX_LENGTH:
        raise UnsafePattern(f"A pattern is at most {MAX_LENGTH} characters.")
    try:
        compiled: Pattern = re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        raise UnsafePattern(
            f"Not a regular expression this server runs ({_reason(exc)}). Patterns run on RE2, "
            "which has no backreferences (\\1) or lookaround ((?=…), (?!…), (?<=…), (?<!…)), "
            "so that no input can make a match take exponential time."
        ) from None
    return compiled


def check_pattern(pattern: str) -> str:
    """``pattern`` itself if RE2 can run it; else ``UnsafePattern``."""
    compile_pattern(pattern)
    return pattern


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` (already checked) matches somewhere in ``text``."""
    return compile_pattern(pattern).search(text) is not None


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else exc
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason)
