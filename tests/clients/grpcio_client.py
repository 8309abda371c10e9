#!/usr/bin/env python3
"""A podstart client written with Python grpcio, as an orchestrator not
written in Rust would call podstart. Run by scripts/clients-test.sh.

The stubs are generated from proto/podstart/v1 with grpcio-tools into a
temporary directory at every run; nothing generated is kept. Channels are
made with grpcio's DEFAULT options (no authority override, no target name
override): what works here works for any grpcio caller.

  grpcio_client.py --proto-root proto --target unix:///tmp/x/p.sock calls --uid py-unix
  grpcio_client.py --proto-root proto --target 127.0.0.1:9443 \\
      --ca ca.pem --cert client.pem --key client.key calls --uid py-tls
  grpcio_client.py ... --ca ca.pem [--cert other.pem --key other.key] refused
  grpcio_client.py ... --ca ca.pem --cert c.pem --key k.pem denied --uid py-stranger

`calls`: gRPC health Check (overall and podstart.v1.PodStarter), ListPods,
StartPod of a one-container pod to PodStarted, ListPods shows it, StopPod to
PodStopped, ListPods no longer shows it.
`refused`: the TLS handshake fails (no client certificate, or one from a CA
podstart does not trust): checked on a raw TLS connection (the server's alert,
which --expect-alert names) and with grpcio (UNAVAILABLE, no RPC reaches
podstart).
`accepted`: the control for `refused`: the same raw connection with a trusted
client certificate gets HTTP/2 frames back.
`denied`: StartPod is refused with PERMISSION_DENIED (an identity the policy
does not name).

Each check prints one line saying what it verified; any failure exits 1.
"""
import argparse
import importlib
import os
import shutil
import socket
import ssl
import sys
import tempfile

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

SERVICE = "podstart.v1.PodStarter"
DEADLINE = 30.0


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def ok(transport, msg):
    print(f"ok [python grpcio, {transport}] {msg}")


def generate_stubs(proto_root):
    """Generates podstart.v1's messages and stubs into a temporary directory
    and imports them."""
    out = tempfile.mkdtemp(prefix="podstart-grpcio-stubs.")
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main([
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        os.path.join(proto_root, "podstart", "v1", "podstart.proto"),
    ])
    if rc != 0:
        fail(f"grpc_tools.protoc failed ({rc}) on {proto_root}/podstart/v1/podstart.proto")
    sys.path.insert(0, out)
    pb2 = importlib.import_module("podstart.v1.podstart_pb2")
    pb2_grpc = importlib.import_module("podstart.v1.podstart_pb2_grpc")
    return out, pb2, pb2_grpc


def read(path):
    with open(path, "rb") as f:
        return f.read()


def channel(args):
    """A channel with grpcio's default options: insecure for unix:// targets,
    TLS with the given CA (and client certificate, if any) otherwise."""
    if args.target.startswith("unix:"):
        return grpc.insecure_channel(args.target)
    creds = grpc.ssl_channel_credentials(
        root_certificates=read(args.ca),
        private_key=read(args.key) if args.key else None,
        certificate_chain=read(args.cert) if args.cert else None,
    )
    return grpc.secure_channel(args.target, creds)


def transport_name(args):
    if args.target.startswith("unix:"):
        return f"unix socket {args.target}"
    return f"mTLS {args.target}" if args.cert else f"TLS {args.target} without a client certificate"


def pod_request(pb2, uid, namespace):
    return pb2.StartPodRequest(
        pod=pb2.PodSpec(
            metadata=pb2.PodMetadata(name=uid, namespace=namespace, uid=uid),
            restart_policy=pb2.RESTART_POLICY_NEVER,
            termination_grace_period_seconds=2,
            containers=[pb2.Container(name="app", image="registry.test/clients/app:1")],
        ),
        options=pb2.StartOptions(no_pull_progress=True),
    )


def terminal(events, kinds):
    """The last event of a stream, which must carry one of `kinds`."""
    last = None
    count = 0
    for event in events:
        count += 1
        last = event
    if last is None:
        fail("the stream ended without an event")
    kind = last.WhichOneof("payload")
    if kind not in kinds:
        fail(f"the stream ended with {kind or last.reason!r} ({last.message!r}), want one of {kinds}")
    return last, count


def listed(stub, pb2, namespace):
    resp = stub.ListPods(pb2.ListPodsRequest(namespace=namespace), timeout=DEADLINE)
    return {p.uid: p for p in resp.pods}


def do_calls(args, pb2, pb2_grpc):
    where = transport_name(args)
    with channel(args) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", SERVICE):
            resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=DEADLINE)
            if resp.status != health_pb2.HealthCheckResponse.SERVING:
                fail(f"health of {service or 'the server'!r} is {resp.status}, want SERVING")
        ok(where, f"grpc.health.v1.Health/Check: the server and {SERVICE} are SERVING")

        stub = pb2_grpc.PodStarterStub(ch)
        before = listed(stub, pb2, args.namespace)
        if args.uid in before:
            fail(f"pod {args.uid} is listed before it was started")
        ok(where, f"ListPods: {len(before)} pod(s) in namespace {args.namespace}")

        last, count = terminal(
            stub.StartPod(pod_request(pb2, args.uid, args.namespace), timeout=DEADLINE),
            ("pod_started",),
        )
        started = last.pod_started
        if [c.name for c in started.containers] != ["app"] or not started.sandbox_id:
            fail(f"PodStarted does not list the pod's sandbox and container: {started}")
        ok(where, f"StartPod {args.namespace}/{args.uid}: {count} events, PodStarted "
                  f"(sandbox {started.sandbox_id[:12]}, container app)")

        pods = listed(stub, pb2, args.namespace)
        pod = pods.get(args.uid)
        if pod is None or pod.sandbox_id != started.sandbox_id:
            fail(f"ListPods does not show the started pod {args.uid}: {sorted(pods)}")
        ok(where, f"ListPods shows {args.uid} with the started sandbox")

        ref = pb2.PodRef(uid=args.uid)
        last, count = terminal(stub.StopPod(pb2.StopPodRequest(pod=ref), timeout=DEADLINE), ("pod_stopped",))
        if last.pod_stopped.sandbox_id != started.sandbox_id:
            fail(f"PodStopped names sandbox {last.pod_stopped.sandbox_id}, want {started.sandbox_id}")
        ok(where, f"StopPod {args.uid}: {count} events, PodStopped ({last.pod_stopped.containers_stopped} container(s))")

        if args.uid in listed(stub, pb2, args.namespace):
            fail(f"ListPods still shows {args.uid} after StopPod")
        ok(where, f"ListPods no longer shows {args.uid}")


def raw_handshake(args, preface):
    """Opens a TLS connection by hand, sends the HTTP/2 preface if asked, and
    reads: returns ("accepted", first bytes) when the server answers with
    HTTP/2 frames, or ("refused", why) when it ends the connection during the
    handshake (TLS 1.2: the handshake itself fails; TLS 1.3: the server's
    alert arrives on the first read). A refused connection is read without
    sending anything first: bytes the server never reads would turn its close
    into a reset that can overtake the alert."""
    host, port = args.target.rsplit(":", 1)
    host = host.strip("[]")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(args.ca)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, int(port)), timeout=DEADLINE) as raw:
            with ctx.wrap_socket(raw, server_hostname=host) as tls:
                if preface:
                    tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                data = tls.recv(64)
                if not data:
                    return "refused", "the server closed the connection without an HTTP/2 frame"
                return "accepted", data
    except ssl.SSLError as e:
        return "refused", f"TLS alert: {e.reason or e}"
    except (ConnectionResetError, BrokenPipeError) as e:
        return "refused", f"connection reset: {e}"
    except socket.timeout:
        return "timeout", f"no answer within {DEADLINE:.0f}s"


def do_refused(args):
    where = transport_name(args)
    verdict, detail = raw_handshake(args, preface=False)
    if verdict == "timeout":
        fail(f"{where}: the server neither refused nor answered the connection: {detail}")
    if verdict != "refused":
        fail(f"{where}: the TLS handshake was accepted (server sent {detail[:16]!r}); "
             "it must be refused")
    if args.expect_alert and args.expect_alert not in detail:
        fail(f"{where}: the TLS handshake was refused ({detail}), but not with the alert {args.expect_alert}")
    ok(where, f"TLS handshake refused ({detail})")
    with channel(args) as ch:
        try:
            health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=DEADLINE)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                fail(f"{where}: health Check failed with {e.code()}, want UNAVAILABLE (no connection)")
            ok(where, f"grpcio health Check: UNAVAILABLE ({e.details()[:100]})")
            return
    fail(f"{where}: health Check succeeded without a trusted client certificate")


def do_accepted(args):
    """The control for `refused`: the same raw handshake with a trusted
    client certificate gets HTTP/2 frames back."""
    where = transport_name(args)
    verdict, detail = raw_handshake(args, preface=True)
    if verdict != "accepted":
        fail(f"{where}: the TLS handshake with a trusted client certificate was refused: {detail}")
    # An HTTP/2 frame header: 24-bit length, type (4: SETTINGS).
    if len(detail) < 9 or detail[3] != 4:
        fail(f"{where}: the server's first bytes are not an HTTP/2 SETTINGS frame: {detail[:16]!r}")
    ok(where, "TLS handshake with a trusted client certificate accepted: the server speaks HTTP/2")


def do_denied(args, pb2, pb2_grpc):
    where = transport_name(args)
    with channel(args) as ch:
        stub = pb2_grpc.PodStarterStub(ch)
        try:
            terminal(stub.StartPod(pod_request(pb2, args.uid, args.namespace), timeout=DEADLINE),
                     ("pod_started", "pod_failed"))
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.PERMISSION_DENIED:
                fail(f"{where}: StartPod failed with {e.code()} ({e.details()}), want PERMISSION_DENIED")
            ok(where, f"StartPod by an identity the policy does not name: PERMISSION_DENIED ({e.details()[:120]})")
            return
    fail(f"{where}: StartPod by an identity the policy does not name was carried out")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--proto-root", required=True, help="directory holding podstart/v1/podstart.proto")
    p.add_argument("--target", required=True, help="unix:///path or HOST:PORT (TLS)")
    p.add_argument("--ca", help="CA bundle that signed podstart's server certificate")
    p.add_argument("--cert", help="client certificate chain (PEM)")
    p.add_argument("--key", help="client private key (PEM)")
    p.add_argument("--namespace", default="clients-test")
    p.add_argument("--uid", default="py-client", help="uid and name of the pod started")
    p.add_argument("--expect-alert", help="refused: the TLS alert the server must send (e.g. UNKNOWN_CA)")
    p.add_argument("check", choices=["calls", "refused", "accepted", "denied"])
    args = p.parse_args()
    if not args.target.startswith("unix:") and not args.ca:
        p.error("a TCP target needs --ca")
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")

    stubs, pb2, pb2_grpc = generate_stubs(args.proto_root)
    try:
        if args.check == "calls":
            do_calls(args, pb2, pb2_grpc)
        elif args.check == "refused":
            do_refused(args)
        elif args.check == "accepted":
            do_accepted(args)
        else:
            do_denied(args, pb2, pb2_grpc)
    except grpc.RpcError as e:
        fail(f"{transport_name(args)}: {e.code()}: {e.details()}")
    finally:
        shutil.rmtree(stubs, ignore_errors=True)


if __name__ == "__main__":
    main()
