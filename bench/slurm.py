#!/usr/bin/env python3
"""Benchmark belay's Slurm scheduler (issue 13, "Speed"), in one run.

A real single-node Slurm (munged, slurmctld, slurmd; no accounting) runs
inside the mount namespace of a loopback sshd (bench/ssh.py's private test
host), so jobs see the same tmpfs home as the ssh sessions; the sessions get
SLURM_CONF and a PATH whose first directory holds counting wrappers of
squeue/sacct/sbatch (one log line per call, then the real command).
Measured, with a warm daemon (`belay serve`, started by the first command):

  1. submit latency: `belay run -d cluster -- true` against
     `ssh cluster sbatch --wrap true` (cold, as a user types it) and
     `ssh -S ctl cluster sbatch --wrap true` (an OpenSSH ControlMaster),
     interleaved in rounds.
  2. scheduler calls with 200 live jobs on the cluster (most pending:
     the node has 2 CPUs): over --watch seconds with the daemon
     reconciling and a `belay ps` every second, the squeue and sacct calls
     the login node saw, against the polls the poll interval allows
     (target: 1 squeue per poll, never one per job; <= 1 sacct).
  3. time from a job's end (its own clock reading as it exits) to its
     final state in the store, read straight from the database with no
     CLI running (target <= poll interval + 2 s).

Run as root (sshd, mount namespaces, Slurm daemons); builds the release
binary first:

    python3 bench/slurm.py [--n 15] [--rounds 3] [--jobs 200] [--watch 30] [--poll 5]

Everything it started is stopped at the end (jobs cancelled, the daemon,
the Slurm daemons, munged and the sshd, by pid).
"""
import argparse
import importlib.util
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("daemonbench", os.path.join(ROOT, "bench", "daemon.py"))
dbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dbench)
sshbench, stats = dbench.sshbench, dbench.stats

COUNTED = ("squeue", "sacct", "sbatch", "scancel")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Slurm:
    """munged + slurmctld + slurmd in the sshd's mount namespace."""

    def __init__(self, base, sshd_pid, poll):
        self.dir = d = os.path.join(base, "slurm")
        self.ns = ["nsenter", "-t", str(sshd_pid), "-m", "--"]
        for sub in ("munge", "log", "state", "spool", "bin"):
            os.makedirs(os.path.join(d, sub))
        os.chmod(os.path.join(d, "munge"), 0o755)
        sshbench.sh(["mungekey", "--create", f"--keyfile={d}/munge/munge.key"])
        os.chmod(f"{d}/munge/munge.key", 0o600)
        self.pids = []
        sshbench.sh(self.ns + ["munged", f"--key-file={d}/munge/munge.key", f"--socket={d}/munge/munge.sock",
                               f"--pid-file={d}/munge/munged.pid", f"--log-file={d}/munge/munged.log",
                               f"--seed-file={d}/munge/seed"])
        self.pids.append(int(open(f"{d}/munge/munged.pid").read()))
        open(f"{d}/plugstack.conf", "w").close()
        mem = int(open("/proc/meminfo").read().split()[1]) // 1024 // 2
        self.conf = f"{d}/slurm.conf"
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=belaybench
SlurmctldHost=localhost
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/munge.sock
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
PlugStackConfig={d}/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=2
MaxJobCount=20000
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory={mem}
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        self.log_file = f"{d}/calls.log"
        for cmd in COUNTED:
            w = f"{d}/bin/{cmd}"
            with open(w, "w") as f:
                f.write(f"#!/bin/sh\necho {cmd} >> {self.log_file}\nexec /usr/bin/{cmd} \"$@\"\n")
            os.chmod(w, 0o755)
        env = dict(os.environ, SLURM_CONF=self.conf)
        subprocess.run(self.ns + ["slurmctld"], env=env, check=True)
        subprocess.run(self.ns + ["slurmd", "-N", "localhost"], env=env, check=True)
        for name in ("slurmctld", "slurmd"):
            for _ in range(100):
                try:
                    self.pids.append(int(open(f"{d}/{name}.pid").read()))
                    break
                except (OSError, ValueError):
                    time.sleep(0.05)
        deadline = time.time() + 30
        while subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                             text=True).stdout.strip() != "idle":
            if time.time() > deadline:
                raise RuntimeError("slurmd never became idle")
            time.sleep(0.1)
        self.env = env
        self.setenv = (f"SetEnv SLURM_CONF={self.conf} "
                       f"PATH={d}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")

    def calls(self):
        try:
            lines = open(self.log_file).read().split()
        except OSError:
            lines = []
        return {c: lines.count(c) for c in COUNTED}

    def stop(self):
        subprocess.run(["scancel", "--user=root"], env=self.env, capture_output=True)
        for pid in reversed(self.pids):
            for p in sshbench.descendants(pid) + [pid]:
                sshbench.kill(p)


def row(what, ms, target=None):
    med, p90 = stats(ms)
    t = f"  target {target}" if target else ""
    print(f"{what:<52} median {med:8.1f} ms  p90 {p90:8.1f} ms  (n={len(ms)}){t}")
    return med


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=15, help="samples per timed command")
    ap.add_argument("--rounds", type=int, default=3, help="alternating chunks per comparison")
    ap.add_argument("--jobs", type=int, default=200, help="live jobs for the call count")
    ap.add_argument("--watch", type=int, default=30, help="seconds the calls are counted")
    ap.add_argument("--poll", type=int, default=5, help="the host's poll_interval, seconds")
    a = ap.parse_args()
    sshbench.prerequisites()
    exe = dbench.build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-slurm.")
    os.chmod(tmp, 0o755)  # munged wants its socket's every parent searchable
    lo, slurm, b, ctl, ssh = None, None, None, None, None
    try:
        key = os.path.join(tmp, "id_bench")
        sshbench.sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", key])
        lo = sshbench.Sshd(tmp, "login", open(key + ".pub").read())
        slurm = Slurm(tmp, lo.pid, a.poll)
        # The sshd's sessions get the Slurm environment: SIGHUP makes it
        # re-read its config (same pid, same mount namespace).
        with open(os.path.join(lo.dir, "sshd_config"), "a") as f:
            f.write(slurm.setenv)
        os.kill(lo.pid, 1)
        time.sleep(0.5)
        cfg = sshbench.write_client_files(tmp, key, lo, None)
        with open(cfg) as f:
            text = f.read()
        with open(cfg, "w") as f:
            f.write(f"Host cluster\n  HostName 127.0.0.1\n  Port {lo.port}\n" + text)
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write(f'[hosts.cluster]\nscheduler = "slurm"\npoll_interval = "{a.poll}s"\n')
        b = dbench.Belay(exe, home, cfg)
        ssh = sshbench.Bench(None, cfg, tmp, a.rounds)
        out = subprocess.run(["ssh", "-F", cfg, "cluster", "echo $SLURM_CONF; command -v sbatch"],
                             capture_output=True, text=True)
        if slurm.conf not in out.stdout:
            raise RuntimeError(f"the sshd's sessions do not see Slurm: {out.stdout} {out.stderr}")
        b("run", "cluster", "--", "true")  # starts the daemon, warms its connection
        print(f"belay daemon pid {b.daemon_pid()}; OpenSSH {sshbench.ssh_version()}; "
              f"Slurm {subprocess.run(['sbatch', '--version'], env=slurm.env, capture_output=True, text=True).stdout.strip()}; "
              f"poll interval {a.poll} s\n")

        # 1. submit latency
        ctl = ssh.control_master("cluster")
        bt, st, ct = ssh.interleaved(
            a.n, lambda k: b.times(["run", "-d", "cluster", "--", "true"], k),
            lambda k: ssh.ssh_times(["cluster", "sbatch", "--wrap", "true"], k),
            lambda k: ssh.ssh_times(["-S", ctl, "cluster", "sbatch", "--wrap", "true"], k))
        bm = row("belay run -d cluster -- true (warm daemon)", bt)
        sm = row("ssh cluster sbatch --wrap true", st)
        cm = row("ssh -S ctl cluster sbatch --wrap true (ControlMaster)", ct)
        print(f"{'ratio belay / ssh sbatch':<52} {bm / sm:.2f}x")
        print(f"{'ratio belay / ControlMaster sbatch':<52} {bm / cm:.2f}x\n")
        subprocess.run(["scancel", "--user=root"], env=slurm.env, capture_output=True)

        # 2. scheduler calls with many live jobs
        ids = [b("run", "-d", "cluster", "--", "sleep 3600").strip() for _ in range(a.jobs)]
        time.sleep(a.poll + 1)  # the submits' own lookups are not polls
        before = slurm.calls()
        t0 = time.time()
        ps = 0
        while time.time() - t0 < a.watch:
            b("ps")
            ps += 1
            time.sleep(1)
        elapsed = time.time() - t0
        after = slurm.calls()
        sq, sa = after["squeue"] - before["squeue"], after["sacct"] - before["sacct"]
        polls = int(elapsed // a.poll) + 1
        live = sum(j["state"] in ("pending", "running") for j in json.loads(b("ps", "--json")))
        print(f"{a.jobs} jobs submitted ({live} live: pending or running), {ps} `belay ps` and the "
              f"daemon's reconciler over {elapsed:.0f} s, poll interval {a.poll} s:")
        print(f"  squeue calls {sq} (at most {polls} polls allowed: {sq / max(polls, 1):.2f} per poll; "
              f"per job would be {a.jobs * ps}); sacct calls {sa}\n")
        b("cancel", *ids)

        # 3. end -> final state in the store, no CLI running
        lags = []
        db = sqlite3.connect(os.path.join(home, "belay.db"))
        for _ in range(3):
            job = b("run", "-d", "cluster", "--", "sleep 2; date +%s.%N").strip()
            deadline = time.time() + 120
            while True:
                (state, ended) = db.execute(
                    "SELECT state, (SELECT max(at) FROM events WHERE job_id = jobs.id) FROM jobs WHERE id = ?",
                    (job,)).fetchone()
                if state == "succeeded":
                    break
                if time.time() > deadline or state in ("failed", "lost", "cancelled"):
                    raise RuntimeError(f"job {job} is {state}")
                time.sleep(0.05)
            end = float(b("logs", job).strip().splitlines()[-1])
            lags.append((ended / 1000 - end) * 1000)
        db.close()
        row("job end -> final state in the store (no CLI)", lags, f"<= {a.poll * 1000 + 2000} ms")
    finally:
        if ctl and ssh:
            ssh.stop_master("cluster", ctl)
        if b:
            subprocess.run([b.exe, "serve", "--stop"], env=b.env, capture_output=True)
        if slurm:
            slurm.stop()
        sshbench.close_hosts(tmp, lo, None)


if __name__ == "__main__":
    sys.exit(main())
