#!/usr/bin/env bash
# Validate every Kubernetes manifest in docs/kubernetes/ against the Kubernetes schema, strictly
# (unknown fields fail; so does a kind the schema does not know, such as apiVersion v1 with kind
# Deployment, which the validator only warns about), for the oldest and newest versions we
# document; then check that every probe script they carry or reference compiles.
#   scripts/validate-manifests.sh [path/to/rhai-probe]
# Installs the pinned validator into target/manifest-venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-target/debug/rhai-probe}
venv=target/manifest-venv
validator_version=1.37.0
versions=(1.30.0 1.37.0)
log() { echo "validate-manifests: $*" >&2; }

if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$validator_version"; then
  log "installing kubernetes-validate==$validator_version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "kubernetes-validate==$validator_version"
fi
[ -x "$bin" ] || cargo build --quiet

manifests=(docs/kubernetes/*.yaml)
for version in "${versions[@]}"; do
  out=$("$venv/bin/kubernetes-validate" --strict -k "$version" "${manifests[@]}" 2>&1) || {
    echo "$out" >&2; log "schema validation failed for Kubernetes $version"; exit 1
  }
  if grep -v ' passed for resource ' <<<"$out" | grep -q .; then
    echo "$out" >&2; log "warnings count as failures (Kubernetes $version)"; exit 1
  fi
done

# The probe scripts: every ConfigMap's *.rhai entry must compile, every exec probe that runs
# /etc/rhai-probe/NAME.rhai must find NAME.rhai in a ConfigMap of the same file, and so must every
# httpGet probe asking `serve` for /probe/NAME, /livez (liveness.rhai), /readyz (readiness.rhai)
# or /startupz (startup.rhai).
scripts=$(mktemp -d)
trap 'rm -rf "$scripts"' EXIT
"$venv/bin/python" - "$bin" "$scripts" "${manifests[@]}" <<'PY'
import os, re, subprocess, sys, yaml
binary, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
problems = []
for path in files:
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    keys = set()
    for d in docs:
        if d.get("kind") == "ConfigMap":
            for key, text in (d.get("data") or {}).items():
                if key.endswith(".rhai"):
                    keys.add(key)
                    name = os.path.basename(path).replace(".yaml", "") + "--" + key
                    open(os.path.join(out, name), "w").write(text)
    text = open(path).read()
    for ref in re.findall(r"/etc/rhai-probe/([\w.-]+\.rhai)", text):
        if ref not in keys:
            problems.append(f"{path}: a probe runs /etc/rhai-probe/{ref}, which no ConfigMap in it holds")
    # With a shared PID namespace, PID 1 is the pod's pause process, whose output no log keeps:
    # /proc/1/fd/1 sends a probe's records nowhere (docs/kubernetes.md, "Logs").
    for d in docs:
        spec = (d.get("spec") or {})
        spec = (spec.get("template") or {}).get("spec", spec) if d.get("kind") != "Pod" else spec
        if spec.get("shareProcessNamespace") and "/proc/1/fd/1" in yaml.safe_dump(spec):
            problems.append(f"{path}: --log-file=/proc/1/fd/1 with shareProcessNamespace: true writes to the pause process; see docs/kubernetes.md")
    # Each probe's --allow-* flags cover what `check --permissions` finds in its script(s).
    def commands(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("command", "args") and isinstance(v, list) and all(isinstance(x, str) for x in v):
                    yield v
                else:
                    yield from commands(v)
        elif isinstance(node, list):
            for v in node:
                yield from commands(v)
    for d in docs:
        for argv in commands(d):
            allow = {}
            for a in argv:
                m = re.match(r"(--allow-(?:net|read|env))=(.*)", a)
                if m:
                    allow.setdefault(m.group(1), []).extend(x for x in m.group(2).split(",") if x)
            if not allow:
                continue
            refs = re.findall(r"/etc/rhai-probe/([\w.-]+\.rhai)", " ".join(argv))
            if "serve" in argv and any(a.startswith("--dir=") for a in argv):
                refs = sorted(keys)
            for ref in refs:
                name = os.path.basename(path).replace(".yaml", "") + "--" + ref
                need = subprocess.run([binary, "check", "--permissions", os.path.join(out, name)],
                                      capture_output=True, text=True).stdout
                for line in need.splitlines():
                    flag, _, entries = line.partition("=")
                    for entry in filter(None, entries.split(",")):
                        if entry not in allow.get(flag, []):
                            problems.append(f"{path}: {ref} needs {flag}={entry}, which its command does not give")
    aliases = {"/livez": "liveness", "/readyz": "readiness", "/startupz": "startup"}
    for route in re.findall(r"path: (/probe/[\w.-]+|/livez|/readyz|/startupz)\b", text):
        name = aliases.get(route) or route[len("/probe/"):]
        if name + ".rhai" not in keys:
            problems.append(f"{path}: an httpGet probe asks for {route}, but no ConfigMap in it holds {name}.rhai")
if problems:
    sys.exit("\n".join(problems))
PY
"$bin" check "$scripts"/*.rhai
log "ok: ${#manifests[@]} files, Kubernetes ${versions[*]}"
