#!/usr/bin/env python3
"""Benchmark `belay exec` against pssh (issue 15, "Fan-out"), in one run.

Both sides run `true` on the same hosts, served by the same sshds started
by this script, alternating runs; ratios come from this run's medians.

  1. 100 hosts: 100 loopback listeners (7 sshds with up to 16 `Port`
     lines each: sshd's MAX_LISTEN_SOCKS), 100 aliases (h000..h099): `belay exec 'h*' -- true` vs `parallel-ssh -p 32`.
     Target: >= 3x faster.
  2. 100 nodes behind one jump host (network namespaces; the node
     namespace is reachable only through the jump host): 100 ports there
     (7 sshds), aliases n000..n099 with `ProxyJump jump`:
     `belay exec 'n*' -- true` (one shared, authenticated jump connection)
     vs `parallel-ssh -p 32` (each ssh makes its own ProxyJump connection).
     Target: >= 5x faster, and exactly one authentication on the jump host
     per belay run ("Accepted publickey" lines in that sshd's log).

Every sshd here has `MaxStartups 300:30:400`: with OpenSSH's default
(10:30:100) pssh's 32 parallel connections (and the 32 ProxyJump
connections to the jump host) are partly dropped and pssh reports
failures; belay paces its handshakes per sshd (8 at a time) and needs no
such change. Both sides must succeed on all 100 hosts in every sample.

Hosts are bench/ssh.py's private test hosts (own keys, known_hosts, config
file with BatchMode, root's home an empty tmpfs in each sshd's mount
namespace). Run as root on Debian 12; installs `pssh` with apt-get if
missing; builds the release binary:

    python3 bench/exec.py [--n 5] [--hosts 100]
"""
import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("sshbench", os.path.join(ROOT, "bench", "ssh.py"))
sshbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sshbench)
sh, stats = sshbench.sh, sshbench.stats

MAX_STARTUPS = "MaxStartups 300:30:400"
BASE_PORT = 2200


PORTS_PER_SSHD = 16  # sshd's MAX_LISTEN_SOCKS


class Listeners:
    """`count` ports from `first` served by as many sshds as it takes (one
    sshd listens on 16 sockets at most); `host_key(port)` for known_hosts."""

    def __init__(self, base, name, client_pub, first, count, netns=None, listen="127.0.0.1"):
        self.sshds = []
        for i, start in enumerate(range(first, first + count, PORTS_PER_SSHD)):
            n = min(PORTS_PER_SSHD, first + count - start)
            self.sshds.append(MultiSshd(base, f"{name}{i}", client_pub, start, n,
                                        netns=netns, listen=listen))

    def host_key(self, port):
        return next(s.host_key for s in self.sshds if s.first <= port < s.first + s.count)

    def stop(self):
        for s in self.sshds:
            s.stop()


class MultiSshd(sshbench.Sshd):
    """bench/ssh.py's Sshd listening on `count` ports from `first`, with
    extra sshd_config lines."""

    def __init__(self, base, name, client_pub, first, count, netns=None, listen="127.0.0.1"):
        self.first, self.count = first, count
        super().__init__(base, name, client_pub, netns=netns, listen=listen)

    def _launch(self):
        # bench/ssh.py's launch, with our ports and MaxStartups.
        self.port = self.first
        d, conf = self.dir, os.path.join(self.dir, "sshd_config")
        ports = "".join(f"Port {p}\n" for p in range(self.first, self.first + self.count))
        with open(conf, "w") as f:
            f.write(f"{ports}ListenAddress {self.listen}\nHostKey {d}/host_key\n"
                    f"PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n"
                    f"{MAX_STARTUPS}\n")
        script = (f"set -e\nmount -t overlay overlay -o lowerdir=/run,upperdir={d}/ru,"
                  f"workdir={d}/rw /run\ninstall -d -m 0755 /run/sshd\n"
                  "mount -t tmpfs -o mode=0700 tmpfs /root\n"
                  f"exec {sshbench.SSHD} -f {conf} -E {d}/log\n")
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, "/bin/sh", "-c", script]
        else:
            cmd = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"sshd failed: {r.stderr.strip()} {self.log()}")
        pidfile = os.path.join(d, "sshd.pid")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if os.path.exists(pidfile) and open(pidfile).read().strip():
                self.pid = int(open(pidfile).read().strip())
                return
            time.sleep(0.01)
        raise RuntimeError(f"sshd wrote no pid file: {self.log()}")


def ensure_pssh():
    if shutil.which("parallel-ssh"):
        return
    print("installing pssh", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-qq", "pssh"], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def build():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    sh(["cargo", "build", "--release", "-q", "-p", "belay-cli"], cwd=ROOT)
    return os.path.join(target, "release", "belay")


def restart_jump(lab, tmp, pub):
    """The lab's jump sshd again, with MAX_STARTUPS (see the docs)."""
    lab.jump.stop()
    lab.sshds.remove(lab.jump)
    lab.jump = MultiSshd(tmp, "jump2", pub, 22, 1, netns=f"{lab.prefix}-jump", listen="0.0.0.0")
    lab.sshds.append(lab.jump)


def write_config(tmp, key, lo, lab, nodes, n):
    kh = os.path.join(tmp, "known_hosts")
    with open(kh, "w") as f:
        for p in range(BASE_PORT, BASE_PORT + n):
            f.write(f"[127.0.0.1]:{p} {lo.host_key(p)}\n")
            f.write(f"[{lab.node_addr}]:{p} {nodes.host_key(p)}\n")
        f.write(f"{lab.jump_addr} {lab.jump.host_key}\n")
    text = f"Host jump\n  HostName {lab.jump_addr}\n"
    for i in range(n):
        text += f"Host h{i:03d}\n  HostName 127.0.0.1\n  Port {BASE_PORT + i}\n"
        text += f"Host n{i:03d}\n  HostName {lab.node_addr}\n  Port {BASE_PORT + i}\n  ProxyJump jump\n"
    text += (f"Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
             f"  IdentityAgent none\n  BatchMode yes\n  UserKnownHostsFile {kh}\n"
             "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
             "  ControlMaster no\n")
    cfg = os.path.join(tmp, "ssh_config")
    with open(cfg, "w") as f:
        f.write(text)
    return cfg


def accepted(sshd):
    return sshd.log().count("Accepted publickey")


def run_belay(exe, env, pattern, n):
    t = time.perf_counter()
    r = subprocess.run([exe, "exec", pattern, "--", "true"], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True)
    ms = (time.perf_counter() - t) * 1000
    if r.returncode != 0 or f"exec on {n} hosts: {n} ok" not in r.stderr:
        raise RuntimeError(f"belay exec {pattern} failed ({r.returncode}): {r.stderr[-2000:]}")
    return ms


def run_pssh(cfg, hosts_file, n, tmp):
    t = time.perf_counter()
    r = subprocess.run(["parallel-ssh", "-p", "32", "-t", "120", "-h", hosts_file,
                        "-x", f"-F {cfg}", "true"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, cwd=tmp)
    ms = (time.perf_counter() - t) * 1000
    ok = r.stdout.count("[SUCCESS]")
    if r.returncode != 0 or ok != n:
        raise RuntimeError(f"pssh failed ({r.returncode}, {ok}/{n} ok): {r.stdout[-2000:]}{r.stderr[-500:]}")
    return ms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5, help="runs per side and scenario")
    ap.add_argument("--hosts", type=int, default=100)
    a = ap.parse_args()
    sshbench.prerequisites()
    ensure_pssh()
    exe = build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-exec.")
    lo = lab = nodes = None
    try:
        key = os.path.join(tmp, "id_bench")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", key])
        pub = open(key + ".pub").read()
        lo = Listeners(tmp, "loopback", pub, BASE_PORT, a.hosts)
        lab = sshbench.NetLab(tmp, pub)
        restart_jump(lab, tmp, pub)
        nodes = Listeners(tmp, "nodes", pub, BASE_PORT, a.hosts, netns=f"{lab.prefix}-n1",
                          listen="0.0.0.0")
        lab.sshds.extend(nodes.sshds)
        cfg = write_config(tmp, key, lo, lab, nodes, a.hosts)
        home = tempfile.mkdtemp(prefix="belay-home.", dir=tmp)
        env = dict(os.environ, BELAY_HOME=home, BELAY_SSH_CONFIG=cfg, BELAY_NO_DAEMON="1")
        env.pop("BELAY_FAILPOINT", None)
        files = {}
        for prefix in ("h", "n"):
            files[prefix] = os.path.join(tmp, f"hosts-{prefix}")
            with open(files[prefix], "w") as f:
                f.write("".join(f"{prefix}{i:03d}\n" for i in range(a.hosts)))

        rows = []
        for name, prefix, target in ((f"{a.hosts} loopback hosts", "h", 3.0),
                                     (f"{a.hosts} nodes behind one jump", "n", 5.0)):
            bel, ps, auths = [], [], []
            for _ in range(a.n):
                before = accepted(lab.jump)
                bel.append(run_belay(exe, env, f"{prefix}*", a.hosts))
                auths.append(accepted(lab.jump) - before)
                ps.append(run_pssh(cfg, files[prefix], a.hosts, tmp))
            jump_pssh = accepted(lab.jump)
            rows.append((name, stats(bel), stats(ps), target, auths, prefix, jump_pssh))

        pv = subprocess.run(["parallel-ssh", "--version"], capture_output=True, text=True)
        print(f"\n`true` on {a.hosts} hosts: belay exec (default --parallel 32) vs "
              f"pssh {(pv.stdout or pv.stderr).strip()} -p 32, OpenSSH {sshbench.ssh_version()}, "
              f"n={a.n} alternating runs, same sshds\n")
        print(f"{'scenario':28} {'belay med':>10} {'p90':>8} {'pssh med':>10} {'p90':>8} "
              f"{'speed-up':>9}  target  jump auths per belay run")
        for name, (bm, bp), (pm, pp), target, auths, prefix, _ in rows:
            ratio = pm / bm
            verdict = "ok" if ratio >= target else "MISSED"
            jump = ",".join(map(str, auths)) if prefix == "n" else "-"
            print(f"{name:28} {bm:9.0f}ms {bp:7.0f}ms {pm:9.0f}ms {pp:7.0f}ms {ratio:8.1f}x  "
                  f">={target:.0f}x {verdict:6} {jump}")
        total = accepted(lab.jump)
        belay_auths = sum(rows[1][4])
        print(f"\njump sshd: {total} 'Accepted publickey' lines in all: {belay_auths} from "
              f"{a.n} belay runs, {total - belay_auths} from {a.n} pssh runs "
              f"({(total - belay_auths) / max(1, a.n):.0f} per pssh run)")
    finally:
        for s in ([lo] if lo else []):
            s.stop()
        if lab:
            lab.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
