#!/usr/bin/env bash
# prometheus-test.sh — the chart's alerts and dashboard evaluated by a real
# Prometheus (Debian's `prometheus`, run here with its own config and a
# temporary storage dir; the Debian service is never started) scraping a
# host `podstart serve` against the running containerd lab:
#   a. after real starts (a pod with an init container, a pod pulling from the
#      lab registry, a pod whose command does not exist, a pod whose image does
#      not exist run three times: ErrImagePull, then ImagePullBackOff; all stopped
#      afterwards), every recording rule and alert of the rendered
#      PrometheusRule is evaluated by Prometheus without error, and each
#      expression, and the value it compares, is queried through
#      /api/v1/query and printed (the compared value must have data);
#   b. the lab containerd is killed (`containerd-lab.sh crash`; its shims and
#      state stay) and revived: PodstartRuntimeNotReady goes pending, then
#      firing (`for:` shortened through prometheusRule.runtimeNotReady.for),
#      then resolves; the timeline from /api/v1/alerts is printed;
#   c. every panel query of charts/podstart/dashboards/*.json, with $node set
#      to the node the dashboard's variable finds and $__rate_interval to the
#      test's span, returns a non-empty result; a panel → series table is
#      printed.
# Needs a running lab (scripts/containerd-lab.sh start; PODSTART_LAB as for
# that script). PODSTART_BIN=path/to/podstart (default target/debug/podstart).
# Exits non-zero on any failure; stops what it started and always brings the
# lab containerd back if it killed it.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/podstart
t0=$SECONDS
say() { echo "[prometheus-test $((SECONDS - t0))s] $*" >&2; }
die() { say "error: $*"; exit 1; }

# Short enough for the test, long enough to see the pending state.
NOT_READY_FOR=3s

bin=$(realpath "${PODSTART_BIN:-target/debug/podstart}")
[[ -x $bin ]] || die "no podstart binary at $bin (cargo build, or set PODSTART_BIN)"
lab_env=$(scripts/containerd-lab.sh env) || die "no running lab: scripts/containerd-lab.sh start"
eval "$lab_env"

if ! command -v prometheus >/dev/null; then
  say "installing prometheus (Debian), its service kept from starting"
  scripts/test-deps.sh --prometheus
fi
command -v curl >/dev/null || die "curl is missing (scripts/containerd-lab.sh start installs it)"
helm=$(scripts/helm.sh)

work=$(mktemp -d /tmp/podstart-prometheus-test.XXXXXX)
serve_pid=
prom_pid=
crashed=0
pods=()
cleanup() {
  local rc=$?
  if ((rc != 0)); then
    for log in serve prometheus; do
      [[ -f $work/$log.log ]] && { echo "--- last lines of $log.log" >&2; tail -n 20 "$work/$log.log" >&2; }
    done
  fi
  if ((crashed)); then
    say "bringing the lab containerd back"
    scripts/containerd-lab.sh revive >/dev/null || true
  fi
  if [[ -n $serve_pid ]]; then
    for pod in "${pods[@]}"; do
      timeout 30 "$bin" --endpoint "unix://$work/podstart.sock" stop "$work/$pod.yaml" >/dev/null 2>&1 || true
    done
  fi
  for pid in $prom_pid $serve_pid; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in $prom_pid $serve_pid; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- the chart's rules ------------------------------------------------------
say "rendering the PrometheusRule (prometheusRule.runtimeNotReady.for=$NOT_READY_FOR)"
"$helm" template podstart "$chart" --namespace podstart --show-only templates/prometheusrule.yaml \
  --set prometheusRule.enabled=true --set "prometheusRule.runtimeNotReady.for=$NOT_READY_FOR" >"$work/rule.yaml"
# A rule file is the resource's spec: `groups:` and what follows, dedented.
sed -n '/^spec:$/,$p' "$work/rule.yaml" | tail -n +2 | sed 's/^  //' >"$work/rules.yaml"
promtool check rules "$work/rules.yaml" >/dev/null

# --- podstart serve on the lab ----------------------------------------------
metrics_port=$(free_port)
say "podstart serve against $CONTAINER_RUNTIME_ENDPOINT, metrics on 127.0.0.1:$metrics_port"
"$bin" serve --runtime-endpoint "$CONTAINER_RUNTIME_ENDPOINT" --listen "unix://$work/podstart.sock" \
  --pod-log-root "$work/pods" --pod-state-root "$work/state" --pod-volume-root "$work/volumes" \
  --metrics-listen "127.0.0.1:$metrics_port" --restrict-oom-score-adj --shutdown-grace 2s \
  >"$work/serve.log" 2>&1 &
serve_pid=$!
readyz() { curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$metrics_port/readyz" || true; }
for _ in $(seq 300); do
  [[ $(readyz) == 200 ]] && break
  kill -0 "$serve_pid" 2>/dev/null || break
  sleep 0.1
done
[[ $(readyz) == 200 ]] || { cat "$work/serve.log" >&2; die "podstart serve never became ready"; }

# --- Prometheus --------------------------------------------------------------
prom_port=$(free_port)
node=prometheus-test-node
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yaml]
scrape_configs:
  - job_name: podstart
    static_configs:
      # The label the chart's ServiceMonitor/PodMonitor add.
      - targets: ["127.0.0.1:$metrics_port"]
        labels: {node: $node}
EOF
say "prometheus $(prometheus --version 2>&1 | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p') on 127.0.0.1:$prom_port"
prometheus --config.file "$work/prometheus.yml" --storage.tsdb.path "$work/tsdb" \
  --web.listen-address "127.0.0.1:$prom_port" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
api="http://127.0.0.1:$prom_port/api/v1"
for _ in $(seq 300); do
  curl -fs "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1 && break
  kill -0 "$prom_pid" 2>/dev/null || break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$prom_port/-/ready" >/dev/null || { cat "$work/prometheus.log" >&2; die "prometheus never became ready"; }
# The first scrape: the target is up.
up() {
  curl -fsG "$api/query" --data-urlencode 'query=up{job="podstart"}' |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")'
}
deadline=$((SECONDS + 20))
while ((SECONDS < deadline)) && [[ $(up) != 1 ]]; do sleep 0.2; done
[[ $(up) == 1 ]] || { cat "$work/prometheus.log" >&2; die "prometheus does not scrape podstart"; }
prom_t0=$(date +%s)

# --- a. real starts, then every rule -------------------------------------------
say "a. starting pods through podstart run"
pod() { # name, spec lines
  # sleep as PID 1 ignores SIGTERM: a short grace period keeps the stops short.
  printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: prometheus-test}\nspec:\n  terminationGracePeriodSeconds: 1\n%s\n' "$1" "$2" >"$work/$1.yaml"
}
pod started "  initContainers:
    - {name: setup, image: $TEST_IMAGE, imagePullPolicy: Never, command: [\"true\"]}
  containers:
    - {name: app, image: $TEST_IMAGE, imagePullPolicy: Never, command: [sleep, \"3600\"]}"
pod pulled "  containers:
    - {name: app, image: $REGISTRY/podstart-lab/layers-a:1, imagePullPolicy: Always, command: [sleep, \"3600\"]}"
pod no-binary "  containers:
    - {name: app, image: $TEST_IMAGE, imagePullPolicy: Never, command: [/no/such/binary]}"
pod no-image "  containers:
    - {name: app, image: $REGISTRY/podstart-lab/absent:1}"
# no-image: ErrImagePull, then ImagePullBackOff (the pull backs off) twice, a
# scrape apart, for the back-off alert's increase() to see a rise.
expect=(started:0: pulled:0: no-binary:1: no-image:1:ErrImagePull no-image:1:ImagePullBackOff
  scrape no-image:1:ImagePullBackOff)
for want in "${expect[@]}"; do
  if [[ $want == scrape ]]; then sleep 2; continue; fi
  p=${want%%:*}
  pods+=("$p")
  rc=0
  timeout 120 "$bin" --endpoint "unix://$work/podstart.sock" run "$work/$p.yaml" >"$work/run-$p.log" 2>&1 || rc=$?
  reason=$(grep -o 'ErrImagePull\|ImagePullBackOff' "$work/run-$p.log" | tail -n1 || true)
  [[ $p:$rc:$reason == "$want" ]] ||
    { cat "$work/run-$p.log" >&2; die "podstart run $p exited $rc${reason:+ ($reason)}; want $want"; }
  say "   podstart run $p: exit $rc${reason:+ ($reason)}, as expected"
done
mapfile -t pods < <(printf '%s\n' "${pods[@]}" | sort -u)
for p in "${pods[@]}"; do
  timeout 60 "$bin" --endpoint "unix://$work/podstart.sock" stop "$work/$p.yaml" >"$work/stop-$p.log" 2>&1 ||
    { cat "$work/stop-$p.log" >&2; die "podstart stop $p failed"; }
done
pods=()
say "   all stopped; waiting for two evaluations of every rule after a scrape"
sleep 3

rules_report() { # the rules as Prometheus evaluates them, and each expression queried now
  python3 - "$api" <<'PY'
import json, sys, urllib.parse, urllib.request
api = sys.argv[1]
def get(path, **q):
    with urllib.request.urlopen(f"{api}/{path}?{urllib.parse.urlencode(q)}") as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]
rules = [r for g in get("rules")["groups"] for r in g["rules"]]
records = [r for r in rules if r["type"] == "recording"]
alerts = [r for r in rules if r["type"] == "alerting"]
print(f"  {len(rules)} rules loaded: {len(records)} recording, {len(alerts)} alerting")
bad = []
for r in rules:
    name = r.get("name")
    if r.get("health") != "ok" or r.get("lastError"):
        bad.append(f"{name}: health {r.get('health')!r} {r.get('lastError', '')}")
    data = get("query", query=r["query"])
    result = data["result"]
    shown = ", ".join(f"{{{','.join(f'{k}={v}' for k, v in s['metric'].items())}}} {s['value'][1]}"
                      for s in result) or "(empty: the condition does not hold)"
    print(f"  {r['type']:<9} {name:<32} health={r.get('health')} state={r.get('state', '-'):<8} now: {shown}")
    # An alert's condition without its comparison: the value it compares.
    expr = r["query"]
    for op in (" > ", " == ", " < "):
        head, sep, _ = expr.rpartition(op)
        if sep:
            inner = get("query", query=head)["result"]
            vals = ", ".join(f"{{{','.join(f'{k}={v}' for k, v in s['metric'].items())}}} {s['value'][1]}"
                             for s in inner) or "(empty)"
            print(f"  {'':<9} {'  compared value':<32} {vals}")
            if not inner:
                bad.append(f"{name}: {head} returns no data after the starts")
            break
if bad:
    print("\n".join(bad), file=sys.stderr)
    sys.exit(1)
PY
}
deadline=$((SECONDS + 20))
while ((SECONDS < deadline)); do
  rules_report >/dev/null 2>&1 && break
  sleep 0.5
done
rules_report || die "a rule does not evaluate, or an alert's compared value has no data"

# --- b. the runtime stops and comes back ---------------------------------------
alert_state() { # state of PodstartRuntimeNotReady (inactive when absent) and its activeAt
  curl -fs "$api/alerts" | python3 -c '
import json, sys
a = [a for a in json.load(sys.stdin)["data"]["alerts"] if a["labels"].get("alertname") == "PodstartRuntimeNotReady"]
print(a[0]["state"], a[0]["activeAt"]) if a else print("inactive -")'
}
stamp() { date -u +%H:%M:%S.%3N; }
[[ $(alert_state) == inactive* ]] || die "PodstartRuntimeNotReady is active before the runtime stops"
say "b. killing the lab containerd (scripts/containerd-lab.sh crash)"
crashed=1
scripts/containerd-lab.sh crash >/dev/null
stopped_at=$(stamp)
pending_at= firing_at= active_at= not_ready_at=
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
  read -r state active <<<"$(alert_state)"
  [[ -z $not_ready_at && $(readyz) == 503 ]] && not_ready_at=$(stamp)
  [[ $state == pending && -z $pending_at ]] && pending_at=$(stamp) && active_at=$active
  if [[ $state == firing ]]; then firing_at=$(stamp); break; fi
  sleep 0.1
done
[[ -n $pending_at ]] || die "PodstartRuntimeNotReady never went pending"
[[ -n $firing_at ]] || die "PodstartRuntimeNotReady never fired"
say "   firing: reviving the lab containerd (scripts/containerd-lab.sh revive)"
scripts/containerd-lab.sh revive >/dev/null
crashed=0
revived_at=$(stamp)
resolved_at= ready_at=
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
  read -r state _ <<<"$(alert_state)"
  [[ -z $ready_at && $(readyz) == 200 ]] && ready_at=$(stamp)
  if [[ $state == inactive ]]; then resolved_at=$(stamp); break; fi
  sleep 0.1
done
[[ -n $resolved_at ]] || die "PodstartRuntimeNotReady did not resolve with the runtime back"
cat <<EOF
  PodstartRuntimeNotReady timeline (UTC; for: $NOT_READY_FOR, scrape and evaluation every 1s):
    $stopped_at  lab containerd killed
    ${not_ready_at:-?}  podstart /readyz 503
    $pending_at  alert pending (activeAt $active_at)
    $firing_at  alert firing
    $revived_at  lab containerd revived
    ${ready_at:-?}  podstart /readyz 200
    $resolved_at  alert resolved (gone from /api/v1/alerts)
EOF
sleep 2 # a scrape and an evaluation with the runtime back

# --- c. every dashboard panel query --------------------------------------------
window=$(($(date +%s) - prom_t0 + 5))
say "c. dashboard panel queries (\$__rate_interval=${window}s, the test's span)"
for dash in "$chart"/dashboards/*.json; do
  python3 - "$api" "$dash" "$window" <<'PY'
import json, re, sys, urllib.error, urllib.parse, urllib.request
api, dash_file, window = sys.argv[1], sys.argv[2], sys.argv[3]
def query(q):
    try:
        with urllib.request.urlopen(f"{api}/query?{urllib.parse.urlencode({'query': q})}") as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:
        sys.exit(f"{q}: {e.read().decode()}")
    assert body["status"] == "success", body
    return body["data"]["result"]
dash = json.load(open(dash_file))
# Each query variable as Grafana fills it: label_values(series, label).
values = {"__rate_interval": f"{window}s", "__interval": "1s", "__range": f"{window}s"}
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    m = re.match(r"label_values\((.*),\s*([a-zA-Z_]+)\)$", q or "")
    if v.get("type") == "query" and m:
        found = sorted({s["metric"].get(m.group(2), "") for s in query(f"group by ({m.group(2)}) ({m.group(1)})")} - {""})
        if not found:
            sys.exit(f"dashboard variable {v['name']}: {q} finds nothing")
        # A regex inside a PromQL string literal: its backslashes doubled.
        values[v["name"]] = "|".join(re.escape(f) for f in found).replace("\\", "\\\\")
        print(f"  variable ${v['name']} = {'|'.join(found)}")
def fill(expr):
    return re.sub(r"\$\{?([a-zA-Z_]+)\}?", lambda m: values[m.group(1)], expr)
rows, empty = [], []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            n = len(query(fill(t["expr"])))
            rows.append((p.get("title"), t.get("refId", ""), n))
            if n == 0:
                empty.append(f"panel {p.get('title')!r} {t.get('refId', '')}: {fill(t['expr'])}")
        walk(p.get("panels", []))
walk(dash["panels"])
width = max(len(r[0]) for r in rows)
print(f"  {'panel':<{width}}  ref  series")
for title, ref, n in rows:
    print(f"  {title:<{width}}  {ref:<3}  {n}")
print(f"  {dash_file}: {len(rows)} queries, {len(rows) - len(empty)} with data")
if empty:
    print("no data:\n  " + "\n  ".join(empty), file=sys.stderr)
    sys.exit(1)
PY
done
say "prometheus tests passed"
