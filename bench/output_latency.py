#!/usr/bin/env python3
"""Output latency of an attached `belay run` (issue 11, "Speed": a line
written by the job -> on the attached terminal, median <= 20 ms, p99 <=
100 ms on loopback and through a jump host), in one run.

The job prints a timestamped line (`date +%s%N`) every --interval seconds;
this script reads the attached command's stdout through a pipe and records,
for each line, arrival time minus the line's own timestamp. Measured for:

  * `belay run local -- JOB`      (the embedded host)
  * `belay run target -- JOB`     (a loopback sshd)
  * `belay run node -- JOB`       (behind one jump host: network namespaces)
  each in direct mode (BELAY_NO_DAEMON=1: the CLI follows the job itself)
  and through the daemon (started by the first such run, stopped at the end
  with `belay serve --stop`).
  * `ssh target 'JOB'` and `ssh node 'JOB'` in the same run: the floor (the
    bytes flow straight through the channel; no file, no follower).

The first two lines of each run are left out (they race the follower's
start after the submit). The test hosts are the ones of bench/ssh.py
(private sshds, root's home an empty tmpfs in their mount namespace);
everything is removed at the end, only processes started here are killed.

Run as root on Debian 12 (release build of belay first):

    python3 bench/output_latency.py [--lines 60] [--interval 0.2] [--no-jump]
                                    [--no-daemon] [--belay OLD_BINARY]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ssh as testhosts  # noqa: E402  (bench/ssh.py: sshds, jump lab, helpers)

ROOT = testhosts.ROOT


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-cli"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "release", "belay")


def job(lines, interval):
    return f"for i in $(seq 1 {lines}); do date +%s%N; sleep {interval}; done"


def latencies(cmd, env, lines):
    """Milliseconds from each line's timestamp to its arrival here."""
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out = []
    for _ in range(lines):
        line = p.stdout.readline()
        now = time.time_ns()
        if not line:
            break
        out.append((now - int(line.strip())) / 1e6)
    p.stdout.close()
    if p.wait() != 0:
        sys.exit(f"{cmd} failed: {p.stderr.read().decode().strip()}")
    if len(out) != lines:
        sys.exit(f"{cmd}: {len(out)} of {lines} lines")
    return out[2:]


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(len(s) * q)) - 1)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lines", type=int, default=60, help="lines per run")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between lines")
    ap.add_argument("--no-jump", action="store_true", help="skip the jump-host lab")
    ap.add_argument("--no-daemon", action="store_true",
                    help="direct mode only (a build without `belay serve`)")
    ap.add_argument("--belay", help="this belay binary instead of a fresh release build "
                    "(to measure an older one)")
    a = ap.parse_args()
    testhosts.prerequisites()
    if not shutil.which("inotifywait"):
        print("note: no inotifywait here: the follower falls back to 50 ms sleeps "
              "(apt-get install inotify-tools)", file=sys.stderr)
    belay = a.belay or build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-latency.")
    lo = lab = None
    rows = []
    try:
        key = os.path.join(tmp, "id_bench")
        testhosts.sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", key])
        pub = open(key + ".pub").read()
        lo = testhosts.Sshd(tmp, "loopback", pub)
        lab = None if a.no_jump else testhosts.NetLab(tmp, pub)
        cfg = testhosts.write_client_files(tmp, key, lo, lab)
        home = tempfile.mkdtemp(prefix="belay-home.", dir=tmp)
        env = dict(os.environ, BELAY_HOME=home, BELAY_SSH_CONFIG=cfg)
        direct = dict(env, BELAY_NO_DAEMON="1")
        daemon = {k: v for k, v in env.items() if k != "BELAY_NO_DAEMON"}
        j = job(a.lines, a.interval)
        hosts = ["local", "target"] + ([] if a.no_jump else ["node"])
        try:
            for host in hosts:
                cmd = [belay, "run", host, "--", j]
                rows.append((f"belay run {host} (direct)", latencies(cmd, direct, a.lines)))
                if not a.no_daemon:
                    rows.append((f"belay run {host} (daemon)", latencies(cmd, daemon, a.lines)))
                if host != "local":
                    rows.append((f"ssh {host}", latencies(["ssh", "-F", cfg, host, j], env,
                                                          a.lines)))
        finally:
            if not a.no_daemon:
                # The daemon the first daemon-mode run started: never left behind.
                subprocess.run([belay, "serve", "--stop"], env=daemon, capture_output=True)
        print(f"\noutput latency, line written -> read from the attached command's stdout "
              f"({a.lines - 2} lines every {a.interval} s per row, this run)\n")
        print(f"| command | median | p90 | p99 | max | target |")
        print(f"| --- | --- | --- | --- | --- | --- |")
        for name, ms in rows:
            med, p90, p99 = pct(ms, 0.5), pct(ms, 0.9), pct(ms, 0.99)
            target = ""
            if name.startswith("belay"):
                ok = med <= 20 and p99 <= 100
                target = f"median <= 20 ms, p99 <= 100 ms {'ok' if ok else 'MISSED'}"
            print(f"| `{name}` | {med:.1f} ms | {p90:.1f} ms | {p99:.1f} ms | "
                  f"{max(ms):.1f} ms | {target} |")
    finally:
        testhosts.close_hosts(tmp, lo, lab)


if __name__ == "__main__":
    main()
