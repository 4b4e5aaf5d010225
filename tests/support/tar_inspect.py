#!/usr/bin/env python3
"""Lists a tar with Python's tarfile, an independent reader, for the tests.

Usage: tar_inspect.py FILE|- [HASH_LIMIT]
Prints one JSON object per member: name, type (tarfile's one-byte typeflag),
mode, uid, gid, uname, gname, mtime, size, linkname, the sorted keys of its pax
header, and the sha256 of regular files up to HASH_LIMIT bytes (default 64 MiB).
"-" reads stdin in one forward pass: skipping a member's data reads it into a
reused buffer, so an 8 GiB member costs a pipe's speed, not Python's.
"""
import hashlib
import json
import sys
import tarfile


class ForwardReader:
    """A pipe that tarfile may seek, forwards only."""

    def __init__(self, raw):
        self.raw = raw
        self.pos = 0
        self.scratch = bytearray(4 << 20)

    def tell(self):
        return self.pos

    def read(self, size=-1):
        data = self.raw.read() if size is None or size < 0 else self.raw.read(size)
        while size is not None and 0 <= len(data) < size:
            more = self.raw.read(size - len(data))
            if not more:
                break
            data += more
        self.pos += len(data)
        return data

    def seek(self, offset, whence=0):
        if whence == 1:
            offset += self.pos
        if whence == 2 or offset < self.pos:
            raise OSError("forward-only stream: cannot seek to %d from %d" % (offset, self.pos))
        view = memoryview(self.scratch)
        while self.pos < offset:
            n = self.raw.readinto(view[: min(len(view), offset - self.pos)])
            if not n:
                raise EOFError("stream ended at %d, before %d" % (self.pos, offset))
            self.pos += n
        return self.pos


def main():
    src = sys.argv[1]
    hash_limit = int(sys.argv[2]) if len(sys.argv) > 2 else 64 << 20
    if src == "-":
        tf = tarfile.open(fileobj=ForwardReader(sys.stdin.buffer), mode="r:")
    else:
        tf = tarfile.open(src, mode="r:")
    for m in tf:
        d = {
            "name": m.name,
            "type": m.type.decode("ascii"),
            "mode": m.mode,
            "uid": m.uid,
            "gid": m.gid,
            "uname": m.uname,
            "gname": m.gname,
            "mtime": m.mtime,
            "size": m.size,
            "linkname": m.linkname,
            "pax": sorted(m.pax_headers.keys()),
        }
        if m.isreg() and m.size <= hash_limit:
            d["sha256"] = hashlib.sha256(tf.extractfile(m).read()).hexdigest()
        print(json.dumps(d), flush=True)


if __name__ == "__main__":
    main()
