#!/usr/bin/env python3
"""demo.py: publish one approval.requested through the sidecar and receive it
back through this app's own handler.

    HYVVE_SIDECAR_URL  http://127.0.0.1:4750 (default) or unix:///path/to.sock
    PORT               where the sidecar pushes (its --app-url), default 3000
    HYVVE_TENANT       tenant of the event, default "demo"

Exits 0 once the event came back, 1 after 30 s without it.
"""

import json
import os
import sys
import threading
import time
import uuid

from hyvve import Client, HyvveError, Subscriber, new_traceparent

TIMEOUT = 30.0


def main() -> int:
    deadline = time.monotonic() + TIMEOUT
    port = int(os.environ.get("PORT") or 3000)
    tenant = os.environ.get("HYVVE_TENANT") or "demo"
    client = Client()
    sub = Subscriber(client)
    approval_id = f"a-{uuid.uuid4()}"
    received: dict = {}
    done = threading.Event()

    @sub.on("approval.requested")
    def requested(event, ctx):
        # Earlier runs may have left events in the stream: wait for ours.
        if event.get("data", {}).get("approvalId") == approval_id:
            received.update(event=event, ctx=ctx)
            done.set()

    sub.start(port)
    print(f"demo: listening on 127.0.0.1:{port}, waiting for the sidecar at {client.sidecar_url}", flush=True)
    try:
        client.wait_ready(timeout=max(deadline - time.monotonic(), 0))
        ack = client.publish(
            {"type": "approval.requested", "tenantId": tenant,
             # The core approval.requested schema (docs/events.md): these four fields are required.
             "data": {"approvalId": approval_id, "resourceType": "invoice", "resourceId": "inv-42",
                      "requestedBy": "u-1", "title": "Invoice 42"}},
            headers={"traceparent": new_traceparent()},
        )
    except HyvveError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    print(f"demo: published {ack['id']} to {ack['stream']} (correlation {ack['correlationId']})", flush=True)

    if not done.wait(max(deadline - time.monotonic(), 0)):
        print(f"demo: no approval.requested came back within {TIMEOUT:g} s", file=sys.stderr)
        return 1
    event, ctx = received["event"], received["ctx"]
    print(f"demo: received {event['type']} {event['id']} (attempt {ctx.attempt}, "
          f"traceparent {ctx.traceparent or 'none'})")
    print(json.dumps(event, indent=2), flush=True)
    sub.shutdown()  # waits until the handler's 200 is sent, so the sidecar acknowledges the event
    return 0


if __name__ == "__main__":
    sys.exit(main())
