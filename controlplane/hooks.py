"""Declared extension points: how a lower app tells a higher one something without importing it.

The apps depend on each other in one direction (the README's "Architecture"). Where a lower
app must let a higher one act — a run ended and a schedule counts it; an agent's production
version changed and its cron entry follows; an approval was settled and the run moves on —
the lower app declares a ``Hook`` beside the code where it happens and calls it; the higher
app subscribes in its ``AppConfig.ready()``::

    # executions/lifecycle.py (lower)            # schedules/apps.py (higher)
    run_moved = Hook[[Transition]]("...")        run_moved.subscribe(cron_run_ended)
    ...
    run_moved(transition)

Subscribers run in the order they subscribed, synchronously, in the caller's transaction: an
error rolls the whole change back, as if the code were inline. A subscriber that must act only
once the change is committed asks for it itself (``transaction.on_commit``).

A ``Registry`` is the same idea for contributions that are looked up rather than called: the
cards of the agent page, the agent admin's actions. A ``Provider`` is a question a lower app
asks and exactly one higher app answers: which agents may this actor see (the kernel's audit
log filters by them; the agents app knows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")


class Registry(Generic[T]):
    """An ordered list of contributions; registering the same one twice keeps one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._items: list[T] = []

    def register(self, item: T) -> T:
        if item not in self._items:
            self._items.append(item)
        return item

    def __iter__(self) -> Iterator[T]:
        return iter(tuple(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {len(self._items)}>"


class Hook(Registry[Callable[P, None]]):
    """A place where a lower app calls every subscriber with the same arguments."""

    def subscribe(self, receiver: Callable[P, None]) -> Callable[P, None]:
        """Subscribe (usable as a decorator); a receiver subscribed twice is called once."""
        return self.register(receiver)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for receiver in self._items:
            receiver(*args, **kwargs)


class Provider(Generic[P, R]):
    """One answer to a question, given by the app that knows it (in its ``ready()``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._answer: Callable[P, R] | None = None

    def provide(self, answer: Callable[P, R]) -> Callable[P, R]:
        self._answer = answer
        return answer

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._answer is None:
            raise ImproperlyConfigured(f"Nothing provides {self.name} (is its app installed?).")
        return self._answer(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Provider {self.name}>"
