"""Writes a realistic mixed-format log file of N lines (default 2,000,000) for timing
`medic analyze logs`.

Usage: python3 gen_mixed.py OUT [LINES] [SEED]

What a real service directory looks like when cat-ed together: plain text with ISO
timestamps and levels (~45 %), JSON lines in several key conventions (~20 %), logfmt (~10 %),
syslog (~10 %), Apache error-log style (~5 %), Java stack traces as continuation lines (~5 %),
and the odd line with a secret in it (tokens, passwords, emails, AWS keys) so the redaction
path is exercised. Timestamps advance over ~8 hours with an error burst in the middle.
Deterministic for a seed. Synthetic on purpose: not Loghub data, not tuned to anything.
"""
import json
import random
import sys

USERS = ["alice", "bob", "deploy", "svc-backup", "nagios", "carol", "dave"]
SERVICES = ["checkout", "payment", "cart", "auth", "search", "inventory", "gateway"]
PATHS = ["/api/v1/orders", "/api/v1/cart", "/healthz", "/login", "/api/v2/search", "/static/app.js"]
HOSTS = ["web-1", "web-2", "db-1", "cache-3", "worker-7"]
CLASSES = ["com.acme.OrderService", "org.apache.kafka.Consumer", "io.netty.Channel"]

MESSAGES = [
    "GET {path} returned {status} in {ms}ms",
    "POST {path} returned {status} in {ms}ms ({bytes} bytes)",
    "user {user} logged in from {ip}",
    "cache miss for key user:{n}:profile",
    "connection pool {svc} at {pct}% ({n} of 200 in use)",
    "processed batch {n} of {m} records in {ms}ms",
    "retrying request to {svc} (attempt {a} of 5)",
    "scheduled job {hex} for {user}",
    "GC pause {ms}ms, heap {pct}% used",
    "upstream {ip}:{port} responded slowly: {ms}ms",
    "order {n} placed by {user}: {m} items, total {price}",
    "wrote checkpoint {n} ({bytes} bytes) to /var/lib/{svc}/state",
]
ERRORS = [
    "connection refused to {svc} at {ip}:{port}",
    "timeout after {ms}ms calling {svc}",
    "deadlock detected while updating order {n}",
    "out of memory: cannot allocate {bytes} bytes",
    "failed to authenticate user {user}: invalid credentials",
    "disk full on /var/lib/{svc}: {pct}% used",
    "too many open files (limit 1024) in {svc}",
]
SECRETS = [
    "login attempt password={word} for {user}",
    "calling {svc} with Authorization: Bearer {tok}",
    "sent receipt to {user}@example.com",
    "using key AKIA{akia} for s3 upload",
    "db url postgres://{user}:{word}@db-1:5432/orders",
]


def fill(rng, t):
    return t.format(
        path=rng.choice(PATHS),
        status=rng.choice([200, 200, 200, 201, 204, 301, 404, 500, 503]),
        ms=rng.randint(1, 5000),
        bytes=rng.randint(100, 10**7),
        user=rng.choice(USERS) if rng.random() < 0.8 else f"user{rng.randint(0, 99999)}",
        ip=f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        port=rng.randint(1024, 65535),
        n=rng.randint(0, 10**6),
        m=rng.randint(1, 500),
        pct=rng.randint(0, 100),
        svc=rng.choice(SERVICES),
        a=rng.randint(1, 5),
        hex="%016x" % rng.getrandbits(64),
        price=f"{rng.randint(1, 999)}.{rng.randint(0, 99):02d}",
        word="".join(rng.choice("abcdefghijk0123456789") for _ in range(10)),
        tok="".join(rng.choice("ABCDEFabcdef0123456789") for _ in range(32)),
        akia="".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
    )


def message(rng, burst):
    r = rng.random()
    if r < 0.002:
        return "WARN", fill(rng, rng.choice(SECRETS))
    if r < (0.25 if burst else 0.03):
        return "ERROR", fill(rng, rng.choice(ERRORS))
    if r < (0.30 if burst else 0.08):
        return "WARN", fill(rng, rng.choice(ERRORS[:3]))
    return rng.choice(["INFO"] * 8 + ["DEBUG"]), fill(rng, rng.choice(MESSAGES))


def main():
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    t0 = 1_714_550_400.0  # 2024-05-01T08:00:00Z
    span = 8 * 3600.0
    import time as _t

    with open(out, "w", buffering=1 << 20) as f:
        i = 0
        while i < n:
            t = t0 + span * i / n
            burst = 0.55 < i / n < 0.57
            level, msg = message(rng, burst)
            svc = rng.choice(SERVICES)
            ms = int((t % 1) * 1000)
            tm = _t.gmtime(t)
            iso = _t.strftime("%Y-%m-%dT%H:%M:%S", tm) + f".{ms:03d}Z"
            kind = rng.random()
            if kind < 0.45:
                f.write(f"{iso} {level} [{svc}] {msg}\n")
            elif kind < 0.55:
                d = {"ts": iso, "level": level.lower(), "msg": msg, "service": svc,
                     "trace_id": "%032x" % rng.getrandbits(128)}
                f.write(json.dumps(d) + "\n")
            elif kind < 0.65:
                d = {"@timestamp": iso, "severity": level, "message": msg,
                     "host": rng.choice(HOSTS), "pid": rng.randint(100, 99999)}
                f.write(json.dumps(d) + "\n")
            elif kind < 0.75:
                f.write(f'time={iso} level={level.lower()} svc={svc} msg="{msg}" '
                        f"dur={rng.randint(1, 900)}ms\n")
            elif kind < 0.85:
                sys_ts = _t.strftime("%b %d %H:%M:%S", tm)
                f.write(f"{sys_ts} {rng.choice(HOSTS)} {svc}[{rng.randint(100, 9999)}]: {msg}\n")
            elif kind < 0.90:
                ap = _t.strftime("%a %b %d %H:%M:%S %Y", tm)
                f.write(f"[{ap}] [{'error' if level == 'ERROR' else 'notice'}] {msg}\n")
            elif kind < 0.95 and level == "ERROR":
                f.write(f"{iso} ERROR [{svc}] unhandled exception in request handler\n")
                cls = rng.choice(CLASSES)
                f.write(f"java.lang.IllegalStateException: {msg}\n")
                for k in range(rng.randint(2, 6)):
                    f.write(f"\tat {cls}.method{k}({cls.split('.')[-1]}.java:{rng.randint(10, 900)})\n")
                i += 3
            else:
                f.write(f"{iso} {level} [{svc}] {msg}\n")
            i += 1


if __name__ == "__main__":
    main()
