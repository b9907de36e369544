#!/usr/bin/env python3
"""How `belay ps` scales with live Slurm jobs on one cluster (issue 13).

bench/slurm.py counts scheduler calls with 200 live jobs; this one times
the status probe those calls feed: `belay ps --json` (warm daemon) and
`belay --no-daemon ps --json` with N live jobs (default 50, 100, 200; two
run, the rest pend on the 2-CPU node), and the squeue calls the login node
saw meanwhile. Beside it, the probe's per-job lookup in the cached queue
listing alone, in dash and bash, for the same N: the shape of the curve.

The cluster is belay-testbed's real single-node Slurm whose login node is a
loopback sshd (example `slurm_host`, release build), the same bed as the
integration tests. Run as root with slurm-wlm and munge installed:

    python3 bench/slurm_ps.py [--sizes 50,100,200] [--n 3] [--poll 5]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The probe's lookup (crates/belay-core/src/scheduler/slurm.rs,
# belay_sq_find) over a listing of N jobs, once per job.
LOOKUP = r'''
s=""; i=1; while [ $i -le $1 ]; do s="$s
$i|PENDING|Priority|belay:abcdef12-0123456789ab$i"; i=$((i+1)); done
i=1; while [ $i -le $1 ]; do
  sq_l="
$s"
  case $sq_l in *"
$i|"*) r=${sq_l#*"
$i|"}; r=${r%%"
"*} ;; esac
  i=$((i+1))
done
'''


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-testbed", "--example",
                    "slurm_host"], cwd=ROOT, check=True)
    rel = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
    return os.path.join(rel, "belay"), os.path.join(rel, "examples", "slurm_host")


class Belay:
    def __init__(self, exe, home, cfg, daemon=True):
        self.exe = exe
        self.env = dict(os.environ, BELAY_HOME=home, BELAY_SSH_CONFIG=cfg)
        self.env.pop("BELAY_FAILPOINT", None)
        if daemon:
            self.env.pop("BELAY_NO_DAEMON", None)
        else:
            self.env["BELAY_NO_DAEMON"] = "1"

    def __call__(self, *args):
        r = subprocess.run([self.exe, *args], env=self.env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"belay {args} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout


def timed(f):
    t = time.perf_counter()
    f()
    return (time.perf_counter() - t) * 1000


def calls(log, cmd):
    with open(log) as f:
        return sum(1 for line in f if line.split(" ", 1)[0] == cmd)


def fmt(ms):
    return f"median {statistics.median(ms):8.0f} ms  max {max(ms):8.0f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="50,100,200", help="live job counts, ascending")
    ap.add_argument("--n", type=int, default=3, help="ps calls per mode and size")
    ap.add_argument("--poll", type=int, default=5, help="the host's poll_interval, seconds")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/slurm_ps.py: run as root (test sshd, Slurm daemons)")
    sizes = [int(x) for x in a.sizes.split(",")]
    for n in sizes:
        for shell in ("dash", "bash"):
            ms = timed(lambda: subprocess.run([shell, "-c", LOOKUP, "lookup", str(n)], check=True))
            print(f"probe lookup alone, {n:4d} jobs, {shell:<4}  {ms:8.0f} ms")
    belay_exe, host_exe = build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-slurm-ps.")
    host, b = None, None
    try:
        host = subprocess.Popen([host_exe, tmp], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        info = json.loads(host.stdout.readline())
        cfg, log = info["ssh_config"], info["calls_log"]
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write(f'[hosts.cluster]\nscheduler = "slurm"\npoll_interval = "{a.poll}s"\n')
        b = Belay(belay_exe, home, cfg)
        direct = Belay(belay_exe, home, cfg, daemon=False)
        live = 0
        print(f"\npoll_interval {a.poll} s; {a.n} ps calls per mode and size")
        for n in sizes:
            while live < n:
                b("run", "-d", "cluster", "--", "sleep 3600")
                live += 1
            q0, t0 = calls(log, "squeue"), time.time()
            dm = [timed(lambda: b("ps", "--json")) for _ in range(a.n)]
            nm = [timed(lambda: direct("ps", "--json")) for _ in range(a.n)]
            q, el = calls(log, "squeue") - q0, time.time() - t0
            print(f"{n:4d} live jobs  ps (daemon)      {fmt(dm)}")
            print(f"{n:4d} live jobs  ps (--no-daemon) {fmt(nm)}   "
                  f"squeue {q} in {el:.0f} s ({q / (el / a.poll):.2f} per poll interval)")
    finally:
        if b is not None:
            try:
                b("serve", "--stop")
            except RuntimeError:
                pass
        if host is not None:
            host.stdin.close()
            host.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
