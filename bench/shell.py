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
  * `belay shell target` through a warm daemon (issue target <= 0.5x
    `ssh -t`).

Then a command, timed from the client's start to its exit, each side
against its OpenSSH counterpart in the same interleaved rounds:

  * on a pty: `ssh -t target true` vs `belay shell target -- true` (warm
    daemon, and its own connection);
  * without a terminal: `ssh target true` vs `belay shell target -- true`
    (warm daemon).

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


def to_exit(argv, env, timeout=20.0):
    """Milliseconds from starting `argv` on a new pty until it has exited
    (its output read to the end); it must exit 0."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(argv[0], argv, env)
    t0 = time.perf_counter()
    seen = b""
    try:
        while True:
            left = timeout - (time.perf_counter() - t0)
            if left <= 0:
                raise RuntimeError(f"{argv}: still running after {timeout} s: {seen[-300:]!r}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the client and its pty are gone
                    chunk = b""
                if not chunk:
                    break
                seen += chunk
        _, status = os.waitpid(pid, 0)
        pid = 0
        took = (time.perf_counter() - t0) * 1000
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv}: exit {os.waitstatus_to_exitcode(status)}: {seen[-300:]!r}")
    return took


def exit_times(argv, env, n):
    return [to_exit(argv, env) for _ in range(n)]


def pipe_times(argv, env, n):
    """Milliseconds to exit without a terminal (stdin /dev/null, pipes)."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
        out.append((time.perf_counter() - t) * 1000)
        if r.returncode != 0:
            raise RuntimeError(f"{argv}: exit {r.returncode}: {r.stderr.decode().strip()}")
    return out


def table(title, sides, results, ref_name):
    print(f"\n{title}")
    ref = stats(results[0])[0]
    for (what, _, _), ms in zip(sides, results):
        med, p90 = stats(ms)
        print(f"{what:<52} median {med:7.1f} ms  p90 {p90:7.1f} ms  "
              f"(n={len(ms)})  {med / ref:4.2f}x {ref_name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=30, help="samples per side")
    ap.add_argument("--rounds", type=int, default=3, help="alternating chunks")
    a = ap.parse_args()
    sshbench.prerequisites()
    exe = build()
    tmp = tempfile.mkdtemp(prefix="belay-bench-shell.")
    lo, started, daemon = None, False, None
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
        daemon = dict(env)
        daemon.pop("BELAY_NO_DAEMON", None)
        has_tmux = shutil.which("tmux") is not None
        # Starts the daemon (as a user's first command would) and warms its
        # connection to the host.
        started = True
        pipe_times([exe, "shell", "target", "--", "true"], daemon, 1)
        ssh_t = ["ssh", "-F", cfg, "-t", "target"]
        sides = [
            ("ssh -t target", ssh_t, env),
            ("belay shell target (own connection)", [exe, "shell", "target"], direct),
            ("belay shell target (warm daemon)", [exe, "shell", "target"], daemon),
        ]
        on_pty = [
            ("ssh -t target true", ssh_t + ["true"], env),
            ("belay shell target -- true (own connection)",
             [exe, "shell", "target", "--", "true"], direct),
            ("belay shell target -- true (warm daemon)",
             [exe, "shell", "target", "--", "true"], daemon),
        ]
        piped = [
            ("ssh target true", ["ssh", "-F", cfg, "target", "true"], env),
            ("belay shell target -- true (warm daemon)",
             [exe, "shell", "target", "--", "true"], daemon),
        ]
        # Warm-up (first connects, the host key checks' file caches).
        for _, argv, e in sides:
            to_prompt(argv, e)
        for _, argv, e in on_pty:
            to_exit(argv, e)
        for _, argv, e in piped:
            pipe_times(argv, e, 1)
        results = ssh.interleaved(
            a.n,
            *[(lambda k, s=s: times(s[1], s[2], k)) for s in sides],
            *[(lambda k, s=s: exit_times(s[1], s[2], k)) for s in on_pty],
            *[(lambda k, s=s: pipe_times(s[1], s[2], k)) for s in piped])
        print(f"OpenSSH {sshbench.ssh_version()}; tmux on the host: {has_tmux}; "
              f"{a.rounds} alternating rounds")
        table("To a prompt (a fresh pty each time):", sides, results[:3], "ssh -t")
        table("A command on a pty, to its exit:", on_pty, results[3:6], "ssh -t")
        table("A command without a terminal, to its exit:", piped, results[6:], "ssh")
    finally:
        if started:
            subprocess.run([exe, "serve", "--stop"], env=daemon, capture_output=True)
        if lo:
            lo.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
