#!/usr/bin/env python3
"""Hugging Face Hub test server (protocols.md section 5), Python 3 stdlib only.

Serves model directories as Hub repositories, with a second "CDN" server on
another port for LFS file bytes, as huggingface.co does. Prints "ready PORT"
(the Hub port) once both listen.

Hub (port PORT):
  GET  /api/models/ORG/NAME/revision/REV      {"sha", "siblings", "private", "gated"}
  GET  /api/models/ORG/NAME/tree/REV[/PATH]?recursive=true&expand=..&cursor=N
       JSON array page (--page-size entries) + Link: <...>; rel="next" until the end
  HEAD|GET /ORG/NAME/resolve/REV/PATH
       LFS files: 302 to the CDN with X-Linked-Etag (sha256), X-Linked-Size,
       X-Repo-Commit, ETag; small files: 200 with the bytes (Range honoured)
  Errors as the Hub: 401 + X-Error-Code RepoNotFound for unknown repos without
  a token (404 with one), RevisionNotFound, EntryNotFound, GatedRepo (401
  without a valid token), 401 "Invalid credentials" for a wrong token.
CDN (port in /_debug/stats "cdn_port"):
  GET /cdn/SHA256?X-Amz-Expires=3600&X-Amz-Signature=N   the bytes, Range -> 206
Debug:
  GET /_debug/stats   {"cdn_port", "requests": {"api","resolve","cdn"},
                       "bytes": {"resolve","cdn"}, "cut", "cdn_auth_seen",
                       "hub_auth_seen", "log": [...]}

Options:
  --repo ORG/NAME=DIR   serve DIR as that repo (repeatable)
  --gated ORG/NAME      needs --token (repeatable)
  --token T             the one valid token
  --page-size N         tree page size (default 50)
  --lfs-threshold N     files >= N bytes are LFS (default 65536)
  --rate-limit N        the first N /api/ requests get 429 + RateLimit t=1
  --fail-cdn N          the first N CDN requests get 503
  --cut-after N         CDN/resolve bodies are cut (socket closed) after N bytes...
  --cut-count K         ...for the first K such responses (default 1)
  --corrupt PATH        flip one byte in the middle of that file when served
  --ignore-range        the CDN answers 200 with the whole file to ranged GETs
  --expire-after N      a CDN URL is refused (403) after N uses
  --cdn-url BASE        redirect LFS files to BASE/PATH instead (e.g. nginx)
  --cdn-budget N        the CDN serves N bytes in all, cuts the response that
                        reaches N, then answers 503 (an outage mid-download)
  --cdn-rate N          the CDN sends each response at N bytes/s (a slow link)
"""
import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
STATS = {"requests": {"api": 0, "resolve": 0, "cdn": 0}, "bytes": {"resolve": 0, "cdn": 0},
         "cdn_auth_seen": False, "hub_auth_seen": False, "log": []}
STATE = {"cdn_served": 0, "rate_limited": 0, "cdn_failed": 0, "cut": 0, "signature": 0, "uses": {}}
REPOS = {}  # repo_id -> Repo
BY_SHA = {}  # sha256 -> (Repo, path)
CDN_PORT = [0]


class Repo:
    def __init__(self, repo_id, root):
        self.repo_id = repo_id
        self.root = root
        self.files = {}  # path -> dict(size, oid, lfs sha256 or None)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, root).replace(os.sep, "/")
                self.files[rel] = self.describe(full)
        listing = json.dumps(sorted((p, f["oid"]) for p, f in self.files.items()))
        self.sha = hashlib.sha1(("commit " + repo_id + listing).encode()).hexdigest()

    def describe(self, full):
        size = os.path.getsize(full)
        sha1 = hashlib.sha1(b"blob %d\0" % size)
        sha256 = hashlib.sha256()
        with open(full, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                sha1.update(chunk)
                sha256.update(chunk)
        if size >= ARGS.lfs_threshold:
            pointer = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n"
                       % (sha256.hexdigest(), size)).encode()
            oid = hashlib.sha1(b"blob %d\0" % len(pointer) + pointer).hexdigest()
            info = {"size": size, "oid": oid, "lfs": sha256.hexdigest(), "pointer": len(pointer)}
            BY_SHA[sha256.hexdigest()] = (self, None)
        else:
            info = {"size": size, "oid": sha1.hexdigest(), "lfs": None}
        return info

    def tree_entries(self, prefix):
        dirs = set()
        for p in self.files:
            parts = p.split("/")
            for i in range(1, len(parts)):
                dirs.add("/".join(parts[:i]))
        entries = []
        for d in sorted(dirs):
            if prefix and not d.startswith(prefix + "/"):
                continue
            entries.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": d})
        for p in sorted(self.files):
            if prefix and not p.startswith(prefix + "/"):
                continue
            f = self.files[p]
            e = {"type": "file", "oid": f["oid"], "size": f["size"], "path": p}
            if f["lfs"]:
                e["lfs"] = {"oid": f["lfs"], "size": f["size"], "pointerSize": f["pointer"]}
            entries.append(e)
        entries.sort(key=lambda e: e["path"])
        return entries


def path_of_sha(sha):
    repo = BY_SHA[sha][0]
    for p, f in repo.files.items():
        if f["lfs"] == sha:
            return repo, p
    return None, None


def parse_range(header, size):
    """Returns (start, end_inclusive) or None (no/invalid range) or 'bad' (416)."""
    if not header:
        return None
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return None
    if m.group(1) == "":
        n = int(m.group(2))
        return (max(0, size - n), size - 1) if n > 0 else "bad"
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return "bad"
    return start, min(end, size - 1)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hub-test"

    def log_message(self, fmt, *args):
        pass

    def record(self, kind):
        with LOCK:
            STATS["requests"][kind] = STATS["requests"].get(kind, 0) + 1
            STATS["log"].append({"kind": kind, "method": self.command, "path": self.path,
                                 "range": self.headers.get("Range"),
                                 "auth": self.headers.get("Authorization") is not None,
                                 "accept_encoding": self.headers.get("Accept-Encoding")})
            if len(STATS["log"]) > 2000:
                del STATS["log"][:1000]

    def reply(self, status, body=b"", headers=None, content_type="application/json"):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code=None, message=None):
        headers = {}
        if code:
            headers["X-Error-Code"] = code
        if message:
            headers["X-Error-Message"] = message
        self.reply(status, json.dumps({"error": message or code or ""}).encode(), headers)

    # Auth as the Hub does it: a wrong token is a 401 whatever the repo.
    def auth_state(self):
        auth = self.headers.get("Authorization")
        if auth is None:
            return "anonymous"
        with LOCK:
            STATS["hub_auth_seen"] = True
        if ARGS.token and auth == "Bearer " + ARGS.token:
            return "valid"
        return "invalid"

    def check_repo(self, repo_id):
        state = self.auth_state()
        if state == "invalid":
            self.error(401, None, "Invalid credentials in Authorization header")
            return None
        repo = REPOS.get(repo_id)
        if repo is None:
            if state == "anonymous":
                self.error(401, "RepoNotFound", "Repository not found")
            else:
                self.error(404, "RepoNotFound", "Repository not found")
            return None
        if repo_id in ARGS.gated and state != "valid":
            self.error(401, "GatedRepo",
                       "Access to model %s is restricted. You must have access to it and be "
                       "authenticated to access it. Please log in." % repo_id)
            return None
        return repo

    def rate_limited(self):
        with LOCK:
            if STATE["rate_limited"] >= ARGS.rate_limit:
                return False
            STATE["rate_limited"] += 1
        self.reply(429, b'{"error":"rate limited"}',
                   {"RateLimit": '"api";r=0;t=1',
                    "RateLimit-Policy": '"fixed window";"api";q=500;w=300'})
        return True

    def do_HEAD(self):
        self.route()

    def do_GET(self):
        self.route()

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        query = urllib.parse.parse_qs(url.query)
        try:
            if self.server.role == "cdn":
                return self.cdn(path, query)
            if path == "/_debug/stats":
                with LOCK:
                    body = json.dumps(dict(STATS, cdn_port=CDN_PORT[0], cut=STATE["cut"])).encode()
                return self.reply(200, body)
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+|[^/]+)/revision/(.+)", path)
            if m:
                return self.api_revision(m.group(1), m.group(2))
            m = re.fullmatch(r"/api/models/([^/]+/[^/]+|[^/]+)/tree/([^/]+)(/.*)?", path)
            if m:
                return self.api_tree(m.group(1), m.group(2), (m.group(3) or "").strip("/"), query)
            m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
            if m:
                return self.resolve(m.group(1), m.group(2), m.group(3))
            self.error(404, None, "no route")
        except (BrokenPipeError, ConnectionResetError):
            pass

    def pin(self, repo, rev):
        if rev in ("main", repo.sha):
            return repo.sha
        self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
        return None

    def api_repo(self, repo_id, rev):
        """Counts an API call; the repo, or None once an error was sent."""
        self.record("api")
        if self.rate_limited():
            return None
        repo = self.check_repo(repo_id)
        if repo is None or self.pin(repo, rev) is None:
            return None
        return repo

    def api_revision(self, repo_id, rev):
        repo = self.api_repo(repo_id, rev)
        if repo is None:
            return
        body = {"id": repo_id, "sha": repo.sha, "private": False,
                "gated": "manual" if repo_id in ARGS.gated else False,
                "siblings": [{"rfilename": p} for p in sorted(repo.files)]}
        self.reply(200, json.dumps(body).encode())

    def api_tree(self, repo_id, rev, prefix, query):
        repo = self.api_repo(repo_id, rev)
        if repo is None:
            return
        if query.get("recursive", ["false"])[0] != "true":
            return self.error(400, None, "this test server only lists recursively")
        entries = repo.tree_entries(prefix)
        cursor = int(query.get("cursor", ["0"])[0])
        page = entries[cursor:cursor + ARGS.page_size]
        headers = {}
        if cursor + ARGS.page_size < len(entries):
            q = dict((k, v[0]) for k, v in query.items())
            q["cursor"] = str(cursor + ARGS.page_size)
            host = self.headers.get("Host")
            headers["Link"] = '<http://%s%s?%s>; rel="next"' % (
                host, urllib.parse.quote(urllib.parse.urlsplit(self.path).path),
                urllib.parse.urlencode(q))
        self.reply(200, json.dumps(page).encode(), headers)

    def resolve(self, repo_id, rev, rel):
        self.record("resolve")
        repo = self.check_repo(repo_id)
        if repo is None:
            return
        sha = self.pin(repo, rev)
        if sha is None:
            return
        f = repo.files.get(rel)
        if f is None:
            return self.error(404, "EntryNotFound", "Entry not found")
        headers = {"X-Repo-Commit": sha, "Accept-Ranges": "bytes"}
        if f["lfs"]:
            headers["X-Linked-Etag"] = '"%s"' % f["lfs"]
            headers["X-Linked-Size"] = str(f["size"])
            headers["ETag"] = '"%s"' % f["oid"]
            if ARGS.cdn_url:
                headers["Location"] = ARGS.cdn_url.rstrip("/") + "/" + urllib.parse.quote(rel)
            else:
                with LOCK:
                    STATE["signature"] += 1
                    sig = STATE["signature"]
                headers["Location"] = ("http://127.0.0.1:%d/cdn/%s?X-Amz-Expires=3600&"
                                       "X-Amz-Signature=%d" % (CDN_PORT[0], f["lfs"], sig))
            return self.reply(302, b"", headers, "text/plain")
        headers["ETag"] = '"%s"' % f["oid"]
        self.send_file(repo, rel, f["size"], headers, "resolve")

    def cdn(self, path, query):
        self.record("cdn")
        if self.headers.get("Authorization") is not None:
            with LOCK:
                STATS["cdn_auth_seen"] = True
            # S3 presigned URLs reject a second auth mechanism (protocols.md 5.4).
            return self.reply(400, b"<Error><Code>InvalidArgument</Code></Error>", None,
                              "application/xml")
        m = re.fullmatch(r"/cdn/([0-9a-f]{64})", path)
        if not m or m.group(1) not in BY_SHA:
            return self.reply(404, b"<Error><Code>NoSuchKey</Code></Error>", None, "application/xml")
        sig = query.get("X-Amz-Signature", [""])[0]
        with LOCK:
            uses = STATE["uses"].get(sig, 0) + 1
            STATE["uses"][sig] = uses
            fail = STATE["cdn_failed"] < ARGS.fail_cdn
            if fail:
                STATE["cdn_failed"] += 1
        if ARGS.expire_after and uses > ARGS.expire_after:
            return self.reply(403, b"<Error><Code>AccessDenied</Code><Message>Request has "
                              b"expired</Message></Error>", None, "application/xml")
        if ARGS.cdn_budget is not None and STATE["cdn_served"] >= ARGS.cdn_budget:
            fail = True
        if fail:
            return self.reply(503, b"<Error><Code>SlowDown</Code></Error>", None, "application/xml")
        repo, rel = path_of_sha(m.group(1))
        self.send_file(repo, rel, repo.files[rel]["size"], {"ETag": '"%s"' % m.group(1)}, "cdn")

    def send_file(self, repo, rel, size, headers, kind):
        rng = parse_range(self.headers.get("Range"), size)
        if kind == "cdn" and ARGS.ignore_range:
            rng = None
        if rng == "bad":
            return self.reply(416, b"", {"Content-Range": "bytes */%d" % size})
        start, end = (0, size - 1) if rng is None else rng
        status = 200 if rng is None else 206
        length = end - start + 1 if size > 0 else 0
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = length
        with LOCK:
            if ARGS.cut_after is not None and STATE["cut"] < ARGS.cut_count and \
                    length > ARGS.cut_after:
                STATE["cut"] += 1
                limit = ARGS.cut_after
            if kind == "cdn" and ARGS.cdn_budget is not None:
                limit = max(0, min(limit, ARGS.cdn_budget - STATE["cdn_served"]))
                STATE["cdn_served"] += limit
        corrupt_at = None
        if ARGS.corrupt == rel and size > 0:
            corrupt_at = size // 2
        sent = 0
        with open(os.path.join(repo.root, rel), "rb") as f:
            f.seek(start)
            step = 1 << 20
            if kind == "cdn" and ARGS.cdn_rate:
                step = max(1, ARGS.cdn_rate // 20)  # 20 writes a second
            while sent < limit:
                if kind == "cdn" and ARGS.cdn_rate:
                    time.sleep(step / ARGS.cdn_rate)
                chunk = bytearray(f.read(min(step, limit - sent)))
                if not chunk:
                    break
                if corrupt_at is not None and start + sent <= corrupt_at < start + sent + len(chunk):
                    chunk[corrupt_at - start - sent] ^= 0xFF
                self.wfile.write(chunk)
                sent += len(chunk)
        with LOCK:
            STATS["bytes"][kind] += sent
        if limit < length:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, BrokenPipeError)):
            super().handle_error(request, client_address)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--repo", action="append", default=[])
    p.add_argument("--gated", action="append", default=[])
    p.add_argument("--token", default="")
    p.add_argument("--page-size", type=int, default=50)
    p.add_argument("--lfs-threshold", type=int, default=65536)
    p.add_argument("--rate-limit", type=int, default=0)
    p.add_argument("--fail-cdn", type=int, default=0)
    p.add_argument("--cut-after", type=int, default=None)
    p.add_argument("--cut-count", type=int, default=1)
    p.add_argument("--corrupt", default=None)
    p.add_argument("--ignore-range", action="store_true")
    p.add_argument("--expire-after", type=int, default=0)
    p.add_argument("--cdn-url", default="")
    p.add_argument("--cdn-budget", type=int, default=None)
    p.add_argument("--cdn-rate", type=int, default=0)
    ARGS = p.parse_args()
    for spec in ARGS.repo:
        repo_id, _, root = spec.partition("=")
        REPOS[repo_id] = Repo(repo_id, root)
    hub = Server(("127.0.0.1", 0), Handler)
    hub.role = "hub"
    hub.daemon_threads = True
    cdn = Server(("127.0.0.1", 0), Handler)
    cdn.role = "cdn"
    cdn.daemon_threads = True
    CDN_PORT[0] = cdn.server_address[1]
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    print("ready %d" % hub.server_address[1], flush=True)
    hub.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
