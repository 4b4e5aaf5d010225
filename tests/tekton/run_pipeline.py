#!/usr/bin/env python3
"""Runs a Tekton Pipeline's Tasks locally, in order, the way Tekton wires them.

Not a Tekton implementation: a faithful-enough executor for the one thing a
cluster would tell us and a lint cannot: that the steps, as written, work
together over one shared workspace when every Task runs as a DIFFERENT UID in
one fsGroup (protocols.md 7.4, the seed pipeline's failure).

What it does, per protocols.md 7:
  - loads every Task and the Pipeline from TEKTON_DIR;
  - pipeline params = defaults + --param; required ones must be given;
  - prepares each bound workspace as kubelet does for an fsGroup: group
    FSGROUP, mode 2775 (setgid, group-writable);
  - orders tasks by runAfter and $(tasks.X.results.Y) references; evaluates
    `when` (in / notin); a skipped task's results are absent;
  - substitutes $(params.X), $(workspaces.X.path|bound), $(results.X.path),
    $(tasks.X.results.Y) (PipelineTask params and when inputs), and
    $(context.pipelineRun.name|uid);
  - runs each step's script (or command+args) with setpriv as UID
    UID_BASE+i, primary GID UID_BASE+i, supplementary group FSGROUP, umask
    022 (the container default), HOME in a private dir, PATH starting with
    --bin-dir (the step image is not used: the host's mc-engine is);
  - kills a step at min(PipelineTask timeout, --max-task-seconds);
  - collects results from the results dir (Tekton's 4096-byte limit is
    enforced), then the Pipeline's results.

Output (stdout, JSON): {"status": "Succeeded"|"Failed", "results": {...},
"tasks": {NAME: {"status", "uid", "results", "log"}}}. Exit 0 when the run
succeeded, 1 when a task failed, 2 on bad usage or YAML.

Usage: run_pipeline.py --tekton DIR [--pipeline NAME] --param K=V ...
         --workspace NAME=DIR ... --fs-group GID --uid-base N --bin-dir DIR
         [--max-task-seconds S] [--scratch DIR]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

import yaml

VAR_RE = re.compile(r"\$\(([^()]+)\)")
MAX_RESULT_BYTES = 4096


class UsageError(Exception):
    pass


def load(tekton_dir):
    tasks, pipelines = {}, {}
    for f in sorted(os.listdir(tekton_dir)):
        if not f.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(open(os.path.join(tekton_dir, f))):
            if not isinstance(doc, dict):
                continue
            name = (doc.get("metadata") or {}).get("name")
            if doc.get("kind") == "Task":
                tasks[name] = doc["spec"]
            elif doc.get("kind") == "Pipeline":
                pipelines[name] = doc["spec"]
    return tasks, pipelines


def substitute(text, values, where):
    """Replaces every $(...) whose key is in `values`; unknown keys are errors
    for the namespaces we resolve (params, workspaces, results, tasks)."""
    def repl(m):
        key = m.group(1)
        if key in values:
            return values[key]
        if key.split(".", 1)[0] in ("params", "workspaces", "results", "tasks", "context"):
            raise UsageError(f"{where}: cannot resolve $({key})")
        return m.group(0)
    return VAR_RE.sub(repl, text)


def parse_duration(d):
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", str(d))
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts) or None


def order_tasks(ptasks):
    """Topological order by runAfter and result references, stable."""
    names = [t["name"] for t in ptasks]
    deps = {}
    for t in ptasks:
        refs = set(t.get("runAfter") or [])
        text = json.dumps([t.get("params"), t.get("when")])
        refs |= {m.split(".")[1] for m in VAR_RE.findall(text) if m.startswith("tasks.")}
        deps[t["name"]] = refs & set(names)
    done, out = set(), []
    while len(out) < len(ptasks):
        ready = [t for t in ptasks if t["name"] not in done and deps[t["name"]] <= done]
        if not ready:
            raise UsageError("the pipeline's task graph has a cycle")
        out.append(ready[0])
        done.add(ready[0]["name"])
    return out


def prepare_workspace(path, fs_group):
    os.makedirs(path, exist_ok=True)
    os.chown(path, -1, fs_group)
    os.chmod(path, 0o2775)


def run_step(step, values, env_base, uid, fs_group, timeout, scratch, where):
    script = step.get("script")
    step_dir = tempfile.mkdtemp(dir=scratch, prefix="step-")
    os.chmod(step_dir, 0o755)
    if script:
        script = substitute(script, values, where)
        if not script.startswith("#!"):
            script = "#!/bin/sh\nset -e\n" + script
        path = os.path.join(step_dir, "script")
        with open(path, "w") as f:
            f.write(script)
        os.chmod(path, 0o755)
        argv = [path]
    else:
        argv = [substitute(a, values, where) for a in (step.get("command") or []) + (step.get("args") or [])]
    env = dict(env_base)
    for e in step.get("env") or []:
        env[e["name"]] = substitute(str(e.get("value", "")), values, where)
    cmd = ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--groups", str(fs_group),
           "--", "sh", "-c", 'umask 022; exec "$@"', "step"] + argv
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, cwd=step_dir)
        return p.returncode, p.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        return 124, out + f"\n[run_pipeline] step timed out after {timeout}s"


def run_task(pt, task, ctx, index):
    name = pt["name"]
    uid = ctx.uid_base + index
    values = dict(ctx.context_values)
    # Params: the Task's defaults, overridden by the PipelineTask's values.
    given = {p["name"]: substitute(str(p["value"]), ctx.pipeline_values, f"task {name} param")
             for p in pt.get("params") or []}
    for p in task.get("params") or []:
        if p["name"] in given:
            values[f"params.{p['name']}"] = given[p["name"]]
        elif "default" in p:
            values[f"params.{p['name']}"] = str(p["default"])
        else:
            raise UsageError(f"task {name}: required param {p['name']} not given")
    bound = {w["name"]: w["workspace"] for w in pt.get("workspaces") or []}
    for w in task.get("workspaces") or []:
        pw = bound.get(w["name"])
        path = ctx.workspaces.get(pw) if pw else None
        if path is None and not w.get("optional"):
            raise UsageError(f"task {name}: workspace {w['name']} is not bound")
        values[f"workspaces.{w['name']}.path"] = path or ""
        values[f"workspaces.{w['name']}.bound"] = "true" if path else "false"
    results_dir = os.path.join(ctx.scratch, "results", name)
    os.makedirs(results_dir)
    os.chown(results_dir, uid, uid)
    for r in task.get("results") or []:
        values[f"results.{r['name']}.path"] = os.path.join(results_dir, r["name"])
    home = os.path.join(ctx.scratch, "home", name)
    os.makedirs(home)
    os.chown(home, uid, uid)
    env = {"PATH": ctx.bin_dir + ":/usr/local/bin:/usr/bin:/bin", "HOME": home,
           "LANG": "C.UTF-8"}
    timeout = min(parse_duration(pt.get("timeout", "1h")) or 3600, ctx.max_task_seconds)
    log = []
    for step in task.get("steps") or []:
        rc, out = run_step(step, values, env, uid, ctx.fs_group, timeout, ctx.scratch,
                           f"task {name} step {step.get('name')}")
        log.append(f"--- step {step.get('name')} (uid {uid}) exit {rc}\n{out}")
        if rc != 0:
            return {"status": "Failed", "uid": uid, "results": {}, "log": "".join(log)}
    results = {}
    for r in task.get("results") or []:
        path = os.path.join(results_dir, r["name"])
        if os.path.exists(path):
            data = open(path, "rb").read()
            if len(data) > MAX_RESULT_BYTES:
                return {"status": "Failed", "uid": uid, "results": {},
                        "log": "".join(log) + f"result {r['name']} is over {MAX_RESULT_BYTES} bytes"}
            results[r["name"]] = data.decode()
    return {"status": "Succeeded", "uid": uid, "results": results, "log": "".join(log)}


def when_allows(pt, values, name):
    for w in pt.get("when") or []:
        value = substitute(str(w["input"]), values, f"task {name} when")
        allowed = [substitute(str(v), values, f"task {name} when") for v in w["values"]]
        if (w["operator"] == "in") != (value in allowed):
            return False
    return True


class Context:
    pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tekton", required=True)
    ap.add_argument("--pipeline")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--workspace", action="append", default=[])
    ap.add_argument("--fs-group", type=int, required=True)
    ap.add_argument("--uid-base", type=int, required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--max-task-seconds", type=float, default=300)
    ap.add_argument("--scratch")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise UsageError("must run as root (it runs each task as another UID with setpriv)")

    tasks, pipelines = load(args.tekton)
    if not pipelines:
        raise UsageError(f"no Pipeline in {args.tekton}")
    spec = pipelines[args.pipeline] if args.pipeline else next(iter(pipelines.values()))
    ctx = Context()
    ctx.uid_base, ctx.fs_group = args.uid_base, args.fs_group
    ctx.bin_dir, ctx.max_task_seconds = os.path.abspath(args.bin_dir), args.max_task_seconds
    ctx.scratch = args.scratch or tempfile.mkdtemp(prefix="run-pipeline-")
    os.chmod(ctx.scratch, 0o755)
    run_name = "local-" + uuid.uuid4().hex[:8]
    ctx.context_values = {"context.pipelineRun.name": run_name,
                          "context.pipelineRun.uid": str(uuid.uuid4())}

    given = dict(p.split("=", 1) for p in args.param)
    ctx.pipeline_values = dict(ctx.context_values)
    for p in spec.get("params") or []:
        if p["name"] in given:
            ctx.pipeline_values[f"params.{p['name']}"] = given.pop(p["name"])
        elif "default" in p:
            ctx.pipeline_values[f"params.{p['name']}"] = str(p["default"])
        else:
            raise UsageError(f"required pipeline param {p['name']} not given")
    if given:
        raise UsageError(f"unknown pipeline params: {sorted(given)}")
    ctx.workspaces = {}
    for w in args.workspace:
        name, path = w.split("=", 1)
        ctx.workspaces[name] = os.path.abspath(path)
    for w in spec.get("workspaces") or []:
        if w["name"] not in ctx.workspaces and not w.get("optional"):
            raise UsageError(f"pipeline workspace {w['name']} is not bound")
    # Only the shared data workspaces get the fsGroup treatment; Secret
    # workspaces are read-only mounts.
    for w in spec.get("workspaces") or []:
        if w["name"] in ctx.workspaces and not w.get("optional"):
            prepare_workspace(ctx.workspaces[w["name"]], ctx.fs_group)

    report = {"name": run_name, "status": "Succeeded", "results": {}, "tasks": {}}
    for i, pt in enumerate(order_tasks(spec.get("tasks") or [])):
        name = pt["name"]
        task = tasks.get((pt.get("taskRef") or {}).get("name"))
        if task is None:
            raise UsageError(f"task {name}: unknown taskRef")
        if not when_allows(pt, ctx.pipeline_values, name):
            report["tasks"][name] = {"status": "Skipped"}
            continue
        try:
            outcome = run_task(pt, task, ctx, i)
        except UsageError as e:
            outcome = {"status": "Failed", "log": str(e), "results": {}}
        report["tasks"][name] = outcome
        for k, v in outcome["results"].items():
            ctx.pipeline_values[f"tasks.{name}.results.{k}"] = v
        if outcome["status"] != "Succeeded":
            report["status"] = "Failed"
            break
    for r in spec.get("results") or []:
        try:
            report["results"][r["name"]] = substitute(str(r["value"]), ctx.pipeline_values,
                                                      f"pipeline result {r['name']}")
        except UsageError:
            pass  # refers to a skipped or failed task: Tekton omits it too
    json.dump(report, sys.stdout, indent=2)
    print()
    if not args.scratch:
        shutil.rmtree(ctx.scratch, ignore_errors=True)
    return 0 if report["status"] == "Succeeded" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as e:
        print(f"run_pipeline: {e}", file=sys.stderr)
        sys.exit(2)
