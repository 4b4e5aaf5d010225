#!/usr/bin/env python3
"""Prints the public key (PEM) of an encrypted cosign/sigstore private key, by
a path independent of mc-engine's: Python's hashlib.scrypt, libsodium's
crypto_secretbox_open_easy through ctypes, and `openssl pkey` for PKCS#8.

Usage: cosign_key_pub.py KEYFILE PASSPHRASE
Exit 1 (and no output) when the passphrase does not open the key.
"""
import base64
import ctypes
import ctypes.util
import hashlib
import json
import subprocess
import sys


def main():
    path, passphrase = sys.argv[1], sys.argv[2].encode()
    lines = open(path).read().splitlines()
    body = "".join(l for l in lines if not l.startswith("-----"))
    enc = json.loads(base64.b64decode(body))
    params = enc["kdf"]["params"]
    key = hashlib.scrypt(passphrase, salt=base64.b64decode(enc["kdf"]["salt"]), n=params["N"],
                         r=params["r"], p=params["p"], maxmem=512 << 20, dklen=32)
    box = base64.b64decode(enc["ciphertext"])
    nonce = base64.b64decode(enc["cipher"]["nonce"])
    sodium = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    if sodium.sodium_init() < 0:
        return 2
    plain = ctypes.create_string_buffer(len(box) - 16)
    if sodium.crypto_secretbox_open_easy(plain, box, ctypes.c_ulonglong(len(box)), nonce, key):
        return 1
    pub = subprocess.run(["openssl", "pkey", "-inform", "DER", "-pubout"], input=plain.raw,
                         capture_output=True, check=True)
    sys.stdout.write(pub.stdout.decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
