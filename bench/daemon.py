#!/usr/bin/env python3
"""Benchmark the belay daemon (issue 11, "Speed"), in one run.

Every command goes through a warm daemon (`belay serve`, started by the
first command, as for a user) against one loopback sshd started by this
script (the same private test host as bench/ssh.py: own keys, free port,
root's home an empty tmpfs inside its mount namespace). Measured:

  1. attached `belay run target -- true` vs `ssh target true` (target
     <= 0.3x) and vs `ssh -S ctl target true`, an OpenSSH ControlMaster
     started once (target <= 1.5x); the three interleaved in rounds so a
     noisy period on the shared machine hits all of them; then belay and
     the ControlMaster each alone, 300 ms of quiet before every run.
  2. `belay run -d target -- true` (target <= 20 ms).
  3. `belay ps` with 100 live jobs on 10 hosts (10 aliases of the sshd):
     wall time (target <= 50 ms) and the SSH connections the sshd accepted
     meanwhile (its log's "Accepted publickey" lines; target 0).
  4. a detached job's `--output` on local disk after the job ended, with
     no CLI running (the job writes its own end time; target <= 5 s).
  5. the daemon at rest with 1,000 live jobs on the 10 hosts: CPU (utime +
     stime from /proc over --rest seconds) and RSS (targets <= 1 % of a
     core, <= 50 MB).
  6. ten dashboards' live views (`GET /v1/events`, held open) on those
     1,000 live jobs: the remote commands the daemon asks of its hosts
     (its `remote_commands` count) over --rest seconds without them and
     with them (issue 15: they add none).

Run as root (sshd, mount namespaces); builds the release binary first:

    python3 bench/daemon.py [--n 30] [--rounds 3] [--rest 30] [--jobs 1000] [--rest-only] [--exe PATH]

(--rest-only: only the figures with many live jobs, 5 and 6; --exe PATH:
that belay binary, not a fresh build, e.g. an earlier commit's to compare.)

Everything it started is stopped at the end (the jobs cancelled, the
daemon stopped, the sshd killed) and its directory removed.
"""
import argparse
import sqlite3
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
HOSTS = [f"h{i}" for i in range(10)]

# The test host and helpers of bench/ssh.py.
_spec = importlib.util.spec_from_file_location("sshbench", os.path.join(ROOT, "bench", "ssh.py"))
sshbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sshbench)
sh, stats = sshbench.sh, sshbench.stats


def build():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    sh(["cargo", "build", "--release", "-q", "-p", "belay-cli"], cwd=ROOT)
    return os.path.join(target, "release", "belay")


def write_config(tmp, key, lo):
    """bench/ssh.py's client files, with 10 more aliases of the sshd."""
    cfg = sshbench.write_client_files(tmp, key, lo, None)
    aliases = "".join(f"Host {h}\n  HostName 127.0.0.1\n  Port {lo.port}\n" for h in HOSTS)
    with open(cfg) as f:
        text = f.read()
    with open(cfg, "w") as f:
        f.write(aliases + text)
    return cfg


class Belay:
    def __init__(self, exe, home, cfg):
        self.exe = exe
        self.env = dict(os.environ, BELAY_HOME=home, BELAY_SSH_CONFIG=cfg)
        self.env.pop("BELAY_NO_DAEMON", None)
        self.env.pop("BELAY_FAILPOINT", None)
        self.home = home

    def __call__(self, *args):
        r = subprocess.run([self.exe, *args], env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"belay {args} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def times(self, args, n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            self(*args)
            out.append((time.perf_counter() - t) * 1000)
        return out

    def daemon_pid(self):
        return json.loads(self("serve", "--status", "--json"))["pid"]


def daemon_info(home):
    """GET /v1/daemon on the daemon's socket."""
    return json.loads(socket_get(home, "/v1/daemon").split(b"\r\n\r\n", 1)[1])


def socket_get(home, path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(home, "belay.sock"))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: belay\r\nConnection: close\r\n\r\n".encode())
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
    s.close()
    return reply


def open_event_stream(home):
    """A dashboard's live view: GET /v1/events, held open; its snapshot read."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(home, "belay.sock"))
    s.sendall(b"GET /v1/events HTTP/1.1\r\nHost: belay\r\n\r\n")
    s.settimeout(30)
    got = b""
    while b"snapshot" not in got:
        chunk = s.recv(1 << 20)
        if not chunk:
            raise RuntimeError(f"/v1/events ended: {got[:200]!r}")
        got += chunk
    s.setblocking(False)
    return s


def remote_commands_over(home, seconds, streams=()):
    """Remote commands the daemon asked for during `seconds` (the streams
    drained meanwhile, as a browser would)."""
    c0, t0 = daemon_info(home)["remote_commands"], time.time()
    while time.time() - t0 < seconds:
        for st in streams:
            try:
                while st.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass
        time.sleep(0.2)
    return daemon_info(home)["remote_commands"] - c0


def accepted(lo):
    return lo.log().count("Accepted publickey")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_running(b, ids, within=120):
    """Until every job runs; a job that ended instead (none should: they
    sleep an hour) is said and no longer waited for."""
    want, deadline = set(ids), time.time() + within
    while True:
        jobs = {j["id"]: j for j in json.loads(b("ps", "--all", "--json")) if j["id"] in want}
        ended = [j for j in jobs.values() if j["state"] not in
                 ("queued", "submitting", "pending", "running", "held")]
        for j in ended:
            print(f"!! job {j['id']} ended {j['state']}: {j['reason']}")
            want.discard(j["id"])
        if sum(j["state"] == "running" for j in jobs.values()) == len(want):
            return
        if time.time() > deadline:
            raise RuntimeError("the jobs never all ran")
        time.sleep(0.5)


def row(what, ms, target=None):
    med, p90 = stats(ms)
    t = f"  target {target}" if target else ""
    print(f"{what:<52} median {med:8.1f} ms  p90 {p90:8.1f} ms  (n={len(ms)}){t}")
    return med


def partition_heal(b, lo, seconds):
    """A detached job on `target` ends while every packet to and from the
    sshd is dropped (nftables, our own table) for `seconds`; returns the
    seconds from the heal until the store says `succeeded`, read straight
    from the database (no belay command runs meanwhile: a command would
    reconcile it itself)."""
    job = b("run", "-d", "target", "--", "sleep 3; echo done").strip()
    table = f"belaybench{os.getpid()}"
    sshbench.sh(["nft", "add", "table", "inet", table])
    try:
        sshbench.sh(["nft", "add", "chain", "inet", table, "out",
                     "{ type filter hook output priority 0 ; }"])
        for way in ("dport", "sport"):
            sshbench.sh(["nft", "add", "rule", "inet", table, "out", "tcp", way,
                         str(lo.port), "drop"])
        time.sleep(seconds)
    finally:
        sshbench.sh(["nft", "delete", "table", "inet", table])
    healed = time.time()
    db = sqlite3.connect(os.path.join(b.home, "belay.db"))
    try:
        while True:
            (state,) = db.execute("SELECT state FROM jobs WHERE id = ?", (job,)).fetchone()
            if state == "succeeded":
                return time.time() - healed
            if state in ("failed", "lost", "cancelled"):
                raise RuntimeError(f"job {job} ended {state} across the partition")
            if time.time() - healed > 120:
                raise RuntimeError(f"job {job} still {state} 120 s after the heal")
            time.sleep(0.05)
    finally:
        db.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30, help="samples per timed command")
    ap.add_argument("--rounds", type=int, default=3, help="alternating chunks per comparison")
    ap.add_argument("--rest", type=int, default=30, help="seconds the daemon is watched at rest")
    ap.add_argument("--jobs", type=int, default=1000, help="live jobs for the rest figure")
    ap.add_argument("--partition", type=int, default=30, help="seconds the host is cut off")
    ap.add_argument("--rest-only", action="store_true", help="only the figures with many live jobs")
    ap.add_argument("--exe", help="this belay binary instead of building one (to compare two builds)")
    a = ap.parse_args()
    sshbench.prerequisites()
    exe = a.exe or build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-daemon.")
    lo, b, live = None, None, []
    try:
        key = os.path.join(tmp, "id_bench")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", key])
        lo = sshbench.Sshd(tmp, "loopback", open(key + ".pub").read())
        cfg = write_config(tmp, key, lo)
        b = Belay(exe, os.path.join(tmp, "home"), cfg)
        ssh = sshbench.Bench(None, cfg, tmp, a.rounds)
        b("run", "target", "--", "true")  # starts the daemon, warms its connection
        pid = b.daemon_pid()
        print(f"belay daemon pid {pid}; OpenSSH {sshbench.ssh_version()}; "
              f"{a.rounds} alternating rounds\n")

        if not a.rest_only:
            other_figures(a, b, ssh, lo, live)
        rest_figures(a, b, pid, live)
    finally:
        if b and live:
            try:
                b("cancel", "--grace", "1", *live)
            except RuntimeError as e:
                print(f"cancel: {e}", file=sys.stderr)
        if b:
            subprocess.run([exe, "serve", "--stop"], env=b.env, capture_output=True)
        if lo:
            lo.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def other_figures(a, b, ssh, lo, live):
    """Figures 1-4 and the partition; the jobs they leave live join `live`."""
    ctl = None
    try:
        # 1. attached run vs ssh and a ControlMaster
        ctl = ssh.control_master("target")
        bt, st, ct = ssh.interleaved(
            a.n, lambda k: b.times(["run", "target", "--", "true"], k),
            lambda k: ssh.ssh_times(["target", "true"], k),
            lambda k: ssh.ssh_times(["-S", ctl, "target", "true"], k))
        # The same two, each alone: 300 ms of quiet before every run, in
        # turn. Back to back, work a run leaves behind (the pool's
        # replacement for the shell the follower took) lands in the next.
        bq, cq = [], []
        for _ in range(a.n):
            time.sleep(0.3)
            bq += b.times(["run", "target", "--", "true"], 1)
            time.sleep(0.3)
            cq += ssh.ssh_times(["-S", ctl, "target", "true"], 1)
        ssh.stop_master("target", ctl)
        ctl = None
        mb = row("belay run target -- true (warm daemon)", bt)
        ms = row("ssh target true", st)
        mc = row("ssh -S ctl target true (ControlMaster)", ct)
        print(f"{'  ratio to ssh':<52} {mb / ms:.2f}x  target <= 0.3x")
        print(f"{'  ratio to ControlMaster':<52} {mb / mc:.2f}x  target <= 1.5x")
        mbq = row("  each alone, 300 ms apart: belay run", bq)
        mcq = row("  each alone, 300 ms apart: ssh -S ctl", cq)
        print(f"{'  ratio to ControlMaster, each alone':<52} {mbq / mcq:.2f}x  target <= 1.5x")

        # 2. detached submit
        row("belay run -d target -- true", b.times(["run", "-d", "target", "--", "true"], a.n),
            "<= 20 ms")

        # 3. ps with 100 live jobs on 10 hosts, no new connection
        for h in HOSTS:
            live += [b("run", "-d", h, "--", "sleep 3600").strip() for _ in range(10)]
        wait_running(b, live)
        before = accepted(lo)
        row("belay ps (100 live jobs on 10 hosts)", b.times(["ps"], a.n), "<= 50 ms")
        print(f"{'  SSH connections accepted during those ps':<52} {accepted(lo) - before}"
              "  target 0")

        # 4. a detached job's outputs, fetched with no CLI running
        lags = []
        for _ in range(5):
            job = b("run", "-d", "--output", "end.txt", "target", "--",
                    "sleep 0.3; date +%s.%N > end.txt").strip()
            path = os.path.join(b.home, "results", job, "end.txt")
            deadline = time.time() + 30
            while not os.path.exists(path):
                if time.time() > deadline:
                    raise RuntimeError(f"outputs of {job} never fetched")
                time.sleep(0.01)
            seen = time.time()
            time.sleep(0.05)  # let the copy finish before reading it
            lags.append((seen - float(open(path).read())) * 1000)
        row("detached --output on disk after the job's end", lags, "<= 5000 ms")

        # 5. a partition that heals: the job's true state in the store, no CLI
        heal_lag = partition_heal(b, lo, a.partition)
        print(f"{f'state in the store after a {a.partition} s partition heals':<52} "
              f"{heal_lag:.1f} s (no CLI running)  target <= 10 s")
    finally:
        if ctl:
            ssh.stop_master("target", ctl)


def rest_figures(a, b, pid, live):
    """The daemon with --jobs live jobs: at rest, then under ten dashboards."""
    if True:
        # 6. the daemon at rest with many live jobs
        for i in range(a.jobs - len(live)):
            live.append(b("run", "-d", HOSTS[i % len(HOSTS)], "--", "sleep 3600").strip())
        wait_running(b, live, within=600)
        time.sleep(5)  # the passes of the start-up settle
        hz = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.time(), cpu_ticks(pid)
        rss = []
        while time.time() - t0 < a.rest:
            rss.append(rss_kib(pid))
            time.sleep(1)
        cpu = (cpu_ticks(pid) - c0) / hz / (time.time() - t0) * 100
        print(f"{f'daemon at rest, {len(live)} live jobs on 10 hosts':<52} CPU {cpu:.2f} % of a "
              f"core over {a.rest} s; RSS max {max(rss) / 1024:.1f} MiB  "
              "target <= 1 %, <= 50 MB")

        # 7. ten dashboards open on those jobs: remote commands with and without
        quiet = remote_commands_over(b.home, a.rest)
        streams = [open_event_stream(b.home) for _ in range(10)]
        try:
            info = daemon_info(b.home)
            watched = remote_commands_over(b.home, a.rest, streams)
            readings = daemon_info(b.home)["watch_readings"] - info["watch_readings"]
        finally:
            for st in streams:
                st.close()
        print(f"{f'remote commands in {a.rest} s, {len(live)} live jobs':<52} "
              f"{quiet} without dashboards, {watched} with ten open "
              f"({info['event_streams']} streams, {readings} store readings)  target: no more")


if __name__ == "__main__":
    main()
