#!/usr/bin/env python3
"""Alert-to-incident latency: Alertmanager webhook received -> incident opened.

Starts `medic run` (server enabled, no other sources, SQLite store in a temp dir), posts
N realistic Alertmanager v4 notifications (one firing alert each, distinct services so each
opens its own incident), then reads the store: for each incident, latency = the
IncidentOpened audit record's time minus its first finding's time, which is the webhook
handler's receive time (both milliseconds, same clock). Side by side, the peer measured in
the same run: the client-side round trip of the webhook POST itself.

usage: bench/alerts/run.py [--medic target/release/medic] [--alerts 1000] [--rate 200]
Bounded: N requests, each with a 5 s timeout; medic is stopped by PID at the end.
"""
import argparse, json, os, signal, socket, sqlite3, statistics, subprocess, sys, tempfile, time
import http.client

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(p / 100 * len(xs) + 0.5)) - 1))]

def payload(i):
    svc = f"svc-{i:05d}"
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    labels = {"alertname": "HighErrorRate", "service": svc, "instance": f"10.0.{i // 250}.{i % 250}:8080",
              "severity": "critical", "job": svc, "namespace": "prod"}
    return {
        "version": "4", "groupKey": '{}:{alertname="HighErrorRate", service="%s"}' % svc,
        "truncatedAlerts": 0, "status": "firing", "receiver": "medic",
        "groupLabels": {"alertname": "HighErrorRate", "service": svc},
        "commonLabels": labels, "commonAnnotations": {"summary": f"{svc} 5xx ratio above 5%"},
        "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels,
                    "annotations": {"summary": f"{svc} 5xx ratio above 5%", "description": "ratio 0.31",
                                    "runbook_url": "https://runbooks.example/high-error-rate"},
                    "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph?g0.expr=...", "fingerprint": f"{i:016x}"}],
    }

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--medic", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "medic"))
    ap.add_argument("--alerts", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0, help="notifications per second")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="medic-bench-alerts-")
    port = free_port()
    store = os.path.join(tmp, "medic.db")
    cfg = os.path.join(tmp, "medic.yaml")
    with open(cfg, "w") as f:
        f.write(f"""agent: {{ tick: 1s, diagnosis_settle: 3s }}
store: {{ sqlite: "{store}" }}
server: {{ enabled: true, listen: "127.0.0.1:{port}", otlp_grpc_listen: "127.0.0.1:0" }}
""")
    log = open(os.path.join(tmp, "medic.log"), "w")
    p = subprocess.Popen([args.medic, "run", "--config", cfg], stdout=log, stderr=log,
                         env={**os.environ, "MEDIC_LOG": "warn"})
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit("medic did not listen")
        rtt, status = [], {}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        gap = 1.0 / args.rate
        t_next = time.perf_counter()
        for i in range(args.alerts):
            body = json.dumps(payload(i))
            t0 = time.perf_counter()
            conn.request("POST", "/api/v1/alerts/alertmanager", body, {"Content-Type": "application/json"})
            r = conn.getresponse(); r.read()
            rtt.append((time.perf_counter() - t0) * 1000)
            status[r.status] = status.get(r.status, 0) + 1
            t_next += gap
            time.sleep(max(0.0, t_next - time.perf_counter()))
        # Bad input: another payload version is a clear 400.
        conn.request("POST", "/api/v1/alerts/alertmanager", json.dumps({**payload(0), "version": "3"}))
        r = conn.getresponse(); v3 = (r.status, r.read().decode().strip())
        time.sleep(2.0)
        db = sqlite3.connect(store)
        lat = []
        for ts, body in db.execute("SELECT ts, payload FROM audit WHERE kind = 'incident_opened'"):
            ev = json.loads(body)
            finding = ev.get("finding") or ev.get("event", {}).get("finding")
            if finding and finding.get("kind") == "alert_firing":
                lat.append(ts - finding["ts"])
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill(); p.wait()
    print(f"alerts posted: {args.alerts} at {args.rate:.0f}/s; HTTP statuses: {status}")
    print(f"incidents opened from alerts: {len(lat)}")
    if lat:
        print(f"webhook received -> incident opened (ms): p50 {statistics.median(lat):.1f}  p99 {pct(lat, 99):.1f}  max {max(lat):.1f}")
    print(f"peer, webhook POST round trip (ms):        p50 {statistics.median(rtt):.2f}  p99 {pct(rtt, 99):.2f}  max {max(rtt):.2f}")
    print(f"version 3 payload: HTTP {v3[0]}: {v3[1]}")

if __name__ == "__main__":
    main()
