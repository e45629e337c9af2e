"""Unit tests of hyvve.py: python3 -m unittest discover -s examples/python -t examples/python"""

import http.client
import json
import os
import tempfile
import threading
import unittest
import unittest.mock
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import UnixStreamServer

from hyvve import Client, HyvveError, Subscriber, match, new_traceparent, trace_id_of, validate_pattern

# The sidecar's own routing table (internal/subscription/router_test.go): the
# subscriber must pick the same handler for every type.
ROUTER_PATTERNS = ["**", "approval.**", "*.granted", "approval.*", "approval.granted",
                   "crm.*.created", "crm.contact.*", "crm.**.deleted", "*.*.deleted"]
ROUTES = [
    ("approval.granted", "approval.granted"),
    ("approval.rejected", "approval.*"),
    ("approval.step.done", "approval.**"),
    ("approval", "approval.**"),
    ("user.granted", "*.granted"),
    ("user.joined", "**"),
    ("crm.contact.created", "crm.*.created"),
    ("crm.contact.updated", "crm.contact.*"),
    ("crm.lead.deleted", "*.*.deleted"),
    ("crm.contact.deleted", "crm.contact.*"),
    ("crm.a.b.deleted", "crm.**.deleted"),
]


class RoutingTest(unittest.TestCase):
    def test_route_picks_the_handler_the_sidecar_picks(self):
        sub = Subscriber(Client("http://127.0.0.1:1"))
        for p in ROUTER_PATTERNS:
            sub.on(p)(lambda e, c: None)
        for event_type, want in ROUTES:
            with self.subTest(event_type=event_type):
                got = sub.route(event_type)
                self.assertEqual(got and got.pattern, want, f"route({event_type}): got {got}, want {want}")

    def test_match_follows_star_and_double_star_like_the_sidecar(self):
        cases = [
            ("a.b", "a.b", True), ("a.*", "a.b", True), ("a.*", "a", False), ("a.*", "a.b.c", False),
            ("a.**", "a", True), ("a.**", "a.b.c", True), ("**", "x", True), ("**.c", "a.b.c", True),
            ("**.c", "c", True), ("a.**.c", "a.c", True), ("a.**.c", "a.x.y.c", True),
            ("a.**.c", "a.x.y.d", False), ("*.*", "a.b", True), ("*.*", "a", False),
            ("a.**.b.**.c", "a.b.x.b.c", True), ("a.b", "a.bc", False),
        ]
        for p, t, want in cases:
            with self.subTest(pattern=p, type=t):
                self.assertEqual(match(p, t), want, f"match({p}, {t}): got {not want}, want {want}")

    def test_validate_pattern_refuses_what_the_sidecar_refuses(self):
        for ok in ["a", "a.b", "**", "crm.*.created", "a_b-1.c"]:
            validate_pattern(ok)
        for bad in ["", "A.b", "a..b", "a.*x", "a.b.", "a b", "a.b.c.d.e.f.g.h.i.j.k", "x" * 129]:
            with self.subTest(pattern=bad), self.assertRaises(ValueError):
                validate_pattern(bad)

    def test_on_refuses_a_second_handler_for_the_same_pattern(self):
        sub = Subscriber(Client("http://127.0.0.1:1"))
        sub.on("a.b")(lambda e, c: None)
        with self.assertRaisesRegex(ValueError, "already registered"):
            sub.on("a.b")

    def test_client_takes_http_and_unix_urls_only(self):
        Client("http://127.0.0.1:4750")
        Client("unix:///run/hyvve/sidecar.sock")
        for bad in ["https://x:1", "unix://relative.sock", "http://x:1/base", "localhost:4750", "http://u:p@x:1"]:
            with self.subTest(url=bad), self.assertRaises(ValueError):
                Client(bad)


class FakeSidecar:
    """Serves POST /v1/events on a Unix socket, records each request and
    answers with self.answer = (status, obj, headers)."""

    def __init__(self, test: unittest.TestCase):
        self.dir = tempfile.TemporaryDirectory()
        test.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "s.sock")
        self.got: list[dict] = []
        self.answer = (202, {"id": "e2"}, {})
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def address_string(self):
                return "unix"

            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fake.got.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
                status, obj, headers = fake.answer
                raw = json.dumps(obj).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        class Server(UnixStreamServer, HTTPServer):
            def server_bind(self):
                UnixStreamServer.server_bind(self)
                self.server_name, self.server_port = "sidecar", 0

        self.server = Server(self.path, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        test.addCleanup(self.server.server_close)
        test.addCleanup(self.server.shutdown)

    @property
    def url(self) -> str:
        return "unix://" + self.path


class ClientTest(unittest.TestCase):
    def test_publish_over_a_unix_socket_returns_the_answer_and_sends_the_headers(self):
        sc = FakeSidecar(self)
        sc.answer = (202, {"id": "e1", "tenantId": "acme"}, {})
        ack = Client(sc.url, api_token="tok").publish({"type": "a.b"}, headers={"X-Correlation-Id": "c1"})
        self.assertEqual(ack["id"], "e1")
        self.assertEqual(len(sc.got), 1)
        r = sc.got[0]
        self.assertEqual(r["path"], "/v1/events")
        self.assertEqual(r["headers"].get("Content-Type"), "application/json")
        self.assertEqual(r["headers"].get("Authorization"), "Bearer tok")
        self.assertEqual(r["headers"].get("X-Correlation-Id"), "c1")
        self.assertEqual(json.loads(r["body"]), {"type": "a.b"})

    def test_publish_raises_the_sidecar_error(self):
        sc = FakeSidecar(self)
        sc.answer = (503, {"error": {"code": "broker_unavailable", "message": "redis down"}}, {"Retry-After": "1"})
        with self.assertRaises(HyvveError) as cm:
            Client(sc.url).publish({"type": "a.b"})
        self.assertEqual((cm.exception.status, cm.exception.code, cm.exception.retry_after),
                         (503, "broker_unavailable", 1))

    def test_publish_to_an_absent_sidecar_raises_with_status_0(self):
        client = Client("unix:///nonexistent/hyvve.sock")
        with self.assertRaises(HyvveError) as cm:
            client.publish({"type": "a.b"})
        self.assertEqual(cm.exception.status, 0)
        self.assertFalse(client.ready())


class SubscriberTest(unittest.TestCase):
    def start(self, sub: Subscriber):
        server = sub.start(0)
        self.addCleanup(sub.shutdown)
        port = server.server_address[1]

        def request(method, path, body=None, headers=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                return resp.status, resp.read().decode()
            finally:
                conn.close()

        return request

    def test_subscriber_serves_its_subscriptions_and_answers_pushes(self):
        sc = FakeSidecar(self)
        sub = Subscriber(Client(sc.url))
        seen = []

        @sub.on("approval.granted")
        def granted(event, ctx):
            seen.append((event["id"], ctx.attempt))
            ctx.publish({"type": "invoice.created"}, headers={"x-tenant-id": "other"})

        @sub.on("approval.*")
        def fails(event, ctx):
            raise RuntimeError("boom")

        request = self.start(sub)
        status, text = request("GET", "/hyvve/subscriptions")
        self.assertEqual(status, 200)
        subs = json.loads(text)
        self.assertEqual([s["pattern"] for s in subs], ["approval.granted", "approval.*"])
        self.assertEqual(len({s["path"] for s in subs}), 2, f"paths not distinct: {text}")
        for s in subs:
            self.assertRegex(s["path"], r"^/[^ ?#*]*$")

        tp = new_traceparent()
        headers = {"Content-Type": "application/json", "X-Correlation-Id": "corr-1", "X-Tenant-Id": "acme",
                   "X-Delivery-Attempt": "2", "traceparent": tp, "tracestate": "k=v"}

        def event(t):
            return json.dumps({"id": "e1", "type": t, "tenantId": "acme"})

        cases = [
            ("handler succeeds", event("approval.granted"), 200),
            ("handler raises", event("approval.rejected"), 500),
            ("body is not JSON", '{"type":', 400),
            ("body is empty", "", 400),
            ("body is not an event", "[1]", 400),
            ("no handler matches", event("user.joined"), 404),
        ]
        with open(os.devnull, "w") as devnull, unittest.mock.patch("sys.stderr", devnull):
            for name, body, want in cases:
                with self.subTest(name):
                    status, text = request("POST", subs[0]["path"], body, headers)
                    self.assertEqual(status, want, f"{name}: got {status} {text}, want {want}")
        self.assertEqual(seen, [("e1", 2)])
        self.assertEqual(len(sc.got), 1, "ctx.publish did not reach the sidecar once")
        h = sc.got[0]["headers"]
        self.assertEqual(h.get("X-Correlation-Id"), "corr-1")
        self.assertEqual(h.get("traceparent"), tp)
        self.assertEqual(trace_id_of(h.get("traceparent")), tp.split("-")[1])
        self.assertEqual(h.get("tracestate"), "k=v")
        self.assertEqual(h.get("x-tenant-id"), "other", "a header given to ctx.publish must win over the inherited one")

    def test_subscriber_with_an_app_token_refuses_requests_without_it(self):
        sub = Subscriber(Client("http://127.0.0.1:1"), app_token="s3cret")
        sub.on("a.b")(lambda e, c: None)
        request = self.start(sub)
        self.assertEqual(request("GET", "/hyvve/subscriptions")[0], 401)
        self.assertEqual(request("GET", "/hyvve/subscriptions", headers={"X-Hyvve-Token": "wrong"})[0], 401)
        self.assertEqual(request("GET", "/hyvve/subscriptions", headers={"X-Hyvve-Token": "s3cret"})[0], 200)

    def test_shutdown_waits_for_the_push_in_flight(self):
        sub = Subscriber(Client("http://127.0.0.1:1"))
        entered, release = threading.Event(), threading.Event()

        @sub.on("a.b")
        def slow(event, ctx):
            entered.set()
            release.wait(10)

        request = self.start(sub)
        result = []
        t = threading.Thread(target=lambda: result.append(request("POST", "/hyvve/events/a.b", '{"type":"a.b"}')))
        t.start()
        self.assertTrue(entered.wait(10))
        stopper = threading.Thread(target=sub.shutdown)
        stopper.start()
        stopper.join(0.3)
        self.assertTrue(stopper.is_alive(), "shutdown returned while a push was in flight")
        release.set()
        stopper.join(10)
        t.join(10)
        self.assertEqual(result and result[0][0], 200)


if __name__ == "__main__":
    unittest.main()
