#!/usr/bin/env python3
"""Fails when the user-facing files of the repository point outside it.

A user has the repository and nothing else: README.md, docs/, tekton/ and
images/ must not send them to notes that live next to the repository
(the steering folder's notes), to documents they do not have (protocols.md, design.md, ...),
or to absolute paths of a development machine (/work/..., /home/...).
Markdown links must resolve to a file inside the repository.

Relative paths in prose (a symlink's text in an example) are fine; relative
Markdown links are resolved and must stay inside.

Usage: check_self_contained.py [REPO_ROOT] [--self-test] [--pending PATH]...
--pending PATH: a repository file another branch adds; links to it count as resolved.
Exit 0 when clean; 1 with one line per problem otherwise.
"""
import os
import re
import sys
import tempfile

# The notes folder next to the repository, spelled in pieces so that this
# file does not itself point there.
NOTES_DIR = "../" + "sha" + "red"

CHECKED = ["README.md", "docs", "tekton", "images", ".containerignore"]
FORBIDDEN = [
    (re.compile(re.escape(NOTES_DIR) + r"\b"), "a path outside the repository (" + NOTES_DIR + ")"),
    (re.compile(r"\b(protocols|design|architecture|bench-notes)\.md\b"),
     "a document that is not in the repository"),
    (re.compile(r"(?:^|(?<=[\s`'\"(=:,\[]))/(work|home/[a-z][\w-]*|Users|root)/[\w.-]"),
     "an absolute path of a development machine"),
]
# [text](target) and [text]: target; we check targets that are not URLs or anchors.
LINK_RE = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.M)


def files_under(root):
    for name in CHECKED:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            yield path
        elif os.path.isdir(path):
            for d, _, fs in os.walk(path):
                for f in sorted(fs):
                    yield os.path.join(d, f)


def check(root, pending=()):
    root = os.path.realpath(root)
    pending = {os.path.join(root, p) for p in pending}
    problems = []
    for path in files_under(root):
        rel = os.path.relpath(path, root)
        try:
            text = open(path, encoding="utf-8").read()
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"{rel}: cannot read as UTF-8 text: {e}")
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for rx, what in FORBIDDEN:
                m = rx.search(line)
                if m:
                    problems.append(f"{rel}:{lineno}: {what}: {m.group(0)!r}")
        if not path.endswith(".md"):
            continue
        for m in LINK_RE.finditer(text):
            target = m.group(1) or m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                continue  # a URL (https:, mailto:, oci:) or an anchor in this file
            lineno = text.count("\n", 0, m.start()) + 1
            file_part = target.split("#", 1)[0]
            if file_part.startswith("/"):
                problems.append(f"{rel}:{lineno}: absolute link {target!r}")
                continue
            resolved = os.path.realpath(os.path.join(os.path.dirname(path), file_part))
            if resolved != root and not resolved.startswith(root + os.sep):
                problems.append(f"{rel}:{lineno}: link {target!r} leaves the repository")
            elif not os.path.exists(resolved) and resolved not in pending:
                problems.append(f"{rel}:{lineno}: link {target!r} names no file")
    return problems


def self_test():
    """The check fails on each kind of reference it exists to catch."""
    cases = {
        "see " + NOTES_DIR + "/docs/notes.md": NOTES_DIR,
        "as protocols.md 2.6 says": "not in the repository",
        "run /work/main/build/cmd/mc-engine": "absolute path",
        "[notes](../../notes.md)": "leaves the repository",
        "[gone](docs/missing.md)": "names no file",
        "[abs](/etc/passwd)": "absolute link",
        "see `/home/alice/notes`": "absolute path",
    }
    failures = 0
    for text, want in cases.items():
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "README.md"), "w") as f:
                f.write(text + "\n")
            got = check(d)
            if not any(want in p for p in got):
                print(f"self-test: {text!r} not caught (want {want!r}), got {got}")
                failures += 1
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "docs"))
        open(os.path.join(d, "docs", "a.md"), "w").write(
            "[b](b.md#x) [r](../README.md) [u](https://example.com/x.md) oci:/work-dir\n"
            "sh -c 'ln -sf /proc/$$/root/models /mnt/models' [p](p.md)\n"
            "a hostile link `passwd -> ../../../etc/passwd` is refused\n")
        open(os.path.join(d, "docs", "b.md"), "w").write("# x\n")
        open(os.path.join(d, "README.md"), "w").write("[d](docs/a.md)\n")
        got = check(d, pending=["docs/p.md"])
        if got:
            print(f"self-test: clean tree reported {got}")
            failures += 1
    return failures


def main(argv):
    pending = []
    rest = []
    it = iter(argv)
    for a in it:
        if a == "--pending":
            pending.append(next(it, ""))
        elif a == "--self-test":
            if self_test():
                return 1
        else:
            rest.append(a)
    root = rest[0] if rest else os.path.join(os.path.dirname(__file__), "..")
    problems = check(root, pending)
    for p in problems:
        print(p)
    if problems:
        print("The repository must stand alone: write what users need under docs/.")
        return 1
    print("self-contained ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
