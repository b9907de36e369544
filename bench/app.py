#!/usr/bin/env python3
"""Benchmark `belay app run HOST jupyter` (issue 12, "Speed"), in one run.

From the command's start to a URL that answers (`app run` returns only
once `GET /api/status` answers through its forward) against jupyter's own
start-up: the same jupyter-server started by hand on the same machine,
timed from its exec to its socket answering the same request. Target:
app run <= jupyter's own start-up + 1 s. One loopback sshd (bench/ssh.py's
private test host), a warm daemon, the test virtualenv's jupyter-server
(target/test-jupyter-venv, made by the app tests or here).

    python3 bench/app.py [--n 5]
"""
import argparse
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("daemonbench", os.path.join(ROOT, "bench", "daemon.py"))
dbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dbench)
sshbench, stats = dbench.sshbench, dbench.stats


def venv():
    v = os.path.join(ROOT, "target", "test-jupyter-venv")
    server = os.path.join(v, "bin", "jupyter-server")
    if not os.path.exists(os.path.join(v, ".belay-installed")):
        shutil.rmtree(v, ignore_errors=True)
        subprocess.run(["/usr/bin/python3", "-m", "venv", v], check=True)
        subprocess.run([os.path.join(v, "bin", "pip"), "install", "-q", "jupyter-server"], check=True)
        open(os.path.join(v, ".belay-installed"), "w").close()
    return server


def answers(sock_path, token):
    """One GET /api/status over the Unix socket: True once it answers 200."""
    try:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(f"GET /api/status?token={token} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(12)
        s.close()
        return head.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def by_hand(server, tmp):
    """jupyter-server's own start-up: exec to its socket answering."""
    d = tempfile.mkdtemp(dir=tmp)
    sock = os.path.join(d, "j.sock")
    env = dict(os.environ, HOME=d, JUPYTER_TOKEN="benchtoken", JUPYTER_RUNTIME_DIR=os.path.join(d, "rt"))
    t = time.perf_counter()
    p = subprocess.Popen([server, "--no-browser", "--allow-root", f"--sock={sock}"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
    try:
        deadline = time.time() + 60
        while not answers(sock, "benchtoken"):
            if p.poll() is not None:
                raise RuntimeError("jupyter-server exited")
            if time.time() > deadline:
                raise RuntimeError("jupyter-server started by hand did not answer within 60 s")
            time.sleep(0.01)
        return (time.perf_counter() - t) * 1000
    finally:
        p.terminate()
        p.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=5, help="samples of each")
    a = ap.parse_args()
    sshbench.prerequisites()
    exe = dbench.build()
    server = venv()
    tmp = tempfile.mkdtemp(prefix="belay-bench-app.")
    lo, b = None, None
    try:
        key = os.path.join(tmp, "id_bench")
        sshbench.sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", key])
        lo = sshbench.Sshd(tmp, "loopback", open(key + ".pub").read())
        cfg = dbench.write_config(tmp, key, lo)
        home = os.path.join(tmp, "home")
        os.makedirs(home)
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write(f'[hosts.target]\njupyter = "{server}"\n')
        b = dbench.Belay(exe, home, cfg)
        b("run", "target", "--", "true")  # a warm daemon and connection
        app_ms, hand_ms = [], []
        for _ in range(a.n):
            hand_ms.append(by_hand(server, tmp))
            t = time.perf_counter()
            out = json.loads(b("app", "run", "target", "jupyter", "--json"))
            app_ms.append((time.perf_counter() - t) * 1000)
            b("app", "stop", out["job"])
        ma, pa = stats(app_ms)
        mh, ph = stats(hand_ms)
        print(f"{'belay app run target jupyter (to a URL that answers)':<58} median {ma:7.1f} ms  p90 {pa:7.1f} ms")
        print(f"{'jupyter-server by hand (exec to its socket answering)':<58} median {mh:7.1f} ms  p90 {ph:7.1f} ms")
        print(f"{'  belay over jupyter':<58} {ma - mh:+7.1f} ms  target <= +1000 ms")
    finally:
        if b:
            try:
                b("serve", "--stop")
            except RuntimeError:
                pass
        if lo:
            lo.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
