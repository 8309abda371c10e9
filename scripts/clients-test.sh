#!/usr/bin/env bash
# clients-test.sh — podstart called by clients not written in Rust, the way
# orchestrators call it, over both kinds of listener at once:
#   - Python grpcio (tests/clients/grpcio_client.py; stubs generated from
#     proto/podstart/v1 at run time), with grpcio's default channel options:
#     health Check, ListPods, StartPod + StopPod of a one-container pod, over
#     the unix socket and over mTLS TCP;
#   - grpcurl: over TLS with -cacert -cert -key, the services listed through
#     reflection and ListPods called; over the unix socket with -unix and no
#     -authority flag;
#   - the TLS handshake is refused without a client certificate and with a
#     certificate from a CA podstart does not trust (raw TLS and grpcio);
#   - an identity the policy does not name gets PERMISSION_DENIED;
#   - podstart's own client over mTLS (--endpoint https://…), as the README
#     shows it, starts the pod grpcurl then lists.
# The certificates (a CA, the server's for 127.0.0.1, a client's with URI SAN
# spiffe://podstart.test/client, and a stranger's and a rogue CA's) are made
# with openssl for the run. podstart serves the built-in simulated runtime: no
# root, no containerd.
#
#   scripts/clients-test.sh [PATH/TO/podstart]
#
# Builds nothing: the binary is the argument, else target/release/podstart,
# else target/debug/podstart. Python packages come from the virtualenv
# scripts/test-deps.sh makes (target/client-tools/venv; PODSTART_CLIENTS_VENV
# overrides), grpcurl from PATH. Exits non-zero on any failure and stops what
# it started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
t0=$SECONDS
say() { echo "[clients-test $((SECONDS - t0))s] $*" >&2; }

bin=${1:-}
if [[ -z $bin ]]; then
  for b in target/release/podstart target/debug/podstart; do
    [[ -x $b ]] && { bin=$root/$b; break; }
  done
fi
[[ -n $bin && -x $bin ]] || { echo "no podstart binary: pass its path, or build target/release or target/debug" >&2; exit 2; }
venv=${PODSTART_CLIENTS_VENV:-$root/target/client-tools/venv}
python=$venv/bin/python
"$python" -c 'import grpc, grpc_tools, grpc_health' 2>/dev/null ||
  { echo "no grpcio in $venv: run scripts/test-deps.sh" >&2; exit 2; }
command -v grpcurl >/dev/null || { echo "no grpcurl: run scripts/test-deps.sh" >&2; exit 2; }
command -v openssl >/dev/null || { echo "no openssl" >&2; exit 2; }

work=$(mktemp -d /tmp/podstart-clients-test.XXXXXX)
serve_pid=
cleanup() {
  if [[ -n $serve_pid ]]; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- certificates -------------------------------------------------------------
say "certificates: CA, server (127.0.0.1), client (spiffe://podstart.test/client), stranger, rogue CA"
pki=$work/pki
mkdir -p "$pki"
ca() { # name
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=podstart clients-test $1" -keyout "$pki/$1.key" -out "$pki/$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() { # name, CA name, extendedKeyUsage, subjectAltName
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$1" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\nsubjectAltName=%s\n' \
    "$3" "$4" >"$pki/$1.ext"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/$2.pem" -CAkey "$pki/$2.key" -CAcreateserial \
    -days 2 -extfile "$pki/$1.ext" -out "$pki/$1.pem" 2>/dev/null
}
ca ca
ca rogue-ca
leaf server ca serverAuth "DNS:localhost,IP:127.0.0.1"
leaf client ca clientAuth "URI:spiffe://podstart.test/client"
leaf stranger ca clientAuth "URI:spiffe://podstart.test/stranger"
leaf rogue rogue-ca clientAuth "URI:spiffe://podstart.test/client"
openssl verify -CAfile "$pki/ca.pem" "$pki/server.pem" "$pki/client.pem" "$pki/stranger.pem" >/dev/null
if openssl verify -CAfile "$pki/ca.pem" "$pki/rogue.pem" >/dev/null 2>&1; then
  echo "the rogue client certificate verifies against the test CA" >&2
  exit 1
fi

# --- podstart --------------------------------------------------------------
# The client identity may do everything in the test's namespace; the unix
# caller (this uid) too, so the Rust CLI can set up a pod for grpcurl.
cat >"$work/policy.yaml" <<EOF
rules:
  - identities: ["spiffe://podstart.test/client", "unix:uid=$(id -u)"]
    namespaces: ["clients-test"]
    verbs: [start, stop, read, watch]
    podSecurity: baseline
EOF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
metrics=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sock=$work/p.sock
mkdir -p "$work/pods" "$work/state"
say "podstart serve (sim runtime) on unix://$sock and tcp://127.0.0.1:$port (mTLS)"
"$bin" serve --runtime-endpoint sim \
  --listen "unix://$sock" --listen "tcp://127.0.0.1:$port" \
  --tls-cert-file "$pki/server.pem" --tls-private-key-file "$pki/server.key" \
  --client-ca-file "$pki/ca.pem" --authz-policy "$work/policy.yaml" \
  --metrics-listen "127.0.0.1:$metrics" --pod-log-root "$work/pods" \
  --pod-state-root "$work/state" --shutdown-grace 2s \
  >"$work/serve.log" 2>&1 &
serve_pid=$!
readyz() { # 0 once /readyz answers 200
  python3 -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
except OSError:
    sys.exit(1)' "http://127.0.0.1:$metrics/readyz"
}
ready=0
for _ in $(seq 150); do
  kill -0 "$serve_pid" 2>/dev/null || { echo "podstart serve exited:" >&2; cat "$work/serve.log" >&2; exit 1; }
  if [[ -S $sock ]] && readyz; then
    ready=1
    break
  fi
  sleep 0.2
done
((ready)) || { echo "podstart never became ready" >&2; cat "$work/serve.log" >&2; exit 1; }

failed=0
check() { # description, command...
  local what=$1
  shift
  if "$@"; then
    return 0
  fi
  echo "FAILED: $what" >&2
  failed=1
}

client() { "$python" tests/clients/grpcio_client.py --proto-root proto "$@"; }
tls=(--target "127.0.0.1:$port" --ca "$pki/ca.pem")

# --- Python grpcio -------------------------------------------------------------
say "Python grpcio $("$python" -c 'import grpc; print(grpc.__version__)') over the unix socket (default channel options)"
check "grpcio over the unix socket" client --target "unix://$sock" calls --uid py-unix
say "Python grpcio over mTLS TCP"
check "grpcio over mTLS" client "${tls[@]}" --cert "$pki/client.pem" --key "$pki/client.key" accepted
check "grpcio over mTLS" client "${tls[@]}" --cert "$pki/client.pem" --key "$pki/client.key" calls --uid py-tls
say "handshakes that must be refused"
# TLS 1.3 alerts: certificate_required (116), unknown_ca (48). grpcio's own
# log of the refused handshakes is left out.
check "no client certificate refused" env GRPC_VERBOSITY=NONE "$python" tests/clients/grpcio_client.py \
  --proto-root proto "${tls[@]}" --expect-alert CERTIFICATE_REQUIRED refused
check "a rogue CA's client certificate refused" env GRPC_VERBOSITY=NONE "$python" tests/clients/grpcio_client.py \
  --proto-root proto "${tls[@]}" --cert "$pki/rogue.pem" --key "$pki/rogue.key" \
  --expect-alert UNKNOWN_CA refused
say "an identity the policy does not name"
check "a stranger denied" client "${tls[@]}" --cert "$pki/stranger.pem" --key "$pki/stranger.key" denied --uid py-stranger

# --- grpcurl -----------------------------------------------------------------
# A pod for ListPods to show, started with podstart's own client over mutual
# TLS, as the README's orchestrator example calls it (stopped over the socket).
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: grpcurl-witness, namespace: clients-test}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers:\n    - {name: app, image: registry.test/clients/app:1}\n' \
  >"$work/witness.yaml"
timeout 60 "$bin" --endpoint "https://127.0.0.1:$port" --certificate-authority "$pki/ca.pem" \
  --client-certificate "$pki/client.pem" --client-key "$pki/client.key" run "$work/witness.yaml" \
  >"$work/witness.log" 2>&1 ||
  { echo "podstart run of the witness pod over mTLS failed:" >&2; cat "$work/witness.log" "$work/serve.log" >&2; exit 1; }
echo "ok [podstart client, mTLS 127.0.0.1:$port] run: clients-test/grpcurl-witness started"

grpcurl_check() { # transport, address, grpcurl connection flags...
  local where=$1 addr=$2 out
  shift 2
  if ! out=$(grpcurl "$@" "$addr" list 2>&1); then
    echo "grpcurl ($where) list: $out" >&2
    return 1
  fi
  for svc in podstart.v1.PodStarter grpc.health.v1.Health; do
    grep -qx "$svc" <<<"$out" || { echo "grpcurl ($where) list does not show $svc: $out" >&2; return 1; }
  done
  echo "ok [grpcurl, $where] reflection lists $(tr '\n' ' ' <<<"$out")"
  if ! out=$(grpcurl "$@" -d '{"namespace": "clients-test"}' "$addr" podstart.v1.PodStarter/ListPods 2>&1); then
    echo "grpcurl ($where) ListPods: $out" >&2
    return 1
  fi
  python3 -c 'import json, sys; pods = json.loads(sys.argv[1]).get("pods", []); sys.exit(0 if any(p.get("name") == "grpcurl-witness" for p in pods) else 1)' "$out" ||
    { echo "grpcurl ($where) ListPods does not show the witness pod: $out" >&2; return 1; }
  echo "ok [grpcurl, $where] ListPods shows clients-test/grpcurl-witness"
}
say "grpcurl over mTLS TCP (-cacert -cert -key)"
check "grpcurl over mTLS" grpcurl_check "mTLS 127.0.0.1:$port" "127.0.0.1:$port" \
  -cacert "$pki/ca.pem" -cert "$pki/client.pem" -key "$pki/client.key"
say "grpcurl over the unix socket (-unix, no -authority)"
check "grpcurl over the unix socket" grpcurl_check "unix socket $sock" "$sock" -plaintext -unix
if out=$(grpcurl -connect-timeout 5 -cacert "$pki/ca.pem" "127.0.0.1:$port" list 2>&1); then
  echo "FAILED: grpcurl without a client certificate listed services: $out" >&2
  failed=1
else
  echo "ok [grpcurl, TLS 127.0.0.1:$port] without a client certificate: refused ($(tail -n1 <<<"$out" | cut -c1-100))"
fi

timeout 60 "$bin" --endpoint "unix://$sock" stop "$work/witness.yaml" >>"$work/witness.log" 2>&1 ||
  { echo "FAILED: podstart stop of the witness pod" >&2; cat "$work/witness.log" >&2; failed=1; }

if ((failed)); then
  echo "--- podstart serve log (last 40 lines) ---" >&2
  tail -n 40 "$work/serve.log" >&2
  exit 1
fi
say "non-Rust clients passed"
