#!/usr/bin/python3
"""Validates a ModelPack model config against the spec's JSON schema.

Usage: modelpack_validate.py SCHEMA CONFIG
Exit 0 and "ok" when valid; exit 1 with every violation, one per line, otherwise.
Uses Debian's python3-jsonschema (Draft 2020-12, as the schema declares). The
"date-time" format is checked here too (RFC 3339, section 5.6), since
jsonschema checks it only when an optional RFC 3339 package is installed.
"""
import json
import re
import sys

import jsonschema

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def main():
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    with open(sys.argv[2]) as f:
        config = json.load(f)
    validator = jsonschema.Draft202012Validator(schema)
    errors = ["%s: %s" % ("/".join(str(p) for p in e.path) or "(root)", e.message)
              for e in validator.iter_errors(config)]
    for path in (("descriptor", "createdAt"), ("config", "capabilities", "knowledgeCutoff")):
        node = config
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None and not RFC3339.match(node):
            errors.append("%s: %r is not an RFC 3339 date-time" % ("/".join(path), node))
    if errors:
        print("\n".join(errors))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
