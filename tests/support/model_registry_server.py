#!/usr/bin/env python3
"""Loopback Kubeflow Model Registry (REST v1alpha3) for the register tests.

Follows protocols.md section 6 (kubeflow/model-registry api/openapi/
model-registry.yaml, internal/core, internal/server/openapi/helpers.go):
  - base path /api/model_registry/v1alpha3, JSON bodies;
  - every call needs "Authorization: Bearer TOKEN" (--token), else 401;
  - ids are strings holding integers ("1"); numbers where ids go -> 400;
  - RegisteredModel names unique per registry; ModelVersion names unique
    within a RegisteredModel; artifact names unique within a version -> 409;
  - customProperties values carry a metadataType discriminator and exactly
    its value field (int_value is a string); anything else -> 400;
  - finding a version by name needs parentResourceId (else 400);
  - errors are {"code": "<status text>", "message": "..."};
  - list responses {"items": [...], "nextPageToken": "", "pageSize": N, "size": N}.

Prints "ready PORT" once listening. Test hooks (no auth needed):
  GET  /_test/state     {"registeredModels": [...], "modelVersions": [...],
                         "artifacts": [...], "requests": ["METHOD PATH", ...]}
Options:
  --token T             the accepted bearer token (default "test-token")
  --stale-finds N       the first N "find by name" GETs of each kind (model,
                        version) answer 404 even when the object exists (a race with another writer: the
                        client's POST then gets 409 and must find again)
  --page-size N         maximum list page size (default 100), to exercise paging
"""
import argparse
import json
import re
import sys
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE = "/api/model_registry/v1alpha3"
ID_RE = re.compile(r"^[1-9][0-9]{0,8}$")
PRINTABLE_RE = re.compile(r"^[\x20-\x7E]+$")
PROPERTY_FIELDS = {
    "MetadataStringValue": {"string_value": str},
    "MetadataIntValue": {"int_value": str},
    "MetadataDoubleValue": {"double_value": (int, float)},
    "MetadataBoolValue": {"bool_value": bool},
    "MetadataStructValue": {"struct_value": str},
    "MetadataProtoValue": {"type": str, "proto_value": str},
}
MODEL_FIELDS = {"name", "description", "owner", "state", "customProperties", "externalId",
                "readme", "maturity", "language", "tasks", "provider", "logo", "license",
                "licenseLink", "libraryName"}
VERSION_FIELDS = {"name", "registeredModelId", "author", "description", "state",
                  "customProperties", "externalId"}
ARTIFACT_FIELDS = {"artifactType", "name", "uri", "state", "description", "externalId",
                   "customProperties", "modelFormatName", "modelFormatVersion", "storageKey",
                   "storagePath", "serviceAccountName", "modelSourceKind", "modelSourceClass",
                   "modelSourceGroup", "modelSourceId", "modelSourceName", "id"}
ARTIFACT_STATES = {"UNKNOWN", "PENDING", "LIVE", "MARKED_FOR_DELETION", "DELETED", "ABANDONED",
                   "REFERENCE"}

ARGS = None
LOCK = threading.Lock()
STATE = {"next_id": 1, "models": {}, "versions": {}, "artifacts": {}, "requests": [],
         "stale_finds": {}}


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def new_id():
    i = STATE["next_id"]
    STATE["next_id"] += 1
    return str(i)


def now_ms():
    return str(int(time.time() * 1000))


def check_properties(props):
    if props is None:
        return
    if not isinstance(props, dict):
        raise ApiError(400, "customProperties must be an object")
    for key, value in props.items():
        if not isinstance(value, dict) or value.get("metadataType") not in PROPERTY_FIELDS:
            raise ApiError(400, f"customProperties.{key}: missing or unknown metadataType")
        fields = PROPERTY_FIELDS[value["metadataType"]]
        extra = set(value) - set(fields) - {"metadataType"}
        if extra or set(fields) - set(value):
            raise ApiError(400, f"customProperties.{key}: wrong fields for {value['metadataType']}")
        for name, kind in fields.items():
            if not isinstance(value[name], kind) or isinstance(value[name], bool) != (kind is bool):
                raise ApiError(400, f"customProperties.{key}.{name} has the wrong type")


def check_body(body, allowed, required):
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    unknown = set(body) - allowed
    if unknown:
        raise ApiError(400, f"unknown fields: {sorted(unknown)}")
    for name in required:
        if not isinstance(body.get(name), str) or not body[name]:
            raise ApiError(400, f"{name} is required and must be a string")
    for name in ("registeredModelId", "id"):
        if name in body and not (isinstance(body[name], str) and ID_RE.match(body[name])):
            raise ApiError(400, f"{name} must be a string holding an integer id")
    check_properties(body.get("customProperties"))


def stamp(obj):
    obj.setdefault("createTimeSinceEpoch", now_ms())
    obj["lastUpdateTimeSinceEpoch"] = now_ms()
    return obj


def stale_find(kind):
    used = STATE["stale_finds"].get(kind, 0)
    if used < ARGS.stale_finds:
        STATE["stale_finds"][kind] = used + 1
        return True
    return False


def page(items, query):
    size = min(int(query.get("pageSize", ["100"])[0] or 100), ARGS.page_size)
    start = int(query.get("nextPageToken", ["0"])[0] or 0)
    chunk = items[start:start + size]
    nxt = str(start + size) if start + size < len(items) else ""
    return {"items": chunk, "nextPageToken": nxt, "pageSize": size, "size": len(chunk)}


def create_model(body):
    check_body(body, MODEL_FIELDS, ["name"])
    if any(m["name"] == body["name"] for m in STATE["models"].values()):
        raise ApiError(409, f"registered model {body['name']!r} already exists")
    obj = stamp(dict(body, id=new_id()))
    obj.setdefault("state", "LIVE")
    STATE["models"][obj["id"]] = obj
    return 201, obj


def create_version(body, parent=None):
    if parent is not None:
        body = dict(body, registeredModelId=parent)
    check_body(body, VERSION_FIELDS, ["name", "registeredModelId"])
    rm = body["registeredModelId"]
    if rm not in STATE["models"]:
        raise ApiError(404, f"registered model {rm} not found")
    if any(v["registeredModelId"] == rm and v["name"] == body["name"]
           for v in STATE["versions"].values()):
        raise ApiError(409, f"model version {body['name']!r} already exists in model {rm}")
    obj = stamp(dict(body, id=new_id()))
    obj.setdefault("state", "LIVE")
    STATE["versions"][obj["id"]] = obj
    return 201, obj


def upsert_artifact(version_id, body):
    if version_id not in STATE["versions"]:
        raise ApiError(404, f"model version {version_id} not found")
    check_body(body, ARTIFACT_FIELDS, ["artifactType"])
    if body["artifactType"] != "model-artifact":
        raise ApiError(400, "artifactType must be model-artifact or doc-artifact")
    if "state" in body and body["state"] not in ARTIFACT_STATES:
        raise ApiError(400, "invalid artifact state")
    if "id" in body:  # update of an existing artifact through the version
        existing = STATE["artifacts"].get(body["id"])
        if existing is None:
            raise ApiError(404, f"artifact {body['id']} not found")
        existing.update(body)
        return 200, stamp(existing)
    name = body.get("name") or ""
    if name and any(a["_parent"] == version_id and a.get("name") == name
                    for a in STATE["artifacts"].values()):
        raise ApiError(409, f"artifact {name!r} already exists in version {version_id}")
    obj = stamp(dict(body, id=new_id(), _parent=version_id))
    obj.setdefault("state", "UNKNOWN")
    STATE["artifacts"][obj["id"]] = obj
    return 201, obj


def public(obj):
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def route(method, path, query, body):
    one = lambda name: (query.get(name) or [None])[0]
    if method == "GET" and path == "/registered_model":
        name, ext = one("name"), one("externalId")
        if not name and not ext:
            raise ApiError(400, "name or externalId is required")
        if name is not None and not PRINTABLE_RE.match(name):
            raise ApiError(400, "invalid name")
        for m in STATE["models"].values():
            if (name and m["name"] == name) or (ext and m.get("externalId") == ext):
                if stale_find("model"):
                    break
                return 200, m
        raise ApiError(404, "no registered model found")
    if path == "/registered_models":
        if method == "POST":
            return create_model(body)
        if method == "GET":
            return 200, page(list(STATE["models"].values()), query)
    m = re.fullmatch(r"/registered_models/([^/]+)(/versions)?", path)
    if m:
        rm = STATE["models"].get(m.group(1))
        if rm is None:
            raise ApiError(404, f"registered model {m.group(1)} not found")
        if m.group(2) and method == "POST":
            return create_version(body, parent=m.group(1))
        if m.group(2) and method == "GET":
            return 200, page([v for v in STATE["versions"].values()
                              if v["registeredModelId"] == m.group(1)], query)
        if method == "GET":
            return 200, rm
    if method == "GET" and path == "/model_version":
        name, parent = one("name"), one("parentResourceId")
        if name and not parent:
            raise ApiError(400, "finding a model version by name needs parentResourceId")
        if not name:
            raise ApiError(400, "name or externalId is required")
        for v in STATE["versions"].values():
            if v["name"] == name and v["registeredModelId"] == parent:
                if stale_find("version"):
                    break
                return 200, v
        raise ApiError(404, "no model version found")
    if path == "/model_versions" and method == "POST":
        return create_version(body)
    m = re.fullmatch(r"/model_versions/([^/]+)(/artifacts)?", path)
    if m:
        vid = m.group(1)
        if vid not in STATE["versions"]:
            raise ApiError(404, f"model version {vid} not found")
        if m.group(2) and method == "POST":
            return upsert_artifact(vid, body)
        if m.group(2) and method == "GET":
            return 200, page([public(a) for a in STATE["artifacts"].values()
                              if a["_parent"] == vid], query)
        if method == "GET":
            return 200, STATE["versions"][vid]
    m = re.fullmatch(r"/model_artifacts/([^/]+)", path)
    if m and method == "PATCH":
        art = STATE["artifacts"].get(m.group(1))
        if art is None:
            raise ApiError(404, f"artifact {m.group(1)} not found")
        check_body(body, ARTIFACT_FIELDS - {"name"}, [])
        art.update(body)
        return 200, public(stamp(art))
    raise ApiError(404, f"no route for {method} {path}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if url.path == "/_test/state":
            with LOCK:
                return self.reply(200, {
                    "registeredModels": list(STATE["models"].values()),
                    "modelVersions": list(STATE["versions"].values()),
                    "artifacts": [public(a) for a in STATE["artifacts"].values()],
                    "requests": STATE["requests"]})
        with LOCK:
            STATE["requests"].append(f"{self.command} {self.path}")
        if self.headers.get("Authorization") != f"Bearer {ARGS.token}":
            return self.reply(401, {"code": "Unauthorized", "message": "missing or invalid token"})
        if not url.path.startswith(BASE + "/"):
            return self.reply(404, {"code": "Not Found", "message": "unknown path"})
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return self.reply(400, {"code": "Bad Request", "message": "invalid JSON body"})
        if self.command in ("POST", "PATCH") and body is None:
            return self.reply(400, {"code": "Bad Request", "message": "a JSON body is required"})
        try:
            with LOCK:
                status, obj = route(self.command, url.path[len(BASE):],
                                    urllib.parse.parse_qs(url.query), body)
                obj = public(obj) if "items" not in obj else obj
            self.reply(status, obj)
        except ApiError as e:
            self.reply(e.status, {"code": HTTPStatus(e.status).phrase, "message": e.message})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--token", default="test-token")
    p.add_argument("--stale-finds", type=int, default=0)
    p.add_argument("--page-size", type=int, default=100)
    ARGS = p.parse_args()
    server = ThreadingHTTPServer((ARGS.host, 0), Handler)
    server.daemon_threads = True
    print(f"ready {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
