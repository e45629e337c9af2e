#!/usr/bin/env python3
"""policy.py: the "policy" service of the polyglot example. It handles
approval.requested and, from inside its handler, publishes the decision
(approval.granted up to an amount of 1000 in data.metadata.amount,
approval.rejected above), so the
decision carries the request's correlation id, trace and tenant.

    HYVVE_SIDECAR_URL  http://127.0.0.1:4750 (default) or unix:///path/to.sock
    PORT               where its sidecar pushes (--app-url), default 3000
    POLICY_LIMIT       largest amount granted, default 1000

It logs one JSON line per event received or sent on stdout and runs until
SIGTERM or SIGINT.
"""

import json
import os
import signal
import sys
import threading

from hyvve import Subscriber, trace_id_of


def line(**fields) -> None:
    print(json.dumps({"app": "policy", **fields}), flush=True)


def main() -> int:
    limit = float(os.environ.get("POLICY_LIMIT") or 1000)
    sub = Subscriber()

    @sub.on("approval.requested")
    def decide(event, ctx):
        data = event.get("data") or {}
        line(action="received", type=event["type"], id=event["id"], tenantId=event.get("tenantId"),
             correlationId=ctx.correlation_id, traceId=trace_id_of(ctx.traceparent),
             approvalId=data.get("approvalId"), attempt=ctx.attempt)
        decision = {"approvalId": data.get("approvalId"), "decidedBy": "policy"}
        if data.get("resourceType"):
            decision["resourceType"] = data["resourceType"]
        try:
            amount = float((data.get("metadata") or {}).get("amount", ""))
        except ValueError:
            amount = None  # a request without a valid amount is rejected, not retried
        if amount is not None and amount <= limit:
            decided = "approval.granted"
        else:
            decided = "approval.rejected"
            decision["reason"] = (f"amount {amount:g} is over the limit of {limit:g}" if amount is not None
                                  else "no amount in data.metadata.amount")
        # A retry of this push publishes again; the key makes that a no-op.
        ack = ctx.publish({"type": decided, "data": decision},
                          headers={"Idempotency-Key": f"decision-{event['id']}"})
        line(action="published", type=decided, id=ack["id"], tenantId=ack["tenantId"],
             correlationId=ack["correlationId"], traceId=trace_id_of(ctx.traceparent),
             approvalId=data.get("approvalId"))

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sub.start()
    stop.wait()
    sub.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
