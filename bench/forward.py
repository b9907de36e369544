#!/usr/bin/env python3
"""Benchmark `belay forward` against `ssh -L` (issue 12, "Speed"), in one run.

Both sides forward to the *same* server through the *same* sshd processes
started by this script, and the ratios come from figures measured in this
run, the two sides interleaved in rounds (a noisy period on the shared
machine hits both). Paths:

  * loopback: a server on 127.0.0.1, forwarded through a loopback sshd
    (`target`);
  * jump: a server on 127.0.0.1 *of an isolated node* (a network namespace
    reachable only through a jump host), forwarded through `node`
    (ProxyJump jump) — what a compute node behind a login node looks like.

Measured on each path:

  1. throughput of one large download (--size MiB) through the forward:
     belay / ssh -L (target >= 0.95x);
  2. latency of a small request on a new connection (connect, 2 bytes up,
     1 byte back, close — an HTTP/1.0 request's shape): belay - ssh -L,
     median (target <= 1 ms added);
  3. (jump path) the time from the heal of a 10 s partition of the node
     (nftables in its namespace) until a new connection through the same,
     untouched forward answers (target <= 3 s).

The belay side is the release `belay` with a warm daemon (`belay forward`
returns once it listens); the ssh side is `ssh -N -L` started once per path.
The test hosts are bench/ssh.py's (private keys, known_hosts and config;
free port; root's home a tmpfs in each sshd's mount namespace). Run as root:

    python3 bench/forward.py [--size 256] [--n 200] [--rounds 3] [--no-jump]

Everything it started is stopped at the end and its directory removed.
"""
import argparse
import importlib.util
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("sshbench", os.path.join(ROOT, "bench", "ssh.py"))
sshbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sshbench)
sh = sshbench.sh

# A server that reads "N\n" and sends N bytes back (N = 1: a small request).
SERVER = r"""
import socket, sys, threading
port = int(sys.argv[1])
chunk = memoryview(b"\0" * (1 << 20))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(256)
def serve(c):
    with c:
        line = b""
        while not line.endswith(b"\n"):
            d = c.recv(64)
            if not d:
                return
            line += d
        n = int(line)
        while n > 0:
            k = min(n, len(chunk))
            c.sendall(chunk[:k])
            n -= k
while True:
    c, _ = s.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

SERVER_PORT = 47011


def build():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    sh(["cargo", "build", "--release", "-q", "-p", "belay-cli"], cwd=ROOT)
    return os.path.join(target, "release", "belay")


def start_server(netns=None):
    cmd = [sys.executable, "-c", SERVER, str(SERVER_PORT)]
    if netns:
        cmd = ["ip", "netns", "exec", netns] + cmd
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_port(port, within=20):
    end = time.time() + within
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def request(port, n, timeout=30):
    """Asks for n bytes through 127.0.0.1:port; returns seconds taken."""
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(f"{n}\n".encode())
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = c.recv_into(view)
            if k == 0:
                raise RuntimeError(f"closed after {got} of {n} bytes")
            got += k
    return time.perf_counter() - t


class Belay:
    def __init__(self, exe, home, cfg):
        self.exe = exe
        self.env = dict(os.environ, BELAY_HOME=home, BELAY_SSH_CONFIG=cfg)
        self.env.pop("BELAY_NO_DAEMON", None)

    def __call__(self, *args):
        r = subprocess.run([self.exe, *args], env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"belay {args}: {r.stderr.strip()}")
        return r.stdout


def daemon_pid(b):
    """The pid of the daemon serving `b`'s home (from `serve --status`)."""
    try:
        v = json.loads(b("serve", "--status", "--json"))
        return [int(v["pid"])]
    except (RuntimeError, ValueError, KeyError, TypeError):
        return []


def belay_forward(b, host):
    v = json.loads(b("forward", host, str(SERVER_PORT), "--json"))[0]
    port = int(v["local"].rsplit(":", 1)[1])
    wait_port(port)
    return port


def ssh_forward(cfg, host):
    port = sshbench.free_port()
    p = subprocess.Popen(["ssh", "-F", cfg, "-N", "-o", "ExitOnForwardFailure=yes",
                          "-L", f"{port}:127.0.0.1:{SERVER_PORT}", host],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


def cpu_seconds(pids):
    """User + system CPU seconds the processes and their children used so
    far (children: a ProxyJump's `ssh -W` under `ssh -L`)."""
    tick = os.sysconf("SC_CLK_TCK")
    family, total = set(pids), 0.0
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                stats[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
            except (OSError, IndexError):
                pass
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in stats.items():
            if ppid in family and pid not in family:
                family.add(pid)
                grew = True
    for pid in family:
        if pid in stats:
            total += stats[pid][1] / tick
    return total


def measure(path, bport, sport, a, rows, bpids=(), spids=()):
    size = a.size << 20
    request(bport, size)  # warm both (window growth, first channel)
    request(sport, size)
    tb, ts = [], []
    cpu_b = cpu_s = 0.0
    for _ in range(a.rounds):
        c = cpu_seconds(bpids)
        tb.append(request(bport, size))
        cpu_b += cpu_seconds(bpids) - c
        c = cpu_seconds(spids)
        ts.append(request(sport, size))
        cpu_s += cpu_seconds(spids) - c
    mb = lambda t: size / t / 1e6
    if bpids and spids:
        # CPU per GiB on the client side: what throughput comes down to
        # when both cores are busy, and far steadier than wall time on a
        # shared machine.
        gib = a.rounds * size / (1 << 30)
        rows.append((f"{path}: client CPU per GiB, belay daemon / ssh (+ ssh -W)",
                     f"{cpu_b / gib:.2f} / {cpu_s / gib:.2f} s", ""))
    b_mbs, s_mbs = statistics.median(mb(t) for t in tb), statistics.median(mb(t) for t in ts)
    rows.append((f"{path}: throughput {a.size} MiB, belay forward", f"{b_mbs:.0f} MB/s", ""))
    rows.append((f"{path}: throughput {a.size} MiB, ssh -L", f"{s_mbs:.0f} MB/s", ""))
    rows.append((f"{path}: throughput ratio belay / ssh -L", f"{b_mbs / s_mbs:.2f}x",
                 ">= 0.95x"))
    lb, ls = [], []
    per = max(1, a.n // a.rounds)
    for _ in range(a.rounds):
        lb += [request(bport, 1) * 1000 for _ in range(per)]
        ls += [request(sport, 1) * 1000 for _ in range(per)]
    mb_, ms_ = statistics.median(lb), statistics.median(ls)
    p90 = lambda v: sorted(v)[int(len(v) * 0.9)]
    rows.append((f"{path}: small request, belay forward (median / p90)",
                 f"{mb_:.2f} / {p90(lb):.2f} ms", ""))
    rows.append((f"{path}: small request, ssh -L (median / p90)",
                 f"{ms_:.2f} / {p90(ls):.2f} ms", ""))
    rows.append((f"{path}: added latency (median)", f"{mb_ - ms_:+.2f} ms", "<= 1 ms"))


def partition_heal(lab, bport, seconds):
    """Cuts the node off for `seconds`, heals it, and returns the seconds
    until a new connection through the untouched forward answers."""
    ns = lab.namespaces[1]
    script = ("nft -f - <<'EOF'\ntable inet belay_fwd_bench {\n"
              "  chain in { type filter hook input priority 0; policy drop; }\n"
              "  chain out { type filter hook output priority 0; policy drop; }\n}\nEOF\n")
    sh(["ip", "netns", "exec", ns, "/bin/sh", "-c", script])
    time.sleep(seconds)
    sh(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "belay_fwd_bench"])
    healed = time.perf_counter()
    while time.perf_counter() - healed < 120:
        try:
            request(bport, 1, timeout=2)
            return time.perf_counter() - healed
        except (OSError, RuntimeError):
            time.sleep(0.02)
    raise RuntimeError("no answer 120 s after the heal")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=256, help="MiB per download")
    ap.add_argument("--n", type=int, default=200, help="small requests per side")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    ap.add_argument("--no-jump", action="store_true", help="loopback path only")
    ap.add_argument("--cipher", help="a Ciphers line for both sides (default: OpenSSH's)")
    a = ap.parse_args()
    sshbench.prerequisites()
    exe = build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-forward.")
    lo, lab, procs, b = None, None, [], None
    rows = []
    try:
        key = os.path.join(tmp, "id_bench")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", key])
        pub = open(key + ".pub").read()
        lo = sshbench.Sshd(tmp, "loopback", pub)
        if not a.no_jump:
            lab = sshbench.NetLab(tmp, pub)
        extra = f"  Ciphers {a.cipher}\n" if a.cipher else ""
        cfg = sshbench.write_client_files(tmp, key, lo, lab, extra)
        b = Belay(exe, os.path.join(tmp, "home"), cfg)
        procs.append(start_server())
        wait_port(SERVER_PORT)
        print(f"OpenSSH {sshbench.ssh_version()}; {a.rounds} alternating rounds; "
              f"{os.cpu_count()} CPUs; ciphers: {a.cipher or 'default'}\n")

        bport = belay_forward(b, "target")
        p, sport = ssh_forward(cfg, "target")
        procs.append(p)
        measure("loopback", bport, sport, a, rows, daemon_pid(b), [p.pid])

        if lab:
            procs.append(start_server(lab.namespaces[1]))
            time.sleep(0.5)
            bport = belay_forward(b, "node")
            p, sport = ssh_forward(cfg, "node")
            procs.append(p)
            measure("jump", bport, sport, a, rows, daemon_pid(b), [p.pid])
            heal = partition_heal(lab, bport, 10)
            rows.append(("jump: new connection answers after a 10 s partition heals",
                         f"{heal:.2f} s", "<= 3 s"))
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if b:
            subprocess.run([exe, "serve", "--stop"], env=b.env, capture_output=True)
        sshbench.close_hosts(tmp, lo, lab)
    w = max(len(r[0]) for r in rows)
    for what, value, target in rows:
        print(f"{what:<{w}}  {value:>18}  {target}")


if __name__ == "__main__":
    main()
