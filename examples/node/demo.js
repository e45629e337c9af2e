#!/usr/bin/env node
// demo.js: publish one approval.requested through the sidecar and receive it
// back through this app's own handler.
//
//   HYVVE_SIDECAR_URL  http://127.0.0.1:4750 (default) or unix:///path/to.sock
//   PORT               where the sidecar pushes (its --app-url), default 3000
//   HYVVE_TENANT       tenant of the event, default "demo"
//
// Exits 0 once the event came back, 1 after 30 s without it.
'use strict';

const crypto = require('node:crypto');
const { Client, Subscriber, newTraceparent } = require('./hyvve');

const TIMEOUT_MS = 30_000;

async function main() {
  const port = Number(process.env.PORT) || 3000;
  const tenantId = process.env.HYVVE_TENANT || 'demo';
  const client = new Client();
  const sub = new Subscriber({ client });
  const approvalId = `a-${crypto.randomUUID()}`;

  let received;
  const done = new Promise((resolve) => {
    received = resolve;
  });
  sub.on('approval.requested', (event, ctx) => {
    // Earlier runs may have left events in the stream: wait for ours.
    if (event.data && event.data.approvalId === approvalId) received({ event, ctx });
  });

  const timer = setTimeout(() => {
    console.error(`demo: no approval.requested came back within ${TIMEOUT_MS / 1000} s`);
    process.exit(1);
  }, TIMEOUT_MS);

  await sub.listen(port);
  console.log(`demo: listening on 127.0.0.1:${port}, waiting for the sidecar at ${client.sidecarUrl}`);
  await client.waitReady({ timeoutMs: TIMEOUT_MS });

  const ack = await client.publish(
    {
      type: 'approval.requested',
      tenantId,
      // The core approval.requested schema (docs/events.md): these four fields are required.
      data: { approvalId, resourceType: 'invoice', resourceId: 'inv-42', requestedBy: 'u-1', title: 'Invoice 42' },
    },
    { headers: { traceparent: newTraceparent() } },
  );
  console.log(`demo: published ${ack.id} to ${ack.stream} (correlation ${ack.correlationId})`);

  const { event, ctx } = await done;
  clearTimeout(timer);
  console.log(`demo: received ${event.type} ${event.id} (attempt ${ctx.attempt}, traceparent ${ctx.traceparent || 'none'})`);
  console.log(JSON.stringify(event, null, 2));
  await sub.close();
  client.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`demo: ${(err && err.stack) || err}`);
    process.exit(1);
  },
);
