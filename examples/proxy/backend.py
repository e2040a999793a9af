# The chat's updateUser behind `switchboard serve --event-proxy http://127.0.0.1:8000/`
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

users = {}  # connection id -> what it sent with updateUser

class Backend(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the server reuses its connections

    def do_POST(self):
        ask = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        me, event = ask["connection"]["id"], ask["event"]
        if event == "updateUser": users[me] = ask["data"]
        if event == "disconnect": users.pop(me, None)
        # replyAll: the new list to everyone; replyOne: the ack's data, to the sender
        everyone = [{"event": "users", "broadcast": True, "data": list(users.values())}]
        emit = everyone if event in ("updateUser", "disconnect") else []
        body = json.dumps({"result": {"data": {"users": len(users)}, "emit": emit}}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if sys.argv[1:] else 8000), Backend).serve_forever()
