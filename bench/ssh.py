#!/usr/bin/env python3
"""Benchmark belay-ssh against OpenSSH (issue 3, "Speed"), in one run.

Both sides talk to the *same* sshd processes started by this script, and the
ratios are computed from figures measured in this run. Measured, each over
many repetitions (median and p90):

  1. warm round trip: belay `run_script("true")` on an established client
     vs OpenSSH ControlMaster `ssh -S ctl target true` (master started once).
     Target <= 0.5x.
  2. cold connect + first command: new belay client + `run_script("true")`
     vs `ssh target true`. Target <= 1.2x.
  3. the same through one jump host (network namespaces: the node is
     reachable only via the jump host) vs `ssh node true` with ProxyJump.
     Target <= 1.2x.
  4. with a remote `.bashrc` that sleeps 0.5 s: belay warm `run_script`
     stays < 20 ms while `ssh target true` pays the 0.5 s.
  5. the status probe of 1,000 live jobs on one host, in one round trip
     (belay-core's reconcile through the SSH transport: example
     `crates/belay-core/examples/probe_bench.rs`). Target <= 200 ms; a warm
     ControlMaster `true` is printed beside it as the floor.

Informational rows: belay cold including process start-up (the example
binary run once per sample, as a CLI would pay), and `ssh` forced to the
key exchange belay negotiates with this sshd (curve25519-sha256: OpenSSH
9.2 has no mlkem768x25519, and its client prefers sntrup761x25519).
A last section prints belay's own connect breakdown (kex, auth, first
SSH-level round trip) for the ~45 ms first-round-trip question.

The belay side is the example `crates/belay-ssh/examples/ssh_bench.rs`
(release build; CARGO_TARGET_DIR is honoured). The test hosts are private:
a `mktemp -d` directory, free port, own host and client keys, an ssh config
file (IdentitiesOnly, IdentityAgent none, BatchMode, own known_hosts), and
root's home replaced by an empty tmpfs inside each sshd's mount namespace,
so the machine's own `.bashrc` does not pollute the timings. Everything is
removed at the end; only the processes this script started are killed.

Run as root on Debian 12 (installs openssh-server/-client and iproute2 with
apt-get if missing):

    python3 bench/ssh.py [--n 100] [--cold-n 40] [--rounds 4] [--json FILE]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SSHD = "/usr/sbin/sshd"
NEEDED = {SSHD: "openssh-server", "/usr/bin/ssh": "openssh-client",
          "/usr/bin/ssh-keygen": "openssh-client"}


# ---------------------------------------------------------------- helpers

def sh(cmd, **kw):
    """Run a command (list or shell string), fail loudly with its stderr."""
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def prerequisites():
    if os.geteuid() != 0:
        sys.exit("bench/ssh.py needs root (sshd privilege separation, network namespaces)")
    missing = sorted({pkg for path, pkg in NEEDED.items() if not os.path.exists(path)})
    if not shutil.which("ip"):
        missing.append("iproute2")
    if missing:
        print(f"installing {' '.join(missing)}", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env, stdout=subprocess.DEVNULL)


def build_example():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-ssh",
                    "--example", "ssh_bench"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-core",
                    "--example", "probe_bench"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "release", "examples", "ssh_bench")


def probe_bench(cfg, tmp, jobs):
    """N live jobs on `target`, then R timed reconciles (one probe each)."""
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    tool = os.path.join(target, "release", "examples", "probe_bench")
    home = tempfile.mkdtemp(prefix="belay-home.", dir=tmp)
    env = dict(os.environ, BELAY_HOME=home, BELAY_SSH_CONFIG=cfg)
    out = subprocess.run([tool, "target", str(jobs), "15"], env=env, check=True,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True)
    result = json.loads(out.stdout)
    assert result["running"] == jobs, f"not all jobs running: {result}"
    return result


def stats(samples):
    """(median, p90) of a list of milliseconds."""
    s = sorted(samples)
    return statistics.median(s), s[max(0, int(round(len(s) * 0.9)) - 1)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(root):
    """Pids below `root` (from /proc), children first."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p and c not in out:
                out.append(c)
                frontier.append(c)
    return out


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------- test hosts

class Sshd:
    """An sshd with its own directory, host key and authorized_keys; root's
    home is an empty tmpfs in its private mount namespace. `netns`: run in
    that network namespace on port 22 (else loopback, free port)."""

    def __init__(self, base, name, client_pub, netns=None, listen="127.0.0.1"):
        self.dir = os.path.join(base, name)
        for sub in ("ru", "rw"):
            os.makedirs(os.path.join(self.dir, sub))
        key = os.path.join(self.dir, "host_key")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-host", "-f", key])
        with open(key + ".pub") as f:
            self.host_key = " ".join(f.read().split()[:2])
        with open(os.path.join(self.dir, "authorized_keys"), "w") as f:
            f.write(client_pub)
        self.listen, self.netns, self.pid = listen, netns, 0
        for _ in range(10):
            self.port = 22 if netns else free_port()
            try:
                self._launch()
                return
            except RuntimeError as e:
                if "Address already in use" not in str(e) or netns:
                    raise
        raise RuntimeError("no free port for sshd")

    def _launch(self):
        d, conf = self.dir, os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"Port {self.port}\nListenAddress {self.listen}\nHostKey {d}/host_key\n"
                    f"PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nPermitRootLogin prohibit-password\nLogLevel VERBOSE\n")
        script = (f"set -e\nmount -t overlay overlay -o lowerdir=/run,upperdir={d}/ru,"
                  f"workdir={d}/rw /run\ninstall -d -m 0755 /run/sshd\n"
                  "mount -t tmpfs -o mode=0700 tmpfs /root\n"
                  f"exec {SSHD} -f {conf} -E {d}/log\n")
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, "/bin/sh", "-c", script]
        else:
            cmd = ["unshare", "-m", "--propagation", "private", "/bin/sh", "-c", script]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"sshd failed: {r.stderr.strip()} {self.log()}")
        pidfile = os.path.join(d, "sshd.pid")
        for _ in range(500):
            if os.path.exists(pidfile):
                self.pid = int(open(pidfile).read().strip() or 0)
                if self.pid:
                    return
            time.sleep(0.01)
        raise RuntimeError(f"sshd wrote no pid file: {self.log()}")

    def log(self):
        try:
            return open(os.path.join(self.dir, "log")).read()
        except OSError:
            return ""

    def home_file(self, name, text):
        """Writes `name` in root's home as this sshd's sessions see it (the
        tmpfs in its mount namespace, reached through /proc/PID/root)."""
        with open(f"/proc/{self.pid}/root/root/{name}", "w") as f:
            f.write(text)

    def stop(self):
        if self.pid:
            for p in descendants(self.pid) + [self.pid]:
                kill(p)
            self.pid = 0


class NetLab:
    """A jump host reachable from the root namespace and one isolated node
    behind it (TESTBED.md recipe). Forwarding is off, and the node subnet
    is `unreachable` from the root namespace, so only the jump reaches it."""

    def __init__(self, base, client_pub):
        self.prefix = f"bb{os.getpid() % 100000:05d}"
        self.namespaces, self.route, self.sshds = [], None, []
        for k in [(os.getpid() + i * 37) % 254 + 1 for i in range(64)]:
            if sh(["ip", "-4", "addr", "show", "to", f"10.231.{k}.0/24"]).strip():
                continue
            if subprocess.run(["ip", "route", "add", "unreachable", f"10.232.{k}.0/24"],
                              capture_output=True).returncode == 0:
                self.route, self.k = f"10.232.{k}.0/24", k
                break
        else:
            raise RuntimeError("no free 10.232.K.0/24 subnet")
        try:
            self._build(base, client_pub)
        except BaseException:
            self.close()  # undo a half-built lab
            raise

    def _build(self, base, client_pub):
        p, k = self.prefix, self.k
        jump, node = f"{p}-jump", f"{p}-n1"
        for ns in (jump, node):
            sh(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
        sh(f"""set -e
            ip link add {p}j type veth peer name {p}jp
            ip link set {p}jp netns {jump}
            ip addr add 10.231.{k}.1/24 dev {p}j && ip link set {p}j up
            ip -n {jump} link set lo up
            ip -n {jump} addr add 10.231.{k}.2/24 dev {p}jp && ip -n {jump} link set {p}jp up
            ip -n {jump} link add br0 type bridge
            ip -n {jump} addr add 10.232.{k}.1/24 dev br0 && ip -n {jump} link set br0 up
            ip link add {p}n type veth peer name {p}np
            ip link set {p}n netns {jump} && ip link set {p}np netns {node}
            ip -n {jump} link set {p}n master br0 up
            ip -n {node} link set lo up
            ip -n {node} addr add 10.232.{k}.11/24 dev {p}np && ip -n {node} link set {p}np up""")
        self.jump_addr, self.node_addr = f"10.231.{k}.2", f"10.232.{k}.11"
        self.jump = Sshd(base, "jump", client_pub, netns=jump, listen="0.0.0.0")
        self.sshds.append(self.jump)
        self.node = Sshd(base, "node", client_pub, netns=node, listen="0.0.0.0")
        self.sshds.append(self.node)

    def close(self):
        for s in self.sshds:
            s.stop()
        for ns in self.namespaces:
            r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in r.stdout.split():
                kill(int(pid))
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        # Gone with its peer's namespace, unless setup failed before the move.
        subprocess.run(["ip", "link", "del", f"{self.prefix}j"], capture_output=True)
        if self.route:
            subprocess.run(["ip", "route", "del", "unreachable", self.route], capture_output=True)


# ---------------------------------------------------------------- measuring

class Bench:
    def __init__(self, tool, config, tmp, rounds):
        self.tool, self.config, self.tmp, self.rounds = tool, config, tmp, rounds

    def belay(self, mode, host, n):
        """Samples (dicts) from the belay example, n per call."""
        out = sh([self.tool, "--config", self.config, "--host", host, "--mode", mode,
                  "--n", str(n)])
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def ssh_times(self, args, n):
        """Wall milliseconds of `ssh -F config ARGS` run n times."""
        times = []
        for _ in range(n):
            t = time.perf_counter()
            r = subprocess.run(["ssh", "-F", self.config, *args], stdin=subprocess.DEVNULL,
                               capture_output=True)
            times.append((time.perf_counter() - t) * 1000)
            if r.returncode != 0:
                raise RuntimeError(f"ssh {args} failed: {r.stderr.decode().strip()}")
        return times

    def process_times(self, cmd, n):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            sh(cmd)
            times.append((time.perf_counter() - t) * 1000)
        return times

    def interleaved(self, n, *sides):
        """Runs each side's sampler in `rounds` alternating chunks (so a
        noisy period on the shared machine hits both sides) and returns
        one list of milliseconds per side."""
        out = [[] for _ in sides]
        per = max(1, n // self.rounds)
        for _ in range(self.rounds):
            for i, side in enumerate(sides):
                out[i] += side(per)
        return out

    def control_master(self, host):
        ctl = os.path.join(self.tmp, f"ctl-{host}")
        sh(["ssh", "-F", self.config, "-o", "ControlMaster=yes", "-o", f"ControlPath={ctl}",
            "-o", "ControlPersist=yes", "-fN", host], stdin=subprocess.DEVNULL)
        return ctl

    def stop_master(self, host, ctl):
        r = subprocess.run(["ssh", "-F", self.config, "-S", ctl, "-O", "check", host],
                           capture_output=True, text=True)
        subprocess.run(["ssh", "-F", self.config, "-S", ctl, "-O", "exit", host],
                       capture_output=True)
        # "Master running (pid=N)": make sure our master is gone.
        if "pid=" in r.stderr:
            kill(int(r.stderr.split("pid=")[1].split(")")[0]))


def close_hosts(tmp, lo, lab):
    """Stops the test hosts (either may be None) and removes `tmp`."""
    if lab:
        lab.close()
    if lo:
        lo.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def write_client_files(tmp, key, lo, lab, extra=""):
    kh = os.path.join(tmp, "known_hosts")
    with open(kh, "w") as f:
        f.write(f"[127.0.0.1]:{lo.port} {lo.host_key}\n")
        if lab:
            f.write(f"{lab.jump_addr} {lab.jump.host_key}\n{lab.node_addr} {lab.node.host_key}\n")
    cfg = os.path.join(tmp, "ssh_config")
    text = f"Host target\n  HostName 127.0.0.1\n  Port {lo.port}\n"
    if lab:
        text += (f"Host jump\n  HostName {lab.jump_addr}\n"
                 f"Host node\n  HostName {lab.node_addr}\n  ProxyJump jump\n")
    text += (f"Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
             f"  IdentityAgent none\n  BatchMode yes\n  UserKnownHostsFile {kh}\n"
             "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
             "  ControlMaster no\n" + extra)
    with open(cfg, "w") as f:
        f.write(text)
    return cfg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100, help="samples for warm round trips")
    ap.add_argument("--cold-n", type=int, default=40, help="samples for cold connects")
    ap.add_argument("--rounds", type=int, default=4, help="alternating chunks per comparison")
    ap.add_argument("--probe-jobs", type=int, default=1000, help="live jobs for the probe")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    a = ap.parse_args()
    prerequisites()
    tool = build_example()
    tmp = tempfile.mkdtemp(prefix="belay-bench-ssh.")
    lo = lab = None
    rows, notes = [], {}
    notes_probe = None
    try:
        key = os.path.join(tmp, "id_bench")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", key])
        pub = open(key + ".pub").read()
        lo = Sshd(tmp, "loopback", pub)
        lab = NetLab(tmp, pub)
        cfg = write_client_files(tmp, key, lo, lab)
        b = Bench(tool, cfg, tmp, a.rounds)
        ms = lambda samples: [s["ms"] for s in samples]  # noqa: E731

        # The node is isolated: a direct connection must fail.
        r = subprocess.run(["ssh", "-F", cfg, "-o", "ProxyJump=none", "-o", "ConnectTimeout=2",
                            "node", "true"], stdin=subprocess.DEVNULL, capture_output=True)
        assert r.returncode != 0, "node reachable without the jump host"

        # 1. warm round trip
        ctl = b.control_master("target")
        try:
            bw, sw = b.interleaved(a.n, lambda k: ms(b.belay("warm", "target", k)),
                                   lambda k: b.ssh_times(["-S", ctl, "target", "true"], k))
        finally:
            b.stop_master("target", ctl)
        rows.append(("warm round trip", 'run_script("true")', bw,
                     "ssh -S ctl target true", sw, "<=", 0.5))

        # 2. cold connect + first command
        bc, sc, bp, sk = b.interleaved(
            a.cold_n, lambda k: ms(b.belay("cold", "target", k)),
            lambda k: b.ssh_times(["target", "true"], k),
            lambda k: b.process_times([tool, "--config", cfg, "--host", "target",
                                       "--mode", "once"], k),
            lambda k: b.ssh_times(["-o", "KexAlgorithms=curve25519-sha256", "target", "true"], k))
        rows.append(("cold connect + true", "new Client + run_script", bc,
                     "ssh target true", sc, "<=", 1.2))
        rows.append(("  (info) incl. process start", "ssh_bench --mode once", bp,
                     "ssh target true", sc, None, None))
        rows.append(("  (info) ssh with belay's kex", "new Client + run_script", bc,
                     "ssh -o KexAlgorithms=curve25519-sha256", sk, None, None))

        # 3. through one jump host
        bj, sj = b.interleaved(a.cold_n, lambda k: ms(b.belay("cold", "node", k)),
                               lambda k: b.ssh_times(["node", "true"], k))
        rows.append(("cold via 1 jump (netns)", "new Client + run_script", bj,
                     "ssh node true (ProxyJump)", sj, "<=", 1.2))

        # Connect breakdown from the engine (first round trip question).
        for host in ("target", "node"):
            notes[host] = b.belay("rtt", host, max(10, a.cold_n // 2))

        # 5. status probe of many live jobs in one round trip
        probe = probe_bench(cfg, tmp, a.probe_jobs)
        ctl = b.control_master("target")
        try:
            floor = b.ssh_times(["-S", ctl, "target", "true"], 20)
        finally:
            b.stop_master("target", ctl)
        rows.append((f"probe {a.probe_jobs} live jobs", "reconcile: 1 probe script",
                     probe["probe_ms"], "ssh -S ctl target true (floor)", floor, "<200ms", None))
        notes_probe = probe

        # 4. slow .bashrc
        lo.home_file(".bashrc", "sleep 0.5\n")
        n4 = max(5, a.cold_n // 4)
        bs = ms(b.belay("warm", "target", a.n))
        ss = b.ssh_times(["target", "true"], n4)
        ctl = b.control_master("target")
        try:
            sm = b.ssh_times(["-S", ctl, "target", "true"], n4)
        finally:
            b.stop_master("target", ctl)
        rows.append(("slow .bashrc (sleep 0.5)", 'warm run_script("true")', bs,
                     "ssh target true", ss, "<20ms", None))
        rows.append(("  (info) slow .bashrc", 'warm run_script("true")', bs,
                     "ssh -S ctl target true", sm, None, None))

        report(rows, notes, a)
        if notes_probe:
            print(f"\nprobe setup: {notes_probe['jobs']} jobs submitted over one connection in "
                  f"{notes_probe['submit_ms_total'] / 1000:.1f} s "
                  f"({notes_probe['submit_ms_total'] / notes_probe['jobs']:.1f} ms each)")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"rows": [{"what": r[0], "belay": r[1], "belay_ms": r[2],
                                     "openssh": r[3], "openssh_ms": r[4]} for r in rows],
                           "connect": notes}, f, indent=1)
    finally:
        close_hosts(tmp, lo, lab)


def report(rows, notes, a):
    print(f"\nbelay-ssh vs OpenSSH {ssh_version()}, same sshd, this run "
          f"(warm n={a.n}, cold n={a.cold_n}, {a.rounds} alternating rounds)\n")
    head = (f"{'measurement':30} {'belay':26} {'med':>7} {'p90':>7}   {'OpenSSH':40} "
            f"{'med':>7} {'p90':>7}  {'ratio':>7}  target")
    print(head)
    print("-" * len(head))
    for what, bname, bs, sname, ss, op, target in rows:
        bm, b9 = stats(bs)
        sm, s9 = stats(ss)
        ratio = bm / sm
        if op == "<=":
            verdict = f"<= {target}x: {'MET' if ratio <= target else 'NOT MET'}"
        elif op == "<200ms":
            verdict = f"belay median <= 200 ms: {'MET' if bm <= 200 else 'NOT MET'}"
        elif op == "<20ms":
            ok = b9 < 20 and sm >= 500
            verdict = f"belay p90 < 20 ms, ssh >= 500 ms: {'MET' if ok else 'NOT MET'}"
        else:
            verdict = ""
        print(f"{what:30} {bname:26} {bm:5.1f}ms {b9:5.1f}ms   {sname:40} "
              f"{sm:5.1f}ms {s9:5.1f}ms  {ratio:6.3f}x  {verdict}")
    print("\nbelay connect breakdown (median ms; engine's ConnectInfo, mode rtt):")
    for host, samples in notes.items():
        def med(f):
            return statistics.median(f(s) for s in samples)
        hops = len(samples[0]["hops"])
        parts = [f"connect {med(lambda s: s['connect_ms']):.1f}"]
        for i in range(hops):
            alias = samples[0]["hops"][i]["alias"]
            parts.append(f"{alias}: stream {med(lambda s: s['hops'][i]['stream_ms']):.1f} "
                         f"kex {med(lambda s: s['hops'][i]['kex_ms']):.1f} "
                         f"auth {med(lambda s: s['hops'][i]['auth_ms']):.1f}")
        parts.append(f"first ping {med(lambda s: s['first_rtt_ms']):.1f}")
        parts.append(f"1st script {med(lambda s: s['first_script_ms']):.1f}")
        parts.append(f"2nd script {med(lambda s: s['second_script_ms']):.1f}")
        print(f"  {host:7} " + ", ".join(parts))


def ssh_version():
    r = subprocess.run(["ssh", "-V"], capture_output=True, text=True)
    return r.stderr.split(",")[0].strip()


if __name__ == "__main__":
    main()
