// The least an event-proxy backend can do, for scripts/bench_proxy: answer
// every POST at once with {"result":{"data":"ok"}}, over kept-alive
// connections. Node's http module only, no framework.
//
//     node bench/backend.mjs PORT
import http from "node:http";

const port = Number(process.argv[2] || 0);
const answer = JSON.stringify({ result: { data: "ok" } });
const server = http.createServer((request, response) => {
  request.resume();
  request.on("end", () => {
    response.writeHead(200, {
      "Content-Type": "application/json",
      "Content-Length": Buffer.byteLength(answer),
    });
    response.end(answer);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, "127.0.0.1", () => {
  console.log(`backend on http://127.0.0.1:${server.address().port}/`);
});
