#!/usr/bin/env python3
"""Benchmark `GET /v1/jobs` on the API served on TCP (issue 15, section 3):
p50/p95 latency with 10,000 jobs in the store (target: p95 <= 100 ms).

A fresh BELAY_HOME; two tokens made with `belay token create` (ops,
admin; alice, a user); the store then seeded directly with N ended jobs
(sqlite3, as bench/daemon.py reads it), every tenth one alice's and the
rest the local user's; a few live jobs on `local` (`sleep`), so the
default list has something to probe. Then `belay serve --listen
127.0.0.1:0` in the foreground and, over one keep-alive HTTP/1.1
connection per case, R requests each of:

  1. GET /v1/jobs                 (live jobs; admin)
  2. GET /v1/jobs?all=true        (every job, N of them; admin)
  3. GET /v1/jobs?all=true        (as alice: her N/10)
  4. GET /v1/jobs?all=true&limit=100  (admin, the first page)
  5. the same, offset=9000 (a page near the end)

Builds the release binary first; runs as any user; no SSH.

    python3 bench/api_list.py [--jobs 10000] [--rounds 200]
"""
import argparse
import http.client
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build():
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-cli"], cwd=ROOT, check=True)
    return os.path.join(target, "release", "belay")


def seed(home, n):
    db = sqlite3.connect(os.path.join(home, "belay.db"))
    (installation,) = db.execute("SELECT value FROM meta WHERE key = 'installation_id'").fetchone() or ("bench",)
    base = int(time.time() * 1000) - n * 1000
    rows = []
    for i in range(n):
        jid = secrets.token_hex(4)
        owner = "alice" if i % 10 == 0 else None
        rows.append((jid, f"{jid}-{installation}", "local", base + i * 1000, owner))
    db.executemany(
        "INSERT OR IGNORE INTO jobs (id, key, host, state, command, env, scheduler, exit_code, "
        "created_at, updated_at, started_at, ended_at, owner) VALUES "
        "(?1, ?2, ?3, 'succeeded', '[\"true\"]', '[]', 'direct', 0, ?4, ?4, ?4, ?4, ?5)",
        rows,
    )
    db.commit()
    (count,) = db.execute("SELECT COUNT(*) FROM jobs").fetchone()
    db.close()
    return count


def measure(addr, token, path, rounds):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    times, size, count = [], 0, 0
    for i in range(rounds + 3):
        t0 = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        body = resp.read()
        dt = (time.perf_counter() - t0) * 1000
        assert resp.status == 200, (resp.status, body[:200])
        if i >= 3:  # the first few warm the store's pages
            times.append(dt)
        size, count = len(body), len(json.loads(body)["jobs"])
    conn.close()
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    return statistics.median(times), p95, count, size


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    belay = build()
    tmp = tempfile.mkdtemp(prefix="belay-api-bench.")
    home = os.path.join(tmp, "home")
    env = dict(os.environ, BELAY_HOME=home, BELAY_NO_DAEMON="1")
    daemon = None
    live = []
    try:
        run = lambda *a: subprocess.run([belay, *a], env=env, check=True, capture_output=True, text=True).stdout
        ops = run("token", "create", "ops", "--admin").strip()
        alice = run("token", "create", "alice").strip()
        total = seed(home, args.jobs)
        for _ in range(5):
            live.append(run("run", "-d", "local", "--", "sleep", "600").strip())
        daemon = subprocess.Popen([belay, "serve", "--listen", "127.0.0.1:0"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        addr = None
        deadline = time.time() + 30
        while addr is None and time.time() < deadline:
            out = subprocess.run([belay, "serve", "--status", "--json"], env=env, capture_output=True, text=True)
            try:
                addr = json.loads(out.stdout)["listen"]
            except (ValueError, TypeError, KeyError):
                time.sleep(0.05)
        assert addr, "the daemon never listened"
        print(f"store: {total + 5} jobs ({args.jobs} ended, 5 live); {args.rounds} requests per case")
        print(f"{'case':<44} {'p50 ms':>8} {'p95 ms':>8} {'jobs':>6} {'bytes':>9}")
        for name, token, path in [
            ("GET /v1/jobs (live; admin)", ops, "/v1/jobs"),
            ("GET /v1/jobs?all=true (admin)", ops, "/v1/jobs?all=true"),
            ("GET /v1/jobs?all=true (alice: her own)", alice, "/v1/jobs?all=true"),
            ("GET /v1/jobs?all=true&limit=100 (admin)", ops, "/v1/jobs?all=true&limit=100"),
            ("GET /v1/jobs?all=true&limit=100&offset=9000 (admin)", ops, "/v1/jobs?all=true&limit=100&offset=9000"),
        ]:
            p50, p95, count, size = measure(addr, token, path, args.rounds)
            print(f"{name:<44} {p50:8.1f} {p95:8.1f} {count:6d} {size:9d}")
    finally:
        if live:
            subprocess.run([belay, "cancel", *live], env=env, capture_output=True)
        subprocess.run([belay, "serve", "--stop"], env=env, capture_output=True)
        if daemon:
            daemon.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
