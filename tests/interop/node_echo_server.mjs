#!/usr/bin/env node
// WebSocket echo server on 127.0.0.1, built on Node's `ws` (from tests/js).
//
// Usage: node_echo_server.mjs PORT [--deflate]
//
// Echoes text as text and binary as binary, of any size. `ws` answers a close
// frame with the peer's own code and reason. permessage-deflate is offered
// only with --deflate. Serves until killed.

import { createRequire } from 'node:module';

const require = createRequire(new URL('../js/package.json', import.meta.url));
const { WebSocketServer } = require('ws');

const [portArg, ...flags] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || flags.some((flag) => flag !== '--deflate')) {
  console.error('usage: node_echo_server.mjs PORT [--deflate]');
  process.exit(2);
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  maxPayload: 0, // no limit
  perMessageDeflate: flags.includes('--deflate'),
});

server.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => ws.terminate());
});

server.on('listening', () => console.log(`node_echo_server listening on 127.0.0.1:${port}`));
