#!/usr/bin/env python3
"""Benchmark belay on the embedded `local` host (issue 2 targets).

Measures, in one run, against the nearest real alternative:
  * submit: `belay run -d local -- true` vs `setsid nohup true &` in sh
    (what people type by hand; it records nothing).
  * ps over a store of 10,000 ended jobs (+10 live): wall time and peak RSS
    of `belay ps`, `belay ps --all`, `belay ps --all --json`.
  * with --cancel-jobs N: one `belay cancel` of N running `sleep` jobs on
    `local` (one cancel script for the host; issue 10 target: 1,000 in <= 3 s).
Prints medians and ratios.
Usage: bench/local.py [--jobs 10000] [--runs 30] [--cancel-jobs N]
Builds the release binary first.
"""
import argparse, os, resource, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, env, runs):
    """Median and p90 wall seconds, and max peak RSS (KiB) over `runs` runs."""
    walls, rss = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        walls.append(time.perf_counter() - t)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"{cmd} failed: {p.stderr.read().decode()}")
        rss = max(rss, usage.ru_maxrss)
    walls.sort()
    return statistics.median(walls), walls[int(len(walls) * 0.9) - 1], rss


def cancel_many(belay, env, n):
    """One `belay cancel` of n running jobs: wall time and peak RSS."""
    ids = [subprocess.run([belay, "run", "-d", "local", "--", "sleep", "600"], env=env,
                          check=True, capture_output=True, text=True).stdout.strip()
           for _ in range(n)]
    import json
    deadline = time.time() + 60
    while True:
        jobs = json.loads(subprocess.run([belay, "ps", "--json"], env=env, check=True,
                                         capture_output=True, text=True).stdout)
        if sum(j["state"] == "running" for j in jobs if j["id"] in set(ids)) == n:
            break
        if time.time() > deadline:
            sys.exit("the jobs to cancel never all ran")
        time.sleep(0.2)
    med, p90, rss = timed([belay, "cancel", "--grace", "1"] + ids, env, 1)
    return (f"belay cancel of {n} running jobs (one command)", (med, p90, rss), None, None)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--cancel-jobs", type=int, default=0,
                    help="also time one cancel of this many running jobs")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-cli", "-p", "belay-core",
                    "--features", "belay-core/bench", "--example", "seed_store", "--bin", "belay"], cwd=ROOT, check=True)
    belay = os.path.join(ROOT, "target/release/belay")
    seed = os.path.join(ROOT, "target/release/examples/seed_store")
    tmp = tempfile.mkdtemp(prefix="belay-bench-")
    home = os.path.join(tmp, "home")
    os.mkdir(home)
    env = dict(os.environ, BELAY_HOME=os.path.join(tmp, "belay"), HOME=home)
    try:
        rows = []
        sub = timed([belay, "run", "-d", "local", "--", "true"], env, a.runs)
        base = timed(["sh", "-c", "setsid nohup true </dev/null >/dev/null 2>&1 &"], env, a.runs)
        rows.append(("submit: belay run -d local -- true", sub, base, "setsid nohup true &"))

        subprocess.run([seed, str(a.jobs)], env=env, check=True)
        live = [subprocess.run([belay, "run", "-d", "local", "--", "sleep", "600"], env=env,
                               check=True, capture_output=True, text=True).stdout.strip()
                for _ in range(10)]
        for args in (["ps"], ["ps", "--all"], ["ps", "--all", "--json"]):
            r = timed([belay] + args, env, max(5, a.runs // 3))
            rows.append((f"belay {' '.join(args)} ({a.jobs} ended + 10 live jobs)", r, None, None))
        subprocess.run([belay, "cancel", "--grace", "1"] + live, env=env, check=True,
                       stdout=subprocess.DEVNULL)

        if a.cancel_jobs:
            rows.append(cancel_many(belay, env, a.cancel_jobs))

        print(f"{'measurement':58} {'median':>9} {'p90':>9} {'peak RSS':>9}  vs alternative")
        for name, (med, p90, rss), alt, alt_name in rows:
            line = f"{name:58} {med*1000:7.1f}ms {p90*1000:7.1f}ms {rss/1024:7.1f}MB"
            if alt:
                line += f"  {alt_name}: {alt[0]*1000:.1f}ms (ratio {med/alt[0]:.1f}x)"
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
