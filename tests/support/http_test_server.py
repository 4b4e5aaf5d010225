#!/usr/bin/env python3
"""Loopback HTTP test server for the registry/ transport, retry and auth tests.

Prints "ready PORT" on stdout once listening. Routes (all deterministic):
  GET  /bytes/N[?tag=T]    N bytes, byte i = i % 251, streamed in 64 KiB writes;
                           with a tag, /stats "sent"[T] counts the bytes written so far
  GET  /drop/N             announces N bytes, sends N/2, then closes the socket
  PUT|POST|PATCH /echo     reads the body (Content-Length or chunked); replies JSON
                           {"length": L, "sha256": HEX, "method": M}
  ANY  /headers            JSON object of the request headers (names lower-cased)
  ANY  /redirect?to=URL&status=S   redirect (default 302) to URL
  GET  /stall              announces 1000 bytes, sends none, stalls for 30 s
  ANY  /stall-read         reads nothing of the request body and answers nothing
                           for 30 s (a dead link under a large upload)
  ANY  /early              answers 413 at once, before reading the body, then
                           reads and drops the body (lingering close, as nginx does)
  ANY  /early-reset[?delay=S]  answers 413 at once, resets the connection after S s
                           (default 0.2; SO_LINGER 0)
  ANY  /loop               302 to itself
  ANY  /flaky/KEY?fail=N&status=S&retry_after=R
                           the first N requests for KEY get status S (with
                           Retry-After: R when given), then 200 "ok"
  GET  /basic/...          needs Basic USER:PASS (--basic-user/--basic-pass)
  ANY  /v2/REPO/...        needs "Bearer TOKEN" with a scope covering REPO
                           (pull for GET/HEAD, push otherwise); else 401 with a
                           Bearer challenge (realm /token on this server)
  GET  /token              issues tokens (Basic --basic-user/--basic-pass
                           checked when given; anonymous allowed unless
                           --token-needs-auth); expires_in from --token-ttl
  POST /token              OAuth2 form variant (grant_type refresh_token|password)
  GET  /stats              JSON counters: requests per path prefix, token requests,
                           last token scopes, bytes sent per /bytes tag
Options: --host H --tls CERT KEY --client-ca CA --basic-user U --basic-pass P --token-ttl S
         --token-needs-auth
"""
import argparse
import base64
import hashlib
import json
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
COUNTERS = {}
FLAKY = {}
TOKENS = {}  # token -> (expiry, set of (repo, action))
STATS = {"token_requests": 0, "last_scopes": [], "last_token_auth": None, "sent": {}}


def count(key):
    with LOCK:
        COUNTERS[key] = COUNTERS.get(key, 0) + 1


TABLE = bytes(i % 251 for i in range(251)) * 300


def pattern(start, n):
    table = TABLE
    out = bytearray()
    pos = start
    while len(out) < n:
        off = pos % 251
        take = min(n - len(out), len(table) - off)
        out += table[off:off + take]
        pos += take
    return bytes(out)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("srv: " + (fmt % args) + "\n")

    def reply(self, status, body=b"", headers=None, ctype="application/json"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        count(path.split("/")[1] if "/" in path else path)
        if path.startswith("/bytes/"):
            return self.send_bytes(int(path.split("/")[2]), q.get("tag"))
        if path.startswith("/drop/"):
            return self.send_drop(int(path.split("/")[2]))
        if path == "/echo":
            body = self.read_body()
            return self.reply(200, json.dumps({"length": len(body), "method": self.command,
                                               "sha256": hashlib.sha256(body).hexdigest()}))
        if path == "/headers":
            self.read_body()
            return self.reply(200, json.dumps({k.lower(): v for k, v in self.headers.items()}))
        if path == "/redirect":
            self.read_body()
            return self.reply(int(q.get("status", "302")), "", {"Location": q["to"]})
        if path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * int(q.get("sent", "0")))  # then nothing more
            self.wfile.flush()
            time.sleep(30)
            self.close_connection = True
            return None
        if path == "/stall-read":
            time.sleep(30)
            self.close_connection = True
            return None
        if path in ("/early", "/early-reset"):
            return self.answer_early(path == "/early-reset", float(q.get("delay", "0.2")))
        if path == "/loop":
            return self.reply(302, "", {"Location": "/loop"})
        if path.startswith("/flaky/"):
            return self.flaky(path.split("/")[2], q)
        if path.startswith("/basic/"):
            return self.basic()
        if path.startswith("/v2/"):
            return self.bearer(path)
        if path == "/token":
            return self.token(q)
        if path == "/stats":
            with LOCK:
                return self.reply(200, json.dumps({"counters": COUNTERS, **STATS}))
        return self.reply(404, '{"errors":[{"code":"NOT_FOUND"}]}')

    def send_bytes(self, n, tag):
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if self.command == "HEAD":
            return
        sent = 0
        while sent < n:
            chunk = pattern(sent, min(65536, n - sent))
            self.wfile.write(chunk)
            sent += len(chunk)
            if tag:
                with LOCK:
                    STATS["sent"][tag] = sent

    def answer_early(self, reset, delay):
        """413 before reading the body; then a lingering close (read and drop
        the body, as nginx does) or, with `reset`, a reset after `delay`."""
        self.close_connection = True
        self.reply(413, '{"errors":[{"code":"SIZE_INVALID","message":"too large"}]}',
                   {"Connection": "close"})
        self.wfile.flush()
        if reset:
            time.sleep(delay)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            return
        self.connection.settimeout(5)
        try:
            while self.connection.recv(1 << 20):
                pass
        except OSError:
            pass

    def send_drop(self, n):
        self.send_response(200)
        self.send_header("Content-Length", str(n))
        self.end_headers()
        self.wfile.write(pattern(0, n // 2))
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)

    def flaky(self, key, q):
        self.read_body()
        with LOCK:
            seen = FLAKY.get(key, 0)
            FLAKY[key] = seen + 1
        if seen < int(q.get("fail", "1")):
            headers = {"Retry-After": q["retry_after"]} if "retry_after" in q else {}
            return self.reply(int(q.get("status", "503")), '{"errors":[]}', headers)
        return self.reply(200, json.dumps({"attempts": seen + 1}))

    def basic_ok(self):
        want = base64.b64encode(f"{ARGS.basic_user}:{ARGS.basic_pass}".encode()).decode()
        return self.headers.get("Authorization", "") == "Basic " + want

    def basic(self):
        if not self.basic_ok():
            return self.reply(401, '{"errors":[{"code":"UNAUTHORIZED"}]}',
                              {"WWW-Authenticate": 'Basic realm="test registry"'})
        return self.reply(200, '{"ok":true}')

    def origin(self):
        scheme = "https" if ARGS.tls else "http"
        return f"{scheme}://{self.headers.get('Host')}"

    def bearer(self, path):
        body = self.read_body()
        rest = path[len("/v2/"):]
        cut = min((rest.find(m) for m in ("/manifests/", "/blobs/", "/tags/") if m in rest),
                  default=len(rest))
        repo = rest[:cut]
        action = "pull" if self.command in ("GET", "HEAD") else "push"
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        with LOCK:
            grant = TOKENS.get(token)
        challenge = (f'Bearer realm="{self.origin()}/token",service="test-registry",'
                     f'scope="repository:{repo}:pull,push"')
        if grant is None or grant[0] < time.time():
            return self.reply(401, '{"errors":[{"code":"UNAUTHORIZED"}]}',
                              {"WWW-Authenticate": challenge})
        if (repo, action) not in grant[1]:
            return self.reply(401, '{"errors":[{"code":"DENIED"}]}',
                              {"WWW-Authenticate": challenge + ',error="insufficient_scope"'})
        return self.reply(200, json.dumps({"repo": repo, "length": len(body)}))

    def token(self, q):
        if self.command == "POST":
            form = dict(urllib.parse.parse_qsl(self.read_body().decode()))
            scopes = form.get("scope", "").split()
            authed = (form.get("grant_type") == "refresh_token" and
                      form.get("refresh_token") == ARGS.identity_token) or (
                form.get("grant_type") == "password" and form.get("username") == ARGS.basic_user
                and form.get("password") == ARGS.basic_pass)
            kind = "oauth2"
        else:
            scopes = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("scope", [])
            authed = self.basic_ok() if ARGS.basic_user else False
            has_auth = "Authorization" in self.headers
            if has_auth and not authed:
                return self.reply(401, '{"details":"invalid credentials"}')
            kind = "basic" if authed else "anonymous"
        if ARGS.token_needs_auth and not authed:
            return self.reply(401, '{"details":"authentication required"}')
        grant = set()
        for s in scopes:
            parts = s.split(":")
            if len(parts) >= 3 and parts[0] == "repository":
                for a in parts[-1].split(","):
                    grant.add((":".join(parts[1:-1]), a))
        with LOCK:
            STATS["token_requests"] += 1
            STATS["last_scopes"] = scopes
            STATS["last_token_auth"] = kind
            tok = f"tok{STATS['token_requests']}"
            TOKENS[tok] = (time.time() + ARGS.token_ttl, grant)
        field = "access_token" if self.command == "POST" else "token"
        return self.reply(200, json.dumps({field: tok, "expires_in": ARGS.token_ttl}))

    def setup(self):
        super().setup()
        count("connections")

    def handle_one(self):
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_one


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    p.add_argument("--client-ca", help="require a client certificate signed by this CA")
    p.add_argument("--basic-user")
    p.add_argument("--basic-pass")
    p.add_argument("--identity-token", default="idtok")
    p.add_argument("--token-ttl", type=int, default=300)
    p.add_argument("--token-needs-auth", action="store_true")
    ARGS = p.parse_args()
    server = ThreadingHTTPServer((ARGS.host, 0), Handler)
    server.daemon_threads = True
    if ARGS.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls[0], ARGS.tls[1])
        if ARGS.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(ARGS.client_ca)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
