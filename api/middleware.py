"""The HTTP middleware around everything: request ids, access logs, admission (places
and a short line), body and time limits. Pure ASGI."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import structlog
from prometheus_client import (
    Gauge,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deadlines import Deadlines
from domain.metrics import Metrics
from schema.http import error_response, first_headers

log = structlog.get_logger("portfolio.access")


# Cheap, answered from memory, and what an orchestrator and a monitor need most while
# the worker is overloaded: never shed. /readyz is not among them: it queries the
# database, so exempting it would let anyone take pool connections past the limit.
UNGATED_PATHS = frozenset({"/healthz", "/metrics"})
SHED_RETRY_AFTER_SECONDS = 1  # a place frees as soon as any admitted request ends


class RequestGuard:
    """Gives each request an id (X-Request-ID), marks its answer ``Cache-Control:
    no-store`` unless the route set a policy, bounds its body and its time, admits a
    bounded number at once (the rest wait in a short line or are shed), lets a few large
    ones run at once, logs it and counts it."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        *,
        max_body_bytes: int,
        timeout_seconds: float,
        large_body_bytes: int,
        large_requests_at_once: int,
        max_concurrent_requests: int | None = None,
        max_queued_requests: int = 0,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds
        self._deadlines = Deadlines(timeout_seconds)
        # Past the worker's capacity, admitting more only makes every request slower
        # (3,000 requests at concurrency 200 once all took up to 5.9 s): the excess is
        # turned away at once, so admitted requests keep their latency. None: no limit.
        self._admission = (
            None
            if max_concurrent_requests is None
            else Slots(
                max_concurrent_requests,
                metrics.requests_waiting,
                taken=metrics.requests_in_flight,
                max_waiting=max_queued_requests,
            )
        )
        # A bulk ingest holds ~10 MB of objects while it runs: a burst of them waits
        # here rather than take the worker's memory at once. The database bounds bulk
        # writes: two at a time kept the bench's varied ingest rate.
        self.large_body_bytes = large_body_bytes
        self._large_slots = Slots(large_requests_at_once, metrics.large_requests_waiting)
        # The logging configured when the app was assembled; at WARNING (the bench's) a
        # request does not even gather what its line would say.
        self._log = log.bind()
        self._logs_requests = self._log.is_enabled_for(logging.INFO)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given, declared = first_headers(scope, b"x-request-id", b"content-length")
        request_id = given or _new_request_id()
        if len(request_id) > 64 or not request_id.replace("-", "").isalnum():
            request_id = _new_request_id()  # never echo arbitrary text into logs and headers
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
                headers = message.setdefault("headers", [])
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    # An answer depends on the caller's token and scopes (a GET read
                    # too): no cache may keep it unless its route says otherwise.
                    headers.append((b"cache-control", b"no-store"))
                headers.append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            if declared is not None and (
                not declared.isdigit() or int(declared) > self.max_body_bytes
            ):
                await self._too_large()(scope, receive, send_with_id)
                return
            admitted = _Turn(self._admission)
            turn = _Turn(self._large_slots)
            try:
                async with self._deadlines.limit():
                    if scope["path"] not in UNGATED_PATHS and not await admitted.take():
                        self.metrics.requests_shed.inc()
                        await self._overloaded()(scope, receive, send_with_id)
                        return
                    if declared is not None and int(declared) > self.large_body_bytes:
                        await turn.take()  # before a byte of it is read
                    await self.app(scope, self._bounded(receive, turn), send_with_id)
            finally:
                turn.give_back()
                admitted.give_back()
        except _BodyTooLarge:
            if not status["sent"]:
                await self._too_large()(scope, receive, send_with_id)
        except TimeoutError:
            if not status["sent"]:
                await error_response(
                    503,
                    "TIMEOUT",
                    f"The request took longer than {self.timeout_seconds:g} s and was stopped.",
                    {"Retry-After": "5"},
                )(scope, receive, send_with_id)
        finally:
            path = scope.get("route_path") or scope["path"]
            elapsed = time.perf_counter() - started
            path_label = (
                path if path in {"/graphql", "/healthz", "/readyz", "/metrics"} else "other"
            )
            self.metrics.requests.observe(path_label, status["code"], elapsed)
            if self._logs_requests:
                state = scope.get("state", {})
                self._log.info(
                    "request",
                    method=scope["method"],
                    path=path,
                    status=status["code"],
                    ms=round(elapsed * 1000, 2),
                    client_id=getattr(state.get("principal"), "client_id", None),
                    operation=state.get("operation_name"),
                    cost=state.get("cost"),
                )
            structlog.contextvars.unbind_contextvars("request_id")

    def _overloaded(self) -> Response:
        assert self._admission is not None
        return error_response(
            503,
            "OVERLOADED",
            f"The server is at capacity ({self._admission.at_once} requests at once, "
            f"{self._admission.max_waiting} waiting); retry after "
            f"{SHED_RETRY_AFTER_SECONDS} s.",
            {"Retry-After": str(SHED_RETRY_AFTER_SECONDS)},
        )

    def _too_large(self) -> Response:
        return error_response(
            413, "REQUEST_TOO_LARGE", f"Request bodies are limited to {self.max_body_bytes} bytes."
        )

    def _bounded(self, receive: Receive, turn: _Turn) -> Receive:
        """The body as it arrives, refused past ``max_body_bytes``. A body that grows
        past ``large_body_bytes`` without having declared it (chunked) waits for its
        turn there, holding about that much meanwhile."""
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
                if received > self.large_body_bytes:
                    await turn.take()
            return message

        return bounded


class Direct:
    """HTTP requests for ``path`` go straight to ``endpoint``, past Starlette's exception
    middleware and router, which add nothing to an endpoint that answers its own
    refusals (``schema.endpoint``) and cost ~6 % of a known read's CPU; an error it
    raises still reaches Starlette's server-error middleware, outside this one."""

    def __init__(self, app: ASGIApp, *, path: str, endpoint: ASGIApp) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in (
            self.path,
            scope.get("root_path", "") + self.path,  # mounted under a root path
        ):
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _new_request_id() -> str:
    """A random id, as uuid4().hex writes one (32 hex digits), at a fraction of its cost:
    from the process's pseudo-random generator (re-seeded in each forked worker), not
    from the kernel's, as it identifies a request and guards nothing."""
    return f"{random.getrandbits(128):032x}"


class Slots:
    """``at_once`` places and a line to wait for one. The line is unbounded, or at most
    ``max_waiting`` long: a request that finds it full is turned away at once. The
    ``waiting`` gauge (and ``taken``, the places taken) read the counts at each scrape,
    so that a request costs the gauges nothing."""

    def __init__(
        self,
        at_once: int,
        waiting: Gauge,
        *,
        taken: Gauge | None = None,
        max_waiting: int | None = None,
    ) -> None:
        self.at_once = at_once
        self.max_waiting = max_waiting
        self._free = asyncio.Semaphore(at_once)
        self._in_line = 0
        self._taken = 0
        waiting.set_function(lambda: self._in_line)
        if taken is not None:
            taken.set_function(lambda: self._taken)

    async def take(self) -> bool:
        """A place, after waiting in line if need be; False: turned away."""
        if self._free.locked():  # no place free now, or others are waiting already
            if self.max_waiting is not None and self._in_line >= self.max_waiting:
                return False
            self._in_line += 1
            try:
                await self._free.acquire()
            finally:
                self._in_line -= 1
        else:
            await self._free.acquire()  # free: returns without yielding
        self._taken += 1
        return True

    def give_back(self) -> None:
        self._taken -= 1
        self._free.release()


class _Turn:
    """A request's place in some ``Slots``: taken at most once, given back when it
    ends. Without slots (no limit) every take succeeds at once."""

    def __init__(self, slots: Slots | None) -> None:
        self._slots = slots
        self._held = False

    async def take(self) -> bool:
        if self._held or self._slots is None:
            return True
        self._held = await self._slots.take()
        return self._held

    def give_back(self) -> None:
        if self._held and self._slots is not None:
            self._held = False
            self._slots.give_back()


class _BodyTooLarge(Exception):
    pass
