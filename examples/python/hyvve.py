"""hyvve.py: a small client for the hyvve sidecar, Python 3.11 standard library only.

    from hyvve import Client, Subscriber

    client = Client()              # HYVVE_SIDECAR_URL, default http://127.0.0.1:4750
    client.publish({"type": "approval.requested", "data": {"approvalId": "a-1"}})

    sub = Subscriber(client)

    @sub.on("approval.granted")
    def granted(event, ctx):
        ctx.publish({"type": "invoice.created", "data": {}})  # same correlation id and trace

    sub.serve_forever(port=3000)   # the sidecar's --app-url http://127.0.0.1:3000

The sidecar is reached over TCP (http://host:port) or its Unix socket
(unix:///path/to.sock). The Subscriber answers GET /hyvve/subscriptions with
one path per handler and routes each push to the handler whose pattern the
sidecar chose, with the sidecar's own rules (see Subscriber.route).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

DEFAULT_SIDECAR_URL = "http://127.0.0.1:4750"
SUBSCRIPTIONS_PATH = "/hyvve/subscriptions"
EVENTS_PATH = "/hyvve/events/"
MAX_PATTERN_LEN = 128
MAX_PATTERN_SEGMENTS = 10
MAX_ANSWER_BYTES = 1 << 20
_SEGMENT = re.compile(r"[a-z0-9_-]+")

__all__ = [
    "Client",
    "Context",
    "HyvveError",
    "Subscriber",
    "match",
    "new_traceparent",
    "trace_id_of",
    "validate_pattern",
]


class HyvveError(Exception):
    """A publish the sidecar refused (status, code, field from its error body)
    or could not be reached (status 0)."""

    def __init__(self, message: str, status: int = 0, code: str = "", field: str = "", retry_after: int = 0):
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.retry_after = retry_after  # seconds, from Retry-After (503 broker_unavailable)


class _UnixHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection that dials a Unix socket instead of host:port."""

    def __init__(self, socket_path: str, timeout: float):
        super().__init__("sidecar", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def _parse_sidecar_url(raw: str) -> Callable[[float], http.client.HTTPConnection]:
    """Returns a factory of connections to http://host:port or unix:///path.sock."""
    u = urllib.parse.urlsplit(raw)
    if u.scheme == "unix":
        path = urllib.parse.unquote(u.path)
        if u.netloc or not path.startswith("/"):
            raise ValueError(f"sidecar URL {raw!r}: a socket URL needs an absolute path: unix:///path/to.sock")
        return lambda timeout: _UnixHTTPConnection(path, timeout)
    if u.scheme != "http" or not u.hostname or u.username or u.query or u.fragment or u.path not in ("", "/"):
        raise ValueError(f"sidecar URL {raw!r}: want http://host:port or unix:///path/to.sock")
    host, port = u.hostname, u.port or 80
    return lambda timeout: http.client.HTTPConnection(host, port, timeout=timeout)


class Client:
    """Publishes events to the sidecar. Safe for concurrent use: every call
    opens its own connection.

    sidecar_url: http://host:port or unix:///path.sock (HYVVE_SIDECAR_URL).
    api_token: sent as Authorization: Bearer when the sidecar runs with
    --api-token (HYVVE_API_TOKEN). timeout bounds each request, in seconds.
    """

    def __init__(self, sidecar_url: str | None = None, api_token: str | None = None, timeout: float = 10.0):
        self.sidecar_url = sidecar_url or os.environ.get("HYVVE_SIDECAR_URL") or DEFAULT_SIDECAR_URL
        self.api_token = api_token if api_token is not None else os.environ.get("HYVVE_API_TOKEN", "")
        self.timeout = timeout
        self._connect = _parse_sidecar_url(self.sidecar_url)

    def publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Sends one event (a dict with at least "type"); returns the sidecar's
        202 answer {id, tenantId, correlationId, stream, streamId} once Redis
        has it. headers are extra request headers, e.g. X-Correlation-Id,
        X-Tenant-Id, traceparent, Idempotency-Key. Raises HyvveError on any
        other answer: a 503 may still have been written, so retry with an
        Idempotency-Key."""
        body = json.dumps(event).encode()
        status, resp_headers, answer = self._request("POST", "/v1/events", body, headers or {})
        if status != 202:
            err = answer.get("error", {}) if isinstance(answer, dict) else {}
            try:
                retry_after = int(resp_headers.get("Retry-After") or 0)
            except ValueError:
                retry_after = 0
            raise HyvveError(
                f"publish {event.get('type')}: {status} {err.get('code', '')} {err.get('message', '')}".strip(),
                status=status,
                code=err.get("code", ""),
                field=err.get("field", ""),
                retry_after=retry_after,
            )
        return answer

    def ready(self) -> bool:
        """True when GET /readyz answers 200; False otherwise, also when the
        sidecar cannot be reached."""
        try:
            return self._request("GET", "/readyz")[0] == 200
        except HyvveError:
            return False

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.2) -> None:
        """Polls /readyz until it answers 200; raises HyvveError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() >= deadline:
                raise HyvveError(f"sidecar {self.sidecar_url} not ready after {timeout:g} s")
            time.sleep(interval)

    def _request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
        h = dict(headers or {})
        if body is not None:
            h["Content-Type"] = "application/json"
        if self.api_token:
            h["Authorization"] = f"Bearer {self.api_token}"
        conn = self._connect(self.timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            raw = resp.read(MAX_ANSWER_BYTES + 1)
            if len(raw) > MAX_ANSWER_BYTES:
                raise HyvveError(f"{method} {path}: answer larger than {MAX_ANSWER_BYTES} bytes")
            try:
                answer = json.loads(raw) if raw[:1] in (b"{", b"[") else None
            except ValueError:
                answer = None
            return resp.status, resp.headers, answer
        except (OSError, http.client.HTTPException) as e:
            raise HyvveError(f"{method} {self.sidecar_url}{path}: {e}") from e
        finally:
            conn.close()


def validate_pattern(p: str) -> None:
    """Raises ValueError unless p is a pattern the sidecar accepts: 1-10
    dot-separated segments of [a-z0-9_-], or a whole segment "*" or "**"."""
    if not isinstance(p, str) or p == "":
        raise ValueError(f"pattern {p!r}: empty")
    if len(p) > MAX_PATTERN_LEN:
        raise ValueError(f"pattern {p!r}: longer than {MAX_PATTERN_LEN} characters")
    segs = p.split(".")
    if len(segs) > MAX_PATTERN_SEGMENTS:
        raise ValueError(f"pattern {p!r}: more than {MAX_PATTERN_SEGMENTS} segments")
    for i, s in enumerate(segs, 1):
        if s not in ("*", "**") and not _SEGMENT.fullmatch(s):
            raise ValueError(
                f"pattern {p!r}: segment {i} {s!r}: allowed are a-z, 0-9, '_', '-', or a whole segment \"*\" or \"**\""
            )


def match(pattern: str, event_type: str) -> bool:
    """Whether event_type matches pattern: "*" matches exactly one segment,
    "**" zero or more."""
    p = pattern.split(".")
    t = event_type.split(".") if event_type else []
    pi = ti = 0
    star_p, star_t = -1, 0  # pattern index after the last "**" (-1: none yet), type index it was tried at
    while ti < len(t):
        if pi < len(p):
            if p[pi] == "**":
                pi += 1
                star_p, star_t = pi, ti
                continue
            if p[pi] == "*" or p[pi] == t[ti]:
                pi += 1
                ti += 1
                continue
        if star_p < 0:
            return False
        # Let the last "**" swallow one more segment and try again from there.
        star_t += 1
        pi, ti = star_p, star_t
    while pi < len(p) and p[pi] == "**":
        pi += 1
    return pi == len(p)


def new_traceparent() -> str:
    """A W3C traceparent with a fresh trace id, for the first event of a flow."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def trace_id_of(traceparent: str | None) -> str:
    """The trace-id part of a traceparent ("" when absent)."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 else ""


def _path_for(pattern: str) -> str:
    # Readable, stable across restarts, and free of what a subscription path may not hold.
    return EVENTS_PATH + pattern.replace("*", "%2A")


def _rank(pattern: str) -> tuple[int, int, int]:
    """Sort key of a wildcard pattern, most specific first: fewer "**", then
    fewer "*", then more literal segments."""
    segs = pattern.split(".")
    doubles, singles = segs.count("**"), segs.count("*")
    return (doubles, singles, -(len(segs) - doubles - singles))


@dataclass
class Context:
    """What a handler knows about the push it handles, and publish, which
    passes the correlation id, traceparent, tracestate and tenant of that
    event on to the new one (unless headers set them)."""

    client: Client
    event_id: str
    tenant_id: str
    correlation_id: str
    traceparent: str
    tracestate: str
    attempt: int
    replay: bool
    headers: dict[str, str] = field(repr=False)

    def publish(self, event: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        inherited = {
            "X-Correlation-Id": self.correlation_id,
            "traceparent": self.traceparent,
            "tracestate": self.tracestate,
            "X-Tenant-Id": self.tenant_id,
        }
        merged = {k: v for k, v in inherited.items() if v}
        for k, v in (headers or {}).items():
            for existing in [e for e in merged if e.lower() == k.lower()]:
                del merged[existing]
            merged[k] = v
        return self.client.publish(event, merged)


Handler = Callable[[dict[str, Any], Context], Any]


@dataclass
class _Registration:
    pattern: str
    path: str
    fn: Handler


class Subscriber:
    """Registers handlers by pattern and serves the sidecar's pushes.

    Register every handler before serving: the sidecar reads the list at its
    start and every 30 s. app_token, when set (HYVVE_APP_TOKEN), must match the
    X-Hyvve-Token the sidecar sends; requests without it get 401. Handlers run
    on the server's threads, one per connection, so they must be safe for
    concurrent use.
    """

    def __init__(self, client: Client | None = None, app_token: str | None = None, max_body_bytes: int = 2 << 20):
        self.client = client or Client()
        self.app_token = app_token if app_token is not None else os.environ.get("HYVVE_APP_TOKEN", "")
        self.max_body_bytes = max_body_bytes
        self._handlers: list[_Registration] = []
        self._server: ThreadingHTTPServer | None = None
        self._idle = threading.Condition()  # guards _in_flight and _closing
        self._in_flight = 0
        self._closing = False

    def on(self, pattern: str) -> Callable[[Handler], Handler]:
        """Decorator: @sub.on("approval.granted") registers fn(event, ctx) for
        the event types matching pattern, like @EventSubscriber would. When fn
        raises, the push is answered 500 and the sidecar retries it."""
        validate_pattern(pattern)
        if any(h.pattern == pattern for h in self._handlers):
            # The sidecar sends each event to one subscription: a second
            # handler of a pattern would never be called.
            raise ValueError(f"on({pattern!r}): a handler for this pattern is already registered")

        def register(fn: Handler) -> Handler:
            self._handlers.append(_Registration(pattern, _path_for(pattern), fn))
            return fn

        return register

    def subscriptions(self) -> list[dict[str, str]]:
        """The body of GET /hyvve/subscriptions."""
        return [{"pattern": h.pattern, "path": h.path} for h in self._handlers]

    def route(self, event_type: str) -> _Registration | None:
        """The handler the sidecar routes event_type to: an exact pattern
        first, then fewer "**", then fewer "*", then more literal segments,
        then the first registered. None when none matches."""
        for h in self._handlers:
            if h.pattern == event_type:
                return h
        wild = [h for h in self._handlers if "*" in h.pattern and match(h.pattern, event_type)]
        return min(wild, key=lambda h: _rank(h.pattern), default=None)  # min keeps the first of equals

    def make_server(self, port: int | None = None, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        """An HTTP server bound to host:port (PORT, default 3000) that serves
        the sidecar; call its serve_forever, and shutdown to stop it."""
        if port is None:
            port = int(os.environ.get("PORT") or 3000)
        sub = self

        class _Handler(_PushHandler):
            subscriber = sub

        server = ThreadingHTTPServer((host, port), _Handler)
        server.daemon_threads = True
        self._server = server
        return server

    def serve_forever(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        """Serves the sidecar until shutdown() is called from another thread."""
        server = self.make_server(port, host)
        try:
            server.serve_forever()
        finally:
            server.server_close()

    def start(self, port: int | None = None, host: str = "127.0.0.1") -> ThreadingHTTPServer:
        """Serves the sidecar on a daemon thread and returns the server at
        once (port 0 picks a free one: see server.server_address)."""
        server = self.make_server(port, host)
        threading.Thread(target=server.serve_forever, name="hyvve-subscriber", daemon=True).start()
        return server

    def shutdown(self, grace: float = 10.0) -> None:
        """Stops serving (serve_forever or start): closes the listening socket,
        then waits up to grace seconds for the pushes in flight to be answered,
        so the sidecar acknowledges them instead of delivering them again."""
        with self._idle:
            self._closing = True
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._idle:
            self._idle.wait_for(lambda: self._in_flight == 0, timeout=grace)

    def _begin(self) -> None:
        with self._idle:
            self._in_flight += 1

    def _end(self) -> bool:
        """Marks one push answered; True when the server is closing."""
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()
            return self._closing

    def _context(self, headers, event: dict[str, Any]) -> Context:
        try:
            attempt = int(headers.get("X-Delivery-Attempt") or 1)
        except ValueError:
            attempt = 1
        return Context(
            client=self.client,
            event_id=headers.get("X-Event-Id") or str(event.get("id", "")),
            tenant_id=headers.get("X-Tenant-Id") or str(event.get("tenantId", "")),
            correlation_id=headers.get("X-Correlation-Id") or str(event.get("correlationId", "")),
            traceparent=headers.get("traceparent", ""),
            tracestate=headers.get("tracestate", ""),
            attempt=attempt,
            replay=headers.get("X-Replay") == "true",
            headers=dict(headers.items()),
        )


class _PushHandler(BaseHTTPRequestHandler):
    """Serves GET /hyvve/subscriptions and the pushes of one Subscriber."""

    subscriber: Subscriber
    protocol_version = "HTTP/1.1"  # keep-alive: the sidecar pools its connections
    timeout = 60  # seconds an idle kept-alive connection may hold a thread

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass  # one line per push is noise; failures are logged in do_POST

    def _send(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        if self.subscriber._closing:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        token = self.subscriber.app_token
        if token and not secrets.compare_digest(self.headers.get("X-Hyvve-Token", ""), token):
            self._drain()
            self._send(401, {"error": "X-Hyvve-Token missing or wrong"})
            return False
        return True

    def _drain(self) -> None:
        # Read an unread body so the kept-alive connection stays in sync,
        # or close it when the body is too large to bother.
        n = int(self.headers.get("Content-Length") or 0)
        if 0 < n <= self.subscriber.max_body_bytes:
            self.rfile.read(n)
        elif n:
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if not self._authorized():
            return
        if self.path.split("?")[0] == SUBSCRIPTIONS_PATH:
            self._send(200, self.subscriber.subscriptions())
        else:
            self._send(404, {"error": f"no route for GET {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorized():
            return
        path = self.path.split("?")[0]
        if not path.startswith(EVENTS_PATH):
            self._drain()
            self._send(404, {"error": f"no route for POST {path}"})
            return
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(411, {"error": "send Content-Length"})
            return
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > self.subscriber.max_body_bytes:
            self.close_connection = True
            self._send(413, {"error": f"body larger than {self.subscriber.max_body_bytes} bytes"})
            return
        raw = self.rfile.read(n)
        try:
            event = json.loads(raw)
        except ValueError as e:
            self._send(400, {"error": f"body is not JSON: {e}"})
            return
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            self._send(400, {"error": 'body is not an event: want a JSON object with a string "type"'})
            return
        # Route by type with the sidecar's rules rather than by path, so a
        # push made from a list fetched before this process restarted still
        # reaches the right handler.
        reg = self.subscriber.route(event["type"])
        if reg is None:
            self._send(404, {"error": f"no handler for type {event['type']!r}"})
            return
        ctx = self.subscriber._context(self.headers, event)
        self.subscriber._begin()
        try:
            status, answer = 200, {"ok": True}
            try:
                reg.fn(event, ctx)
            except Exception as e:  # the handler's failure: answer 500 so the sidecar retries
                print(
                    f"hyvve: handler {reg.pattern} failed on event {event.get('id')} (attempt {ctx.attempt}): "
                    + "".join(traceback.format_exception(e)),
                    file=sys.stderr,
                    flush=True,
                )
                status, answer = 500, {"error": f"handler failed: {e}"}
            self._send(status, answer)
        finally:
            if self.subscriber._end():
                self.close_connection = True
