// The reference server on Node's `ws`: node server.mjs echo|broadcast PORT
//
// echo: every message comes back to its sender. broadcast: every message
// goes to every other client (the loop from the ws README). Listens on
// 127.0.0.1 only; compression is off, as in the other servers.
import { WebSocketServer, WebSocket } from '../../../tests/js/node_modules/ws/wrapper.mjs';

const [mode, port] = process.argv.slice(2);
if (!['echo', 'broadcast'].includes(mode) || !port) {
  console.error('usage: node server.mjs echo|broadcast PORT');
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port: Number(port),
  perMessageDeflate: false,
  backlog: 1024,
});

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (mode === 'echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else {
    ws.on('message', (data, isBinary) => {
      for (const client of wss.clients) {
        if (client !== ws && client.readyState === WebSocket.OPEN) {
          client.send(data, { binary: isBinary });
        }
      }
    });
  }
});

wss.on('listening', () => {
  console.error(`ws ${mode} on ws://127.0.0.1:${wss.address().port}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
