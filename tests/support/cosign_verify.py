#!/usr/bin/env python3
"""Verifies the cosign signatures of an image in a registry the way
containers/image's `sigstoreSigned` policy requirement does, for tests on
machines whose skopeo was built without sigstore support (Debian's skopeo 1.9
answers "Debian-local change: sigstore disabled").

Independent of mc-engine: the registry API over urllib, the payload checked
with Python's json, the ECDSA P-256/SHA-256 signature with `openssl dgst`.
What is checked (containers/image signature/internal/sigstore_payload.go and
signature/policy_eval_sigstore.go):
  - the manifest digest of REF; the tag sha256-HEX.sig in the same repository
    holds an OCI manifest; each layer of media type
    application/vnd.dev.cosign.simplesigning.v1+json is a candidate: its blob
    (sha256 checked), its annotation dev.cosignproject.cosign/signature (base64
    DER) verified with the public key over the blob's exact bytes;
  - the payload: exactly the keys "critical" and "optional" ("optional" may be
    null or an object); critical has exactly "type", "image", "identity";
    type == "cosign container image signature"; image has exactly
    "docker-manifest-digest", equal to the manifest digest; identity has
    exactly "docker-reference", equal to --identity (default: HOST/REPO of REF,
    i.e. matchRepository).
The image is accepted when at least one signature passes. For an index,
like `skopeo copy` without --all (and podman pull), the image of
linux/amd64 is the one verified; --index verifies the index's own signature
instead (what `cosign verify` checks for a tag that names an index).

Usage: cosign_verify.py --key PUB.pem [--identity HOST/REPO] [--index] HOST/REPO(:TAG|@DIGEST)
Exit 0 accepted ("accepted N" on stdout), 1 rejected (reasons on stdout).
"""
import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIG_ANNOTATION = "dev.cosignproject.cosign/signature"


def get(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def exact_keys(obj, keys, what):
    if not isinstance(obj, dict) or set(obj.keys()) != set(keys):
        raise ValueError("%s must have exactly the fields %s" % (what, sorted(keys)))


def check_payload(payload, digest, identity):
    doc = json.loads(payload)
    exact_keys(doc, ["critical", "optional"], "payload")
    if doc["optional"] is not None and not isinstance(doc["optional"], dict):
        raise ValueError("optional is neither null nor an object")
    crit = doc["critical"]
    exact_keys(crit, ["type", "image", "identity"], "critical")
    if crit["type"] != "cosign container image signature":
        raise ValueError("unrecognized signature type %r" % crit["type"])
    exact_keys(crit["image"], ["docker-manifest-digest"], "critical.image")
    exact_keys(crit["identity"], ["docker-reference"], "critical.identity")
    if crit["image"]["docker-manifest-digest"] != digest:
        raise ValueError("signed digest %s is not %s" % (crit["image"]["docker-manifest-digest"],
                                                         digest))
    if crit["identity"]["docker-reference"] != identity:
        raise ValueError("signed identity %s is not %s" % (crit["identity"]["docker-reference"],
                                                           identity))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--identity")
    ap.add_argument("--index", action="store_true")
    ap.add_argument("ref")
    a = ap.parse_args()
    host, rest = a.ref.split("/", 1)
    if "@" in rest:
        repo, ident = rest.split("@", 1)
    elif ":" in rest:
        repo, ident = rest.rsplit(":", 1)
    else:
        repo, ident = rest, "latest"
    base = "http://%s/v2/%s" % (host, repo)
    manifest = get("%s/manifests/%s" % (base, ident), ACCEPT)
    doc = json.loads(manifest)
    if "manifests" in doc and not a.index:
        for m in doc["manifests"]:
            p = m.get("platform") or {}
            if p.get("os") == "linux" and p.get("architecture") == "amd64":
                manifest = get("%s/manifests/%s" % (base, m["digest"]), ACCEPT)
                break
        else:
            print("rejected: no linux/amd64 image in the index")
            return 1
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    identity = a.identity or "%s/%s" % (host, repo)
    try:
        sig = json.loads(get("%s/manifests/sha256-%s.sig" % (base, digest[7:]), ACCEPT))
    except urllib.error.HTTPError as e:
        print("rejected: no signature tag (%d)" % e.code)
        return 1
    accepted, reasons = 0, []
    with tempfile.TemporaryDirectory() as tmp:
        for i, layer in enumerate(sig.get("layers", [])):
            if layer.get("mediaType") != SIMPLE_SIGNING:
                continue
            blob = get("%s/blobs/%s" % (base, layer["digest"]))
            if "sha256:" + hashlib.sha256(blob).hexdigest() != layer["digest"]:
                reasons.append("layer %d: blob digest mismatch" % i)
                continue
            b64 = (layer.get("annotations") or {}).get(SIG_ANNOTATION)
            if not b64:
                reasons.append("layer %d: no signature annotation" % i)
                continue
            data, sigf = os.path.join(tmp, "payload%d" % i), os.path.join(tmp, "sig%d" % i)
            open(data, "wb").write(blob)
            open(sigf, "wb").write(base64.b64decode(b64, validate=True))
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", a.key, "-signature",
                                sigf, data], capture_output=True)
            if r.returncode != 0:
                reasons.append("layer %d: cryptographic signature verification failed" % i)
                continue
            try:
                check_payload(blob, digest, identity)
            except (ValueError, KeyError, TypeError) as e:
                reasons.append("layer %d: %s" % (i, e))
                continue
            accepted += 1
    if accepted:
        print("accepted %d" % accepted)
        return 0
    print("rejected: " + "; ".join(reasons or ["no simple-signing layer"]))
    return 1


if __name__ == "__main__":
    sys.exit(main())
