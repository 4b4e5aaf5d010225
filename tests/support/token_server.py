#!/usr/bin/env python3
"""A Docker/OCI registry token server for tests (protocols.md 2.2).

Implements GET /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]
as distribution's token auth expects (docs/content/spec/auth/token.md,
registry/auth/token/token.go):

* Basic credentials are checked against --user USER:PASSWORD; anonymous
  requests get a token with no access (like Docker Hub for a private repo);
  a wrong password gets 401.
* The token is a JWT signed RS256 (PKCS#1 v1.5 + SHA-256), with the signing
  certificate in the header's `x5c` so that distribution verifies it against
  its `rootcertbundle` (the same self-signed certificate). Python's stdlib
  has no RSA, so the signature comes from `openssl dgst -sha256 -sign`.
* Claims: iss, sub, aud (= service), exp, nbf, iat, jti, access.
* Response: {"token", "access_token", "expires_in", "issued_at"}.

Every issued token is logged to stdout as one line
`token user=<u> scope=<s1> <s2> expires_in=<n>` (never the token itself).
Also answers POST /token (OAuth2 form: grant_type=password) with
{"access_token",...} and GET /healthz.
"""
import argparse
import base64
import datetime
import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Signer:
    def __init__(self, key_path, cert_path):
        self.key_path = key_path
        der = subprocess.run(["openssl", "x509", "-in", cert_path, "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self.x5c = [base64.b64encode(der).decode()]
        self.lock = threading.Lock()

    def sign(self, claims: dict) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key_path],
                             input=signing_input.encode(), check=True,
                             capture_output=True).stdout
        return signing_input + "." + b64url(sig)


def parse_scopes(values):
    access = []
    names = []
    for value in values:
        for scope in value.split(" "):
            if not scope:
                continue
            # resourcetype:name:actions -- the name may contain host:port.
            first = scope.find(":")
            last = scope.rfind(":")
            if first < 0 or last == first:
                continue
            rtype, name, actions = scope[:first], scope[first + 1:last], scope[last + 1:]
            access.append({"type": rtype, "name": name,
                           "actions": [a for a in actions.split(",") if a]})
            names.append(scope)
    return access, names


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet default logging
        pass

    def send_json(self, status, obj, extra=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def user_from_basic(self):
        """Returns (ok, user): ok False means wrong credentials."""
        auth = self.headers.get("Authorization", "")
        if not auth:
            return True, ""
        if not auth.startswith("Basic "):
            return False, ""
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        except Exception:
            return False, ""
        return (user == self.server.user and password == self.server.password), user

    def issue(self, user, scopes, service):
        access, names = parse_scopes(scopes)
        if not user:
            access = []  # anonymous: no access at all
        now = int(time.time())
        ttl = self.server.expires_in
        claims = {"iss": self.server.issuer, "sub": user, "aud": service, "exp": now + ttl,
                  "nbf": now - 1, "iat": now, "jti": b64url(os.urandom(12)), "access": access}
        token = self.server.signer.sign(claims)
        print(f"token user={user or '<anonymous>'} scope={' '.join(names)} expires_in={ttl}",
              flush=True)
        issued = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).isoformat()
        return {"token": token, "access_token": token, "expires_in": ttl, "issued_at": issued}

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/healthz":
            return self.send_json(200, {"ok": True})
        if url.path != "/token":
            return self.send_json(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
        query = urllib.parse.parse_qs(url.query)
        ok, user = self.user_from_basic()
        if not ok:
            print("token denied: wrong credentials", flush=True)
            return self.send_json(401, {"errors": [{"code": "UNAUTHORIZED",
                                                    "message": "invalid username or password"}]},
                                  {"WWW-Authenticate": 'Basic realm="mc-test-token"'})
        service = query.get("service", [self.server.service])[0]
        self.send_json(200, self.issue(user, query.get("scope", []), service))

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if url.path != "/token":
            return self.send_json(404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
        if form.get("grant_type", [""])[0] != "password" or \
                form.get("username", [""])[0] != self.server.user or \
                form.get("password", [""])[0] != self.server.password:
            return self.send_json(401, {"error": "invalid_grant"})
        service = form.get("service", [self.server.service])[0]
        self.send_json(200, self.issue(self.server.user, form.get("scope", []), service))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--issuer", default="mc-test-issuer")
    p.add_argument("--service", default="mc-test-registry")
    p.add_argument("--user", default="mcuser:mc-secret-pw", help="USER:PASSWORD")
    p.add_argument("--expires-in", type=int, default=300)
    args = p.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.signer = Signer(args.key, args.cert)
    server.issuer = args.issuer
    server.service = args.service
    server.user, _, server.password = args.user.partition(":")
    server.expires_in = args.expires_in
    print(f"token server on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
