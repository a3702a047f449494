"""Getting metrics out: an HTTP /metrics endpoint and a Pushgateway pusher.

Both run on their own threads; neither ever blocks or raises into the job.  A
push that fails (Pushgateway down or hanging) is counted and logged by
:class:`~dj_observe.dispatch.HookStats`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import urllib.parse
from collections.abc import Callable
from socketserver import ThreadingMixIn
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app, push_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

from dj_observe.dispatch import Change, HookStats, JobFeed

__all__ = ["MetricsEndpoint", "PushgatewaySink", "wait_interruptibly"]

PUSH_TIMEOUT = 5.0
"""Seconds one push may take before it is abandoned."""
REQUEST_TIMEOUT = 10.0
"""Seconds a /metrics connection may stay silent before it is closed (one thread each)."""


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: object) -> None:
        """Scrapes are not worth a line on stderr each."""


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
"""What ``signal.signal`` returns: the previous handler (``None``: installed outside Python)."""


def wait_interruptibly(seconds: float) -> bool:
    """Wait ``seconds``; SIGTERM or SIGINT (Ctrl-C) ends the wait early and quietly.

    For the main thread at the end of a process (an ``atexit`` handler): the
    process's own handlers, which may raise (``KeyboardInterrupt``, Ray's
    ``SystemExit``) or abort, are replaced for the wait and put back after it.
    Returns whether a signal ended the wait.
    """
    stop = threading.Event()
    previous: dict[signal.Signals, _Handler] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(OSError, ValueError):  # not settable here
                previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        return stop.wait(seconds)
    finally:
        for signum, handler in previous.items():
            # A handler installed outside Python (None) cannot be put back: the default.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


class MetricsEndpoint:
    """Serves a registry at ``http://host:port/metrics`` (port 0 picks a free one).

    The WSGI app is prometheus_client's (content negotiation, OpenMetrics with
    exemplars, gzip); the server loop polls often so that :meth:`close` is quick.
    """

    POLL_INTERVAL = 0.01

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        *,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        # A socket timeout: an idle or half-open connection must not hold a thread forever.
        handler = type("_Handler", (_QuietHandler,), {"timeout": request_timeout})
        self.server = make_server(
            host, port, make_wsgi_app(registry), _Server, handler_class=handler
        )
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            args=(self.POLL_INTERVAL,),
            name="dj-observe-metrics",
            daemon=True,
        )
        self.thread.start()
        self.host = host

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(1.0)


class PushgatewaySink:
    """Pushes the registry every ``interval`` seconds and as soon as a job ends."""

    name = "pushgateway"

    def __init__(
        self,
        registry: CollectorRegistry,
        url: str,
        *,
        interval: float,
        stats: HookStats,
        grouping_key: dict[str, str] | None = None,
    ) -> None:
        self.registry = registry
        self.url, self._handler = _without_credentials(url)
        self.interval = interval
        self.stats = stats
        self.grouping_key = dict(grouping_key or {})
        self.pushes = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dj-observe-push", daemon=True)
        self._thread.start()

    def on_change(self, change: Change, feed: JobFeed) -> None:
        self.grouping_key.setdefault("job_id", change.job_id)
        if change.job_ended:
            self._wake.set()

    def push(self) -> bool:
        """Push now, on the calling thread; ``False`` (counted) when it fails."""
        try:
            push_to_gateway(
                self.url,
                job="dj_observe",
                registry=self.registry,
                grouping_key=self.grouping_key,
                timeout=PUSH_TIMEOUT,
                handler=self._handler,
            )
        except Exception as exc:
            self.stats.sink_failed(self.name, exc)
            return False
        self.pushes += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self.grouping_key:
                self.push()

    def flush(self, timeout: float | None = None) -> None:
        if self.grouping_key:
            self.push()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(PUSH_TIMEOUT + 1)
        if self.grouping_key:
            self.push()


def _without_credentials(url: str) -> tuple[str, Callable[..., Callable[[], None]]]:
    """``url`` without its ``user:password@`` part, and the push handler that sends them
    as HTTP basic auth instead (so they never reach a host name lookup or a logged error)."""
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None and parts.password is None:
        return url, default_handler
    username = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    host = parts.netloc.rpartition("@")[2]
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))

    def handler(
        url: str, method: str, timeout: float | None, headers: list[Any], data: bytes
    ) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return bare, handler
