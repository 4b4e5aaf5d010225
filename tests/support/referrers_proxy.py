#!/usr/bin/env python3
"""A registry with the OCI 1.1 referrers API, for tests: a loopback HTTP proxy
in front of a real registry (distribution 2.8 has no referrers API) that adds
the API the way distribution 3 and zot have it.

  GET /v2/NAME/referrers/DIGEST[?artifactType=T]
      200, Content-Type application/vnd.oci.image.index.v1+json: an index of
      the manifests pushed through this proxy whose `subject` is DIGEST
      (descriptor: mediaType, digest, size, artifactType = the manifest's
      artifactType or its config's mediaType, annotations)
  PUT /v2/NAME/manifests/REF
      forwarded; when the registry stored it (201) and the body has a
      `subject`, the manifest is indexed and the answer carries
      `OCI-Subject: <subject digest>`
  anything else: forwarded unchanged (Host kept, so Location headers name the proxy)

Prints "ready PORT" once listening; logs "referrers NAME DIGEST N" and
"indexed NAME DIGEST -> SUBJECT" lines on stdout.
Options: --upstream HOST:PORT (required) --host H
"""
import argparse
import hashlib
import http.client
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
REFERRERS = {}  # (name, subject digest) -> {digest: descriptor}
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate"}


def log(line):
    with LOCK:
        print(line, flush=True)


def read_body(handler):
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            size = int(handler.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += handler.rfile.read(size)
            handler.rfile.readline()
    n = int(handler.headers.get("Content-Length", "0") or 0)
    return handler.rfile.read(n) if n else b""


def split_v2(path):
    """'/v2/a/b/manifests/x' -> ('a/b', 'manifests', 'x') or None."""
    p = path.split("?", 1)[0]
    if not p.startswith("/v2/"):
        return None
    for kind in ("/manifests/", "/referrers/"):
        i = p.rfind(kind)
        if i > 3:
            return p[4:i], kind.strip("/"), p[i + len(kind):]
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def handle_any(self):
        parts = split_v2(self.path)
        body = read_body(self)
        if parts and parts[1] == "referrers" and self.command == "GET":
            return self.referrers(parts[0], parts[2])
        status, headers, data = self.forward(body)
        if (parts and parts[1] == "manifests" and self.command == "PUT" and status == 201):
            subject = self.index(parts[0], body)
            if subject:
                headers.append(("OCI-Subject", subject))
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", self.head_length)
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def forward(self, body):
        conn = http.client.HTTPConnection(ARGS.upstream, timeout=60)
        headers = {}
        for k in set(self.headers.keys()):
            if k.lower() not in HOP:
                # Repeated headers (skopeo sends several Accept lines) become one list.
                headers[k] = ", ".join(self.headers.get_all(k))
        if body or self.command in ("PUT", "POST", "PATCH"):
            headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body if body else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        out = [(k, v) for k, v in resp.getheaders()
               if k.lower() not in HOP and k.lower() != "content-length"]
        self.head_length = resp.getheader("Content-Length", "0")
        conn.close()
        return resp.status, out, data

    def index(self, name, body):
        try:
            m = json.loads(body)
        except ValueError:
            return None
        subject = m.get("subject") if isinstance(m, dict) else None
        if not isinstance(subject, dict) or "digest" not in subject:
            return None
        desc = {
            "mediaType": m.get("mediaType", self.headers.get("Content-Type", "")),
            "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
            "size": len(body),
        }
        at = m.get("artifactType") or (m.get("config") or {}).get("mediaType")
        if at:
            desc["artifactType"] = at
        if m.get("annotations"):
            desc["annotations"] = m["annotations"]
        with LOCK:
            REFERRERS.setdefault((name, subject["digest"]), {})[desc["digest"]] = desc
        log("indexed %s %s -> %s" % (name, desc["digest"], subject["digest"]))
        return subject["digest"]

    def referrers(self, name, digest):
        with LOCK:
            found = list(REFERRERS.get((name, digest), {}).values())
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        filters = [q.split("=", 1)[1] for q in query.split("&") if q.startswith("artifactType=")]
        if filters:
            found = [d for d in found if d.get("artifactType") in filters]
        log("referrers %s %s %d" % (name, digest, len(found)))
        data = json.dumps({"schemaVersion": 2,
                           "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": found}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.index.v1+json")
        self.send_header("Content-Length", str(len(data)))
        if filters:
            self.send_header("OCI-Filters-Applied", "artifactType")
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ARGS = ap.parse_args()
    srv = ThreadingHTTPServer((ARGS.host, 0), Handler)
    srv.daemon_threads = True
    print("ready %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
