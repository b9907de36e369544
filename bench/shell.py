#!/usr/bin/env python3
"""Benchmark `belay shell` (issue 12, "Speed"): time to a prompt.

Against one loopback sshd started by this script (bench/ssh.py's private
test host: own keys, free port, root's home an empty tmpfs inside its
mount namespace, whose ~/.bash_profile sets PS1 to a marker). Each sample
runs the client on a fresh pseudo-terminal (Python's pty) and times from
its start until the marker appears; then it types `exit` and waits for
the client to end (so no tmux session is left to re-attach to). Sides,
interleaved in rounds so a noisy period hits all of them:

  * `ssh -t target` (a login shell; the reference);
  * `belay shell target` (belay's own connection, the remote shell inside
    a tmux session when the host has tmux: this machine's tmux);
  * `belay shell target` through a warm daemon, when the build has the
    daemon route (issue target <= 0.5x `ssh -t`).

Run as root (sshd, mount namespaces); builds the release binary first:

    python3 bench/shell.py [--n 30] [--rounds 3]
"""
import argparse
import importlib.util
import os
import pty
import select
import shutil
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = b"BELAY-BENCH-PROMPT>"

# The test host of bench/ssh.py and the release build of bench/daemon.py.
_spec = importlib.util.spec_from_file_location("daemonbench",
                                               os.path.join(ROOT, "bench", "daemon.py"))
daemonbench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(daemonbench)
sshbench, build = daemonbench.sshbench, daemonbench.build
sh, stats = sshbench.sh, sshbench.stats


def to_prompt(argv, env, timeout=20.0):
    """Milliseconds from starting `argv` on a new pty until MARKER; then
    `exit` is typed and the client reaped."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    t0 = time.perf_counter()
    seen, took = b"", None
    try:
        while took is None:
            left = timeout - (time.perf_counter() - t0)
            if left <= 0:
                raise RuntimeError(f"{argv}: no prompt within {timeout} s: {seen[-300:]!r}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise RuntimeError(f"{argv}: ended before a prompt: {seen[-300:]!r}")
                seen += chunk
                if MARKER in seen:
                    took = (time.perf_counter() - t0) * 1000
        os.write(fd, b"exit\r")
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    if not os.read(fd, 65536):
                        break
                except OSError:
                    break
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = 0
                break
    finally:
        if pid:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os.close(fd)
    return took


def times(argv, env, n):
    return [to_prompt(argv, env) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30, help="samples per side")
    ap.add_argument("--rounds", type=int, default=3, help="alternating chunks")
    a = ap.parse_args()
    sshbench.prerequisites()
    exe = build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-shell.")
    lo = None
    try:
        key = os.path.join(tmp, "id_bench")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", key])
        lo = sshbench.Sshd(tmp, "loopback", open(key + ".pub").read())
        lo.home_file(".bash_profile", f"PS1='{MARKER.decode()} '\n")
        cfg = sshbench.write_client_files(tmp, key, lo, None)
        ssh = sshbench.Bench(None, cfg, tmp, a.rounds)
        env = dict(os.environ, TERM="xterm-256color", BELAY_HOME=os.path.join(tmp, "home"),
                   BELAY_SSH_CONFIG=cfg)
        env.pop("BELAY_FAILPOINT", None)
        direct = dict(env, BELAY_NO_DAEMON="1")
        has_tmux = shutil.which("tmux") is not None
        sides = [
            ("ssh -t target", ["ssh", "-F", cfg, "-t", "target"], env),
            ("belay shell target (own connection)", [exe, "shell", "target"], direct),
        ]
        # Warm-up (first connects, the host key checks' file caches).
        for _, argv, e in sides:
            to_prompt(argv, e)
        results = ssh.interleaved(a.n, *[(lambda k, s=s: times(s[1], s[2], k)) for s in sides])
        print(f"OpenSSH {sshbench.ssh_version()}; tmux on the host: {has_tmux}; "
              f"{a.rounds} alternating rounds\n")
        ref = stats(results[0])[0]
        for (what, _, _), ms in zip(sides, results):
            med, p90 = stats(ms)
            print(f"{what:<44} median {med:7.1f} ms  p90 {p90:7.1f} ms  "
                  f"(n={len(ms)})  {med / ref:4.2f}x ssh -t")
    finally:
        if lo:
            lo.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
