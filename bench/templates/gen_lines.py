"""Writes a realistic, varied message-per-line file of about SIZE bytes (default 1 GiB).

Usage: python gen_lines.py OUT [SIZE_BYTES] [SEED]
Mixes ~60 message shapes (auth, HTTP, storage, scheduler, kernel, JVM...) with values that
vary per line: IPs, ports, ids, hex, UUIDs, paths, URLs, durations, sizes, timestamps, users.
Deterministic for a seed. Not Loghub data: it exists so throughput is measured on bodies the
miner was never tuned on.
"""
import random
import sys
import uuid

SHAPES = [
    "Accepted {auth} for {user} from {ip} port {port} ssh2",
    "Failed password for invalid user {user} from {ip} port {port} ssh2",
    "Connection closed by {ip} port {port} [preauth]",
    "session opened for user {user} by (uid={n3})",
    "GET {path}?id={n6} HTTP/1.1 {status} {size} {dur}",
    "POST /api/v{d1}/orders/{n6} returned {status} in {dur}",
    "upstream {ip}:{port} timed out after {dur} while reading response header",
    "Received block blk_{blk} of size {n8} from /{ip}",
    "PacketResponder {d1} for block blk_{blk} terminating",
    "Deleting block blk_{blk} file {path}",
    "Task {task} finished in {dur} on executor {n3} ({n6} bytes result sent to driver)",
    "Container container_{n13}_{n4}_01_{n6} transitioned from {state} to {state2}",
    "Scheduled job {uuid} for tenant {user} at {ts}",
    "cache miss for key user:{n6}:profile (ttl {dur})",
    "worker {n3} heartbeat lag {dur}, queue depth {n4}",
    "kernel: [{n6}.{n6}] eth{d1}: link up, {n4}Mbps, full duplex",
    "kernel: Out of memory: Kill process {n5} ({proc}) score {n3} or sacrifice child",
    "disk {dev} usage {pct}% on {path}",
    "GC pause (G1 Evacuation Pause) {size} -> {size} in {dur}",
    "Exception in thread \"pool-{d1}-thread-{n3}\" java.lang.NullPointerException at {cls}.{meth}({cls}.java:{n3})",
    "Fetched {url} in {dur} ({size})",
    "user {user} changed password from {ip}",
    "replica {hex} lagging by {n5} ops on shard {n3}",
    "checkpoint {n6} completed: wrote {n4} buffers ({pct}%); sync {dur}",
    "lease {hex} for {path} expired at {ts}",
    "config reload triggered by {user}: {n3} changes applied",
    "rate limit exceeded for {ip}: {n4} requests in {dur}",
    "mounted {dev} on {path} type ext4 (rw,relatime)",
    "TLS handshake with {ip}:{port} failed: certificate expired at {ts}",
    "message {uuid} enqueued on {proc}-queue (depth {n4}, oldest {dur})",
]
USERS = ["root", "admin", "alice", "bob", "deploy", "svc-backup", "oracle", "test", "guest", "nagios"]
STATES = ["NEW", "ALLOCATED", "ACQUIRED", "RUNNING", "KILLING", "DONE"]
PROCS = ["java", "python3", "nginx", "postgres", "redis-server", "node", "envoy"]
CLSES = ["org.apache.Foo", "com.acme.OrderService", "io.netty.Channel", "net.medic.Worker"]
AUTH = ["password", "publickey", "keyboard-interactive"]


def val(rng, k):
    if k == "ip":
        return f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if k == "port":
        return str(rng.randint(1024, 65535))
    if k == "user":
        return rng.choice(USERS) if rng.random() < 0.7 else f"user{rng.randint(0, 10**6)}"
    if k.startswith("n"):
        d = int(k[1:])
        return str(rng.randint(10 ** (d - 1), 10 ** d - 1))
    if k == "d1":
        return str(rng.randint(0, 9))
    if k == "blk":
        return str(rng.randint(-(2**63), 2**63 - 1))
    if k == "path":
        return "/" + "/".join(rng.choice(["var", "log", "data", "srv", "tmp", "opt", "app", f"d{rng.randint(0, 999)}"]) for _ in range(rng.randint(1, 5)))
    if k == "status":
        return rng.choice(["200", "201", "204", "301", "404", "500", "503"])
    if k == "size":
        return f"{rng.randint(1, 999)}{rng.choice(['B', 'KB', 'MB', 'GB'])}"
    if k == "dur":
        return f"{rng.randint(1, 9999)}{rng.choice(['ms', 's', 'us'])}"
    if k == "task":
        return f"{rng.randint(0, 999)}.{rng.randint(0, 9)}"
    if k in ("state", "state2"):
        return rng.choice(STATES)
    if k == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128)))
    if k == "ts":
        return f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
    if k == "proc":
        return rng.choice(PROCS)
    if k == "dev":
        return f"/dev/sd{rng.choice('abcd')}{rng.randint(1, 9)}"
    if k == "pct":
        return str(rng.randint(0, 100))
    if k == "cls":
        return rng.choice(CLSES)
    if k == "meth":
        return rng.choice(["run", "handle", "apply", "close"])
    if k == "url":
        return f"https://cdn{rng.randint(1, 9)}.example.com/assets/{rng.getrandbits(32):08x}.js"
    if k == "hex":
        return f"0x{rng.getrandbits(48):012x}"
    if k == "auth":
        return rng.choice(AUTH)
    return k


def main():
    out = sys.argv[1]
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1 << 30
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 7)
    import string
    fmt = string.Formatter()
    parsed = [(s, [f for _, f, _, _ in fmt.parse(s) if f]) for s in SHAPES]
    written = 0
    with open(out, "w", encoding="utf-8") as f:
        buf = []
        while written < size:
            s, fields = parsed[min(int(rng.paretovariate(1.2)) - 1, len(parsed) - 1) if rng.random() < 0.5 else rng.randrange(len(parsed))]
            line = s.format(**{k: val(rng, k) for k in fields}) + "\n"
            buf.append(line)
            written += len(line)
            if len(buf) >= 10000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))


if __name__ == "__main__":
    main()
