#!/usr/bin/env python3
"""Lints the Tekton YAML in a directory (and optionally the step image's
Containerfile and its .containerignore) for the rules of docs/tekton.md.

Usage: lint.py TEKTON_DIR [--containerfile FILE] [--containerignore FILE]
Exit 0 when clean; 1 with one line per problem otherwise.

Checked:
  - every *.yaml parses (PyYAML), is tekton.dev/v1, kind Task/Pipeline/PipelineRun;
  - Tasks: each step runs mc-engine, uses computeResources (not v1beta1
    `resources`) with cpu+memory requests and a memory limit of at least
    512Mi (mc-engine's RSS target is 256 MiB: give headroom); the stepTemplate
    securityContext drops ALL capabilities, runAsNonRoot, no privilege
    escalation; no step overrides that; nothing privileged, no added
    capabilities, no buildah/skopeo/SETFCAP/storage root/ulimit;
    every $(params.X), $(results.X.path), $(workspaces.X.*) is declared;
  - Tasks and Pipeline: a base-image param does not default to scratch (KServe's
    oci:// sidecar cannot start from it; the default is the built-in base);
  - Pipeline: every task (and finally task) has an explicit timeout, refers to
    a Task defined here, passes only declared params and all required ones,
    binds declared workspaces (all required ones), $(tasks.T.results.R)
    names a real task and result, $(params.X) is declared; results
    IMAGE_DIGEST, IMAGE_URL and MIRROR_DIGEST exist;
  - PipelineRun: refers to the Pipeline; does not hard-code
    podTemplate securityContext fsGroup (OpenShift's SCCs assign it from the
    namespace range and reject other values); timeouts.pipeline and
    timeouts.tasks >= the sum over the PipelineTasks of timeout x (retries + 1),
    because a retry restarts its task's timeout; timeouts.pipeline >=
    tasks + finally; no timeouts.finally when the Pipeline has no finally tasks;
  - Containerfile: multi-stage, the final stage has a numeric non-root USER,
    ca-certificates, busybox-static (the built-in base of `build` is made of
    its /bin/busybox), the binary copied from the build stage, an ENTRYPOINT
    that is none or exactly the exec form ["mc-engine"] (Tekton script: steps
    replace it; a shell-form one would swallow the arguments), and group-0
    writable paths (chgrp 0 / chmod g=u);
  - .containerignore: excludes .git and the build directories.
"""
import os
import re
import sys

import yaml

FORBIDDEN = [
    (re.compile(r"\bbuildah\b", re.I), "buildah"),
    (re.compile(r"\bskopeo\b", re.I), "skopeo"),
    (re.compile(r"SETFCAP"), "SETFCAP capability"),
    (re.compile(r"--storage-driver|--root\b|--runroot\b"), "container storage root"),
    (re.compile(r"\bulimit\b"), "ulimit"),
]
PARAM_RE = re.compile(r"\$\(params\.([A-Za-z0-9_.-]+?)\)")
RESULT_PATH_RE = re.compile(r"\$\(results\.([A-Za-z0-9_-]+)\.path\)")
WORKSPACE_RE = re.compile(r"\$\(workspaces\.([A-Za-z0-9_-]+)\.(path|bound|claim|volume)\)")
TASK_RESULT_RE = re.compile(r"\$\(tasks\.([A-Za-z0-9_-]+)\.results\.([A-Za-z0-9_-]+)\)")
REQUIRED_PIPELINE_RESULTS = {"IMAGE_DIGEST", "IMAGE_URL", "MIRROR_DIGEST"}
MIN_MEMORY_LIMIT = 512 * 2**20

problems = []


def check_base_param(where, params):
    for p in params or []:
        if p.get("name") == "base-image" and str(p.get("default", "")).strip() == "scratch":
            problem(where, "param base-image defaults to scratch, which KServe's oci:// sidecar "
                           "cannot start (no sh); default to builtin")


def problem(where, msg):
    problems.append(f"{where}: {msg}")


def parse_quantity(q):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(q))
    if not m:
        return None
    mult = {None: 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3,
            "M": 10**6, "G": 10**9, "T": 10**12}[m.group(2)]
    return float(m.group(1)) * mult


def parse_duration(d):
    """Go duration ("1h30m", "45m", "90s") → seconds; None when invalid."""
    s = str(d)
    if s == "0":
        return 0
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s|ms)", s)
    if not parts or "".join(n + u for n, u in parts) != s:
        return None
    unit = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * unit[u] for n, u in parts)


def walk_strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from walk_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk_strings(v)


def check_security(where, sc, template):
    if not isinstance(sc, dict):
        if template:
            problem(where, "stepTemplate.securityContext is missing")
        return
    caps = sc.get("capabilities") or {}
    if caps.get("add"):
        problem(where, f"adds capabilities {caps['add']}")
    if sc.get("privileged"):
        problem(where, "privileged")
    if template:
        if "ALL" not in (caps.get("drop") or []):
            problem(where, "stepTemplate must drop ALL capabilities")
        if sc.get("runAsNonRoot") is not True:
            problem(where, "stepTemplate must set runAsNonRoot: true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problem(where, "stepTemplate must set allowPrivilegeEscalation: false")
    else:
        if sc.get("runAsNonRoot") is False or sc.get("runAsUser") == 0:
            problem(where, "step runs as root")
        if sc.get("allowPrivilegeEscalation") is True:
            problem(where, "step allows privilege escalation")
        if "drop" in caps and "ALL" not in caps["drop"]:
            problem(where, "step narrows the dropped capabilities")


def check_step_resources(where, step):
    if "resources" in step:
        problem(where, "uses v1beta1 `resources`; tekton.dev/v1 steps use computeResources")
    res = step.get("computeResources")
    if not isinstance(res, dict):
        problem(where, "has no computeResources")
        return
    req, lim = res.get("requests") or {}, res.get("limits") or {}
    for key in ("cpu", "memory"):
        if key not in req:
            problem(where, f"computeResources.requests.{key} missing")
    mem = parse_quantity(lim.get("memory"))
    if mem is None:
        problem(where, "computeResources.limits.memory missing or invalid")
    elif mem < MIN_MEMORY_LIMIT:
        problem(where, f"limits.memory {lim['memory']} leaves no headroom over 256 MiB")
    rmem = parse_quantity(req.get("memory"))
    if rmem is not None and mem is not None and rmem > mem:
        problem(where, "requests.memory exceeds limits.memory")


def check_task(where, doc):
    spec = doc.get("spec") or {}
    params = {p["name"] for p in spec.get("params") or []}
    results = {r["name"] for r in spec.get("results") or []}
    workspaces = {w["name"] for w in spec.get("workspaces") or []}
    check_base_param(where, spec.get("params"))
    tmpl = spec.get("stepTemplate") or {}
    check_security(f"{where} stepTemplate", tmpl.get("securityContext"), template=True)
    steps = spec.get("steps") or []
    if not steps:
        problem(where, "has no steps")
    for step in steps:
        sw = f"{where} step {step.get('name')}"
        if not step.get("image"):
            problem(sw, "has no image")
        body = "\n".join(walk_strings([step.get("script"), step.get("command"), step.get("args")]))
        if "mc-engine" not in body:
            problem(sw, "does not run mc-engine")
        if step.get("script") and (step.get("command") or step.get("args")):
            problem(sw, "has both script and command/args")
        check_step_resources(sw, step)
        if "securityContext" in step:
            check_security(sw, step["securityContext"], template=False)
    text = "\n".join(walk_strings(spec))
    for name in PARAM_RE.findall(text):
        if name not in params:
            problem(where, f"uses undeclared param {name}")
    for name in RESULT_PATH_RE.findall(text):
        if name not in results:
            problem(where, f"writes undeclared result {name}")
    for name, _ in WORKSPACE_RE.findall(text):
        if name not in workspaces:
            problem(where, f"uses undeclared workspace {name}")
    return {"params": spec.get("params") or [], "results": results,
            "workspaces": spec.get("workspaces") or []}


def check_pipeline_task(where, pt, tasks, pparams, pworkspaces, names, results_of):
    if "timeout" not in pt:
        problem(where, "has no explicit timeout (Tekton's default is 60 minutes)")
    elif parse_duration(pt["timeout"]) is None:
        problem(where, f"invalid timeout {pt['timeout']!r}")
    ref = (pt.get("taskRef") or {}).get("name")
    task = tasks.get(ref)
    if task is None:
        problem(where, f"refers to unknown Task {ref!r}")
        return
    declared = {p["name"]: p for p in task["params"]}
    given = {p["name"] for p in pt.get("params") or []}
    for name in given - set(declared):
        problem(where, f"passes param {name} that Task {ref} does not declare")
    for name, p in declared.items():
        if "default" not in p and name not in given:
            problem(where, f"does not pass required param {name} of Task {ref}")
    bound = {w["name"]: w.get("workspace") for w in pt.get("workspaces") or []}
    for w in task["workspaces"]:
        if not w.get("optional") and w["name"] not in bound:
            problem(where, f"does not bind required workspace {w['name']}")
    for name, pw in bound.items():
        if name not in {w["name"] for w in task["workspaces"]}:
            problem(where, f"binds workspace {name} that Task {ref} does not declare")
        if pw not in pworkspaces:
            problem(where, f"binds undeclared pipeline workspace {pw}")
    for dep in pt.get("runAfter") or []:
        if dep not in names:
            problem(where, f"runs after unknown task {dep}")
    text = "\n".join(walk_strings([pt.get("params"), pt.get("when")]))
    for name in PARAM_RE.findall(text):
        if name not in pparams:
            problem(where, f"uses undeclared pipeline param {name}")
    for t, r in TASK_RESULT_RE.findall(text):
        if r not in results_of.get(t, set()):
            problem(where, f"uses unknown result {t}.{r}")


def check_pipeline(where, doc, tasks):
    spec = doc.get("spec") or {}
    pparams = {p["name"] for p in spec.get("params") or []}
    check_base_param(where, spec.get("params"))
    pworkspaces = {w["name"] for w in spec.get("workspaces") or []}
    all_tasks = (spec.get("tasks") or []) + (spec.get("finally") or [])
    names = {pt["name"] for pt in all_tasks}
    results_of = {pt["name"]: tasks.get((pt.get("taskRef") or {}).get("name"), {}).get("results", set())
                  for pt in all_tasks}
    total = 0
    for pt in all_tasks:
        check_pipeline_task(f"{where} task {pt['name']}", pt, tasks, pparams, pworkspaces, names,
                            results_of)
        retries = pt.get("retries", 0)
        if not isinstance(retries, int) or retries < 0:
            problem(f"{where} task {pt['name']}", f"invalid retries {retries!r}")
            retries = 0
        # Each retry is a new TaskRun with the full timeout again.
        total += (parse_duration(pt.get("timeout", "0")) or 0) * (retries + 1)
    results = {r["name"]: r.get("value", "") for r in spec.get("results") or []}
    for name in REQUIRED_PIPELINE_RESULTS - set(results):
        problem(where, f"has no result {name}")
    for t, r in TASK_RESULT_RE.findall("\n".join(map(str, results.values()))):
        if r not in results_of.get(t, set()):
            problem(where, f"result refers to unknown {t}.{r}")
    return {"timeout_sum": total, "params": spec.get("params") or [],
            "has_finally": bool(spec.get("finally"))}


def check_pipelinerun(where, doc, pipelines):
    spec = doc.get("spec") or {}
    ref = (spec.get("pipelineRef") or {}).get("name")
    pipeline = pipelines.get(ref)
    if pipeline is None:
        problem(where, f"refers to unknown Pipeline {ref!r}")
        return
    pod = ((spec.get("taskRunTemplate") or {}).get("podTemplate") or {})
    if "fsGroup" in (pod.get("securityContext") or {}):
        problem(where, "taskRunTemplate.podTemplate.securityContext hard-codes fsGroup: "
                       "OpenShift's SCCs assign it from the namespace range and reject others")
    for run_spec in spec.get("taskRunSpecs") or []:
        if "fsGroup" in (((run_spec.get("podTemplate") or {}).get("securityContext")) or {}):
            problem(where, f"taskRunSpecs {run_spec.get('pipelineTaskName')} hard-codes fsGroup")
    timeouts = spec.get("timeouts") or {}
    need = pipeline["timeout_sum"]
    total = parse_duration(timeouts.get("pipeline", "")) if "pipeline" in timeouts else None
    if total is None:
        problem(where, "spec.timeouts.pipeline is missing or invalid")
    elif total != 0 and total < need:
        problem(where, f"timeouts.pipeline ({timeouts['pipeline']}) is less than the sum of "
                       f"the PipelineTask timeouts x (retries + 1) ({need / 3600:g}h)")
    if "finally" in timeouts and not pipeline["has_finally"]:
        problem(where, "sets timeouts.finally but the Pipeline has no finally tasks")
    if total and "tasks" in timeouts:
        t = parse_duration(timeouts["tasks"])
        f = parse_duration(timeouts.get("finally", "0")) or 0
        if t is None:
            problem(where, f"invalid timeouts.tasks {timeouts['tasks']!r}")
            t = 0
        if t + f > total:
            problem(where, "timeouts.tasks + timeouts.finally exceed timeouts.pipeline")
        if t < need:
            problem(where, f"timeouts.tasks ({timeouts['tasks']}) is less than the sum of the "
                           f"PipelineTask timeouts x (retries + 1) ({need / 3600:g}h): "
                           f"a retry restarts its task's timeout")
    given = {p["name"] for p in spec.get("params") or []}
    for p in pipeline["params"]:
        if "default" not in p and p["name"] not in given:
            problem(where, f"does not set required param {p['name']}")


def check_forbidden(where, doc):
    for s in walk_strings(doc):
        for rx, what in FORBIDDEN:
            if rx.search(s):
                problem(where, f"mentions {what}")
    if re.search(r"privileged:\s*true", yaml.safe_dump(doc)):
        problem(where, "privileged: true")


def check_containerfile(path):
    try:
        text = open(path).read()
    except OSError as e:
        problem(path, f"cannot read: {e}")
        return
    lines = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines()
             if l.strip() and not l.strip().startswith("#")]
    stages = [i for i, l in enumerate(lines) if l.upper().startswith("FROM ")]
    if len(stages) < 2:
        problem(path, "is not multi-stage")
        return
    final = lines[stages[-1]:]
    users = [l.split(None, 1)[1] for l in final if l.upper().startswith("USER ")]
    if not users:
        problem(path, "final stage has no USER")
    elif not re.fullmatch(r"[1-9]\d*(:0)?", users[-1]):
        problem(path, f"final USER {users[-1]!r} is not a numeric non-root UID")
    for l in final:
        if l.upper().startswith("ENTRYPOINT"):
            value = l.split(None, 1)[1].strip() if len(l.split(None, 1)) > 1 else ""
            if not re.fullmatch(r'\[\s*"(/usr/local/bin/)?mc-engine"\s*\]', value):
                problem(path, f"final stage ENTRYPOINT {value!r} is not exactly [\"mc-engine\"] "
                              "(a shell form or a wrapper would swallow the arguments)")
    body = "\n".join(final)
    if "ca-certificates" not in body:
        problem(path, "final stage installs no ca-certificates")
    if "busybox-static" not in body:
        problem(path, "final stage installs no busybox-static (build's default, built-in base "
                      "is made of its /bin/busybox)")
    if not re.search(r"COPY\s+--from=\S+\s+.*mc-engine", body):
        problem(path, "final stage does not copy mc-engine from the build stage")
    if not re.search(r"chgrp\s+(-R\s+)?0|chown\s+(-R\s+)?\S*:0", body) or "g=u" not in body:
        problem(path, "no group-0 writable paths (chgrp 0 + chmod g=u) for arbitrary UIDs")
    if re.search(r"\b(g\+\+|cmake|ninja-build|-dev)\b", body):
        problem(path, "final stage installs build tools or -dev packages")
    build = "\n".join(lines[stages[0]:stages[-1]])
    if "scripts/build.sh" not in build and "cmake" not in build:
        problem(path, "build stage does not use the project's CMake build")


def check_containerignore(path):
    try:
        patterns = [l.strip() for l in open(path) if l.strip() and not l.lstrip().startswith("#")]
    except OSError as e:
        problem(path, f"cannot read: {e}")
        return
    for want, rx in ((".git", r"(\*\*/)?\.git/?"), ("build directories", r"(\*\*/)?build[^/]*/?")):
        if not any(re.fullmatch(rx, p) for p in patterns):
            problem(path, f"does not exclude {want}")


def main(argv):
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    root = argv[0]
    containerfile = containerignore = None
    rest = argv[1:]
    while rest:
        if len(rest) >= 2 and rest[0] == "--containerfile":
            containerfile = rest[1]
        elif len(rest) >= 2 and rest[0] == "--containerignore":
            containerignore = rest[1]
        else:
            print(f"unknown argument {rest[0]!r}", file=sys.stderr)
            return 2
        rest = rest[2:]
    docs = []
    files = sorted(f for f in os.listdir(root) if f.endswith((".yaml", ".yml")))
    if not files:
        problem(root, "no YAML files")
    for f in files:
        path = os.path.join(root, f)
        try:
            for i, doc in enumerate(yaml.safe_load_all(open(path))):
                if doc is not None:
                    docs.append((f"{f}#{i}", doc))
        except yaml.YAMLError as e:
            problem(path, f"invalid YAML: {str(e).splitlines()[0]}")
    tasks, pipelines, runs = {}, {}, []
    for where, doc in docs:
        if not isinstance(doc, dict):
            problem(where, "is not a mapping")
            continue
        if doc.get("apiVersion") != "tekton.dev/v1":
            problem(where, f"apiVersion {doc.get('apiVersion')!r} is not tekton.dev/v1")
        check_forbidden(where, doc)
        kind, name = doc.get("kind"), (doc.get("metadata") or {}).get("name")
        where = f"{where} {kind} {name or ''}".rstrip()
        if kind == "Task":
            tasks[name] = check_task(where, doc)
        elif kind not in ("Pipeline", "PipelineRun"):
            problem(where, f"unexpected kind {kind!r}")
    for where, doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "Pipeline":
            pipelines[doc["metadata"]["name"]] = check_pipeline(where, doc, tasks)
    for where, doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == "PipelineRun":
            runs.append(where)
            check_pipelinerun(where, doc, pipelines)
    for want in ("Task", "Pipeline", "PipelineRun"):
        if not any(isinstance(d, dict) and d.get("kind") == want for _, d in docs):
            problem(root, f"has no {want}")
    if containerfile:
        check_containerfile(containerfile)
    if containerignore:
        check_containerignore(containerignore)
    for p in problems:
        print(p)
    if not problems:
        print(f"lint ok: {len(tasks)} tasks, {len(pipelines)} pipelines, {len(runs)} runs")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
