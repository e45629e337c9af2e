#!/usr/bin/env node
// approvals.js: the "approvals" service of the polyglot example. It publishes
// approval.requested and handles the decision (approval.granted or
// approval.rejected) that the Python "policy" service publishes in answer,
// from inside its own handler, so the correlation id and trace id of the
// request come back with the decision.
//
//   HYVVE_SIDECAR_URL  http://127.0.0.1:4750 (default) or unix:///path/to.sock
//   PORT               where its sidecar pushes (--app-url), default 3000
//   HYVVE_TENANT       tenant of the requests, default "demo"
//   PUBLISH_EVERY      seconds between requests; 0 (default) publishes one
//
// It logs one JSON line per event sent or received on stdout and runs until
// SIGTERM or SIGINT.
'use strict';

const crypto = require('node:crypto');
const { Client, Subscriber, newTraceparent, traceIdOf } = require('./hyvve');

const line = (obj) => process.stdout.write(`${JSON.stringify({ app: 'approvals', ...obj })}\n`);

async function main() {
  const port = Number(process.env.PORT) || 3000;
  const tenantId = process.env.HYVVE_TENANT || 'demo';
  const every = Number(process.env.PUBLISH_EVERY) || 0;
  const client = new Client();
  const sub = new Subscriber({ client });

  const onDecision = (event, ctx) => {
    line({
      action: 'received',
      type: event.type,
      id: event.id,
      tenantId: event.tenantId,
      correlationId: ctx.correlationId,
      traceId: traceIdOf(ctx.traceparent),
      approvalId: event.data && event.data.approvalId,
      attempt: ctx.attempt,
    });
  };
  sub.on('approval.granted', onDecision);
  sub.on('approval.rejected', onDecision);

  let timer = null;
  const stop = async () => {
    if (timer) clearInterval(timer);
    await sub.close();
    client.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);

  await sub.listen(port);
  await client.waitReady({ timeoutMs: 5 * 60_000 });

  const request = async () => {
    const approvalId = `a-${crypto.randomUUID()}`;
    const traceparent = newTraceparent();
    const amount = crypto.randomInt(1, 2000);
    try {
      const ack = await client.publish(
        {
          type: 'approval.requested',
          tenantId,
          data: {
            approvalId,
            resourceType: 'invoice',
            resourceId: `inv-${amount}`,
            requestedBy: 'u-1',
            title: `Invoice of ${amount} EUR`,
            metadata: { amount: String(amount) },
          },
        },
        { headers: { traceparent } },
      );
      line({
        action: 'published',
        type: 'approval.requested',
        id: ack.id,
        tenantId: ack.tenantId,
        correlationId: ack.correlationId,
        traceId: traceIdOf(traceparent),
        approvalId,
      });
    } catch (err) {
      console.error(`approvals: publish failed: ${err.message}`);
    }
  };
  await request();
  if (every > 0) timer = setInterval(request, every * 1000);
}

main().catch((err) => {
  console.error(`approvals: ${(err && err.stack) || err}`);
  process.exit(1);
});
