#!/usr/bin/env python3
"""Benchmark belay on a Slurm cluster (issue 13, "Speed"), in one run.

  1. submit latency: `belay run -d cluster -- true` (warm daemon; and
     `--no-daemon`) against `ssh cluster sbatch --wrap true`, interleaved,
     same cluster, same run: the ratio.
  2. time from a job's end (its `ended_at`, from the exit file) to its final
     state as `ps` shows it; target <= poll interval + 2 s.
  3. scheduler calls with N live jobs (default 200) on one cluster while
     the daemon reconciles and `ps` runs repeatedly: `squeue` calls per
     poll interval (target 1), `sacct` and `scontrol` calls (<= 1 per poll,
     never per job), counted by the login node's wrappers.

The cluster is belay-testbed's real single-node Slurm whose login node is a
loopback sshd (example `slurm_host`, release build); belay is the release
binary with a private BELAY_HOME. Run as root on Debian 12 with slurm-wlm
and munge installed (scripts/test.sh installs them).

    python3 bench/slurm.py [--n 10] [--jobs 200] [--poll 5] [--watch 30]
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-testbed", "--example",
                    "slurm_host"], cwd=ROOT, check=True)
    rel = os.path.join(target_dir(), "release")
    return os.path.join(rel, "belay"), os.path.join(rel, "examples", "slurm_host")


def stats(ms):
    s = sorted(ms)
    return statistics.median(s), s[max(0, int(round(len(s) * 0.9)) - 1)]


def row(what, ms, target=None):
    med, p90 = stats(ms)
    t = f"  target {target}" if target else ""
    print(f"{what:<50} median {med:8.1f} ms  p90 {p90:8.1f} ms  (n={len(ms)}){t}")
    return med


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10, help="samples per submit variant")
    ap.add_argument("--jobs", type=int, default=200, help="live jobs for the call count")
    ap.add_argument("--poll", type=int, default=5, help="the host's poll_interval, seconds")
    ap.add_argument("--watch", type=int, default=30, help="seconds the calls are counted")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/slurm.py: run as root (test sshd, Slurm daemons)")
    belay_exe, host_exe = build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-slurm.")
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
        ssh = ["ssh", "-F", cfg, "cluster"]
        b("run", "cluster", "--", "true")  # starts the daemon, warms its connection

        # 1. submit latency, interleaved
        bd, bn, ss = [], [], []
        for _ in range(a.n):
            bd.append(timed(lambda: b("run", "-d", "cluster", "--", "true")))
            bn.append(timed(lambda: direct("run", "-d", "cluster", "--", "true")))
            ss.append(timed(lambda: subprocess.run(
                ssh + ["sbatch --wrap true"], check=True, capture_output=True)))
        # ... and until Slurm has the job (show names its Slurm id)
        def until_slurm_id():
            job = b("run", "-d", "cluster", "--", "true").strip()
            while not json.loads(b("show", "--json", job)).get("scheduler_id"):
                time.sleep(0.005)
        bs = [timed(until_slurm_id) for _ in range(a.n)]
        print(f"poll_interval {a.poll} s; {a.n} interleaved samples each\n")
        md = row("belay run -d cluster -- true (warm daemon)", bd)
        mi = row("  ... until show has the Slurm job id", bs)
        mn = row("belay --no-daemon run -d cluster -- true", bn)
        ms = row("ssh cluster sbatch --wrap true", ss)
        print(f"{'  ratio daemon / ssh sbatch':<50} {md / ms:.2f}x")
        print(f"{'  ratio daemon until Slurm id / ssh sbatch':<50} {mi / ms:.2f}x")
        print(f"{'  ratio --no-daemon / ssh sbatch':<50} {mn / ms:.2f}x")

        # 2. end -> final state, as ps shows it (the daemon reconciles)
        lags = []
        for _ in range(3):
            job = b("run", "-d", "cluster", "--", "sleep 1").strip()
            while True:
                rows = {j["id"]: j for j in json.loads(b("ps", "--all", "--json"))}
                j = rows[job]
                if j["state"] not in ("queued", "submitting", "pending", "running"):
                    seen = time.time()
                    break
                time.sleep(0.1)
            t_end = datetime.datetime.fromisoformat(j["ended_at"].replace("Z", "+00:00")).timestamp()
            lags.append((seen - t_end) * 1000)
        row("job end -> final state in ps", lags, f"<= {a.poll * 1000 + 2000} ms")

        # 3. scheduler calls with many live jobs
        for i in range(a.jobs):
            b("run", "-d", "cluster", "--", "sleep 3600")
        q0, c0, s0 = calls(log, "squeue"), calls(log, "scontrol"), calls(log, "sacct")
        t0, ps_ms = time.time(), []
        while time.time() - t0 < a.watch:
            t = time.perf_counter()
            rows = json.loads(b("ps", "--json"))
            ps_ms.append((time.perf_counter() - t) * 1000)
        el, rounds = time.time() - t0, len(ps_ms)
        q = calls(log, "squeue") - q0
        c = calls(log, "scontrol") - c0
        s = calls(log, "sacct") - s0
        polls = el / a.poll
        states = {}
        for j in rows:
            states[j["state"]] = states.get(j["state"], 0) + 1
        print(f"\n{a.jobs} live jobs ({states}), {el:.1f} s watched, {rounds} ps calls:")
        print(f"  squeue  {q:4d} calls = {q / polls:.2f} per poll interval   target 1")
        print(f"  scontrol{c:4d} calls = {c / polls:.2f} per poll interval")
        print(f"  sacct   {s:4d} calls = {s / polls:.2f} per poll interval   target <= 1")
        row(f"ps --json with {a.jobs} live Slurm jobs", ps_ms)
        print("  each ps, in order (ms):", " ".join(f"{m:.0f}" for m in ps_ms))
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
