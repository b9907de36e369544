#!/usr/bin/env python3
"""Benchmark belay's file transfer (issue 5) against scp and rsync, in one run.

Every tool talks to the *same* private sshd started by this script, and each
ratio is computed from figures measured in this run (the machine is shared
and noisy; compare the ratios, not the absolute times). Measured:

  1. a 1 GiB random file, first copy (destination absent), push and pull:
     `belay push/pull` vs `scp` and vs `rsync -a`. MB/s (10^6 bytes/s) of the
     whole command (connect included) and belay_MB/s / other_MB/s.
     Target >= 0.9x. If belay negotiates another cipher than OpenSSH (found
     from the sshd's debug log), the alternatives are run once more with
     `-o Ciphers=<belay's cipher>` as informational rows.
  2. a tree of 10,000 files of 4 KiB (100 dirs x 100 files), push and pull:
     `belay` vs `rsync -a` and vs `scp -r`. Seconds and speedup
     other_time / belay_time. Target >= 1.5x.
  3. resume after a cut at 512 MiB of the 1 GiB file, push and pull (once):
     belay with BELAY_FAILPOINT=transfer-bytes:536870912 (belay SIGKILLs
     itself), then the same command again with --json; vs `rsync -a
     --partial` interrupted when its partial reaches 512 MiB, then re-run
     with --stats. "bytes sent again" = (bytes the first run had carried when
     it was cut) + (file bytes the second run carried) - 1 GiB. The first
     term is a lower bound: the larger of the partial's size after the cut
     and belay's failpoint threshold / the size of rsync's partial when it
     was cut. The second is belay's `bytes_sent` and rsync's "Literal data".
     Target for belay <= 8 MiB. rsync is cut two ways: SIGKILL to its whole
     local process group (the crash belay simulates; on pull the killed
     receiver saves nothing, and --partial-dir would not change that), and
     SIGTERM to the local rsync processes only (rsync's best case: its
     signal handler keeps the partial for --partial).

Sections 1 and 2 repeat every measurement --reps times (default 3, median),
rotating the order of the tools in each repetition. Before every timed copy
the destination is removed and `sync` run (untimed), so no run pays for the
previous run's write-back. Every copy is verified: exit status 0, `cmp` of
the file or `diff -r` of the tree against the source, and no stray entries
(partials, temp files) next to the destination; belay's --json counters are
checked too (and, reported as SUSPICIOUS, its permission bits and mtimes and
the 0600 mode of its partial). A wrong copy prints "FAIL" at once, marks its row FAILED, and
the script exits 1 at the end.

The test host: a `mktemp -d` directory, a free loopback port, own host and
client keys, an ssh config file (IdentitiesOnly, IdentityAgent none,
BatchMode, own known_hosts), sshd with `Subsystem sftp internal-sftp` (scp
in OpenSSH 9 uses SFTP), and root's home replaced by an empty tmpfs inside
sshd's mount namespace (the machine's own `.bashrc` stays out). Remote paths
are absolute paths in the same temp directory, so source and destination
sit on one filesystem and `cmp` checks them directly. belay is pointed at
the config with BELAY_SSH_CONFIG, BELAY_HOME and HOME are scratch
directories. Everything is removed at the end; only processes this script
started are killed.

belay is the release build of belay-cli with the test-only hooks that the
resume case needs (`cargo build --release -p belay-cli --features
failpoints`; CARGO_TARGET_DIR is honoured) unless --belay PATH is given.
Run as root on Debian 12 (~5 GiB free needed in --dir):

    python3 bench/transfer.py [--reps 3] [--sections 1,2,3] [--json FILE]
    python3 bench/transfer.py --skip-belay   # only the scp/rsync side
    python3 bench/transfer.py --tmpfs        # files on a tmpfs: no disk noise
    python3 bench/transfer.py --sftp         # also `belay --via sftp` rows (info)
"""
import argparse
import json
import os
import platform
import re
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
          "/usr/bin/scp": "openssh-client", "/usr/bin/ssh-keygen": "openssh-client",
          "/usr/bin/rsync": "rsync"}
MiB = 1 << 20
GiB = 1 << 30


# ---------------------------------------------------------------- helpers

def sh(cmd, **kw):
    """Run a command (list or shell string), fail loudly with its stderr."""
    r = subprocess.run(cmd, shell=isinstance(cmd, str), capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def prerequisites():
    if os.geteuid() != 0:
        sys.exit("bench/transfer.py needs root (sshd privilege separation, mount namespace)")
    missing = sorted({pkg for path, pkg in NEEDED.items() if not os.path.exists(path)})
    if missing:
        print(f"installing {' '.join(missing)}", file=sys.stderr)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                       check=True, env=env, stdout=subprocess.DEVNULL)


def build_belay():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "belay-cli",
                    "--features", "failpoints"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "release", "belay")


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


def group_members(pgid):
    """Pids whose process group is `pgid`."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[3]) == pgid:
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def kill(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def entries(d):
    """{name: size} of the entries directly in d (files only sized)."""
    out = {}
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return out
    for n in names:
        try:
            st = os.lstat(os.path.join(d, n))
            out[n] = st.st_size
        except FileNotFoundError:
            pass
    return out


def quiet_entries(d, still=0.5, timeout=30):
    """entries(d) once nothing in d has changed for `still` seconds (a cut
    side may still be flushing what it had in flight)."""
    last, since, deadline = entries(d), time.time(), time.time() + timeout
    while time.time() - since < still and time.time() < deadline:
        time.sleep(0.05)
        now = entries(d)
        if now != last:
            last, since = now, time.time()
    return last


def clear_dir(d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)


def mib(n):
    """Human size: KiB below 10 MiB (small differences matter in section 3)."""
    return f"{n / MiB:.1f} MiB" if abs(n) >= 10 * MiB else f"{n / 1024:.1f} KiB"


# ---------------------------------------------------------------- test host

class Sshd:
    """An sshd with its own directory, host key and authorized_keys, on a
    free loopback port; root's home is an empty tmpfs in its private mount
    namespace (/run gets an overlay for /run/sshd)."""

    def __init__(self, base, name, client_pub, loglevel="VERBOSE"):
        self.dir = os.path.join(base, name)
        for sub in ("ru", "rw"):
            os.makedirs(os.path.join(self.dir, sub))
        key = os.path.join(self.dir, "host_key")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-host", "-f", key])
        with open(key + ".pub") as f:
            self.host_key = " ".join(f.read().split()[:2])
        with open(os.path.join(self.dir, "authorized_keys"), "w") as f:
            f.write(client_pub)
        self.loglevel, self.pid = loglevel, 0
        for _ in range(10):
            self.port = free_port()
            try:
                self._launch()
                return
            except RuntimeError as e:
                if "Address already in use" not in str(e):
                    raise
        raise RuntimeError("no free port for sshd")

    def _launch(self):
        d, conf = self.dir, os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write(f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n"
                    f"PidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nPermitRootLogin prohibit-password\n"
                    f"LogLevel {self.loglevel}\nSubsystem sftp internal-sftp\n")
        script = (f"set -e\nmount -t overlay overlay -o lowerdir=/run,upperdir={d}/ru,"
                  f"workdir={d}/rw /run\ninstall -d -m 0755 /run/sshd\n"
                  "mount -t tmpfs -o mode=0700 tmpfs /root\n"
                  f"exec {SSHD} -f {conf} -E {d}/log\n")
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

    def settle(self, timeout=60):
        """Waits until no session of this sshd is left (after a cut, the
        remote side must have finished writing before anything is measured)."""
        deadline = time.time() + timeout
        while descendants(self.pid):
            if time.time() > deadline:
                left = descendants(self.pid)
                for p in left:
                    kill(p)
                return f"sshd sessions still alive after {timeout}s, killed {left}"
            time.sleep(0.05)
        return None

    def stop(self):
        if self.pid:
            for p in descendants(self.pid) + [self.pid]:
                kill(p)
            self.pid = 0


def write_client_files(tmp, key, hosts):
    kh = os.path.join(tmp, "known_hosts")
    cfg = os.path.join(tmp, "ssh_config")
    text = ""
    with open(kh, "w") as f:
        for alias, s in hosts.items():
            f.write(f"[127.0.0.1]:{s.port} {s.host_key}\n")
            text += f"Host {alias}\n  HostName 127.0.0.1\n  Port {s.port}\n"
    text += (f"Host *\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
             f"  IdentityAgent none\n  BatchMode yes\n  UserKnownHostsFile {kh}\n"
             "  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n"
             "  ControlMaster no\n")
    with open(cfg, "w") as f:
        f.write(text)
    return cfg


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, a, tmp, data, cfg, sshd, belay):
        self.a, self.tmp, self.cfg, self.sshd, self.belay = a, tmp, cfg, sshd, belay
        self.failures, self.warnings = [], []
        self.src = os.path.join(data, "src")        # sources, both directions
        self.remote = os.path.join(data, "remote")  # push destinations ("remote" side)
        self.local = os.path.join(data, "local")    # pull destinations
        for d in (self.src, self.remote, self.local):
            os.makedirs(d, exist_ok=True)
        scratch = os.path.join(tmp, "home")
        os.makedirs(scratch, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if k != "BELAY_FAILPOINT"}
        self.env["HOME"] = scratch
        self.benv = dict(self.env, BELAY_HOME=os.path.join(tmp, "belay-home"),
                         BELAY_SSH_CONFIG=cfg)

    # ---- reporting problems

    def fail(self, what, detail):
        msg = f"FAIL: {what}: {detail}"
        print(msg, file=sys.stderr, flush=True)
        self.failures.append(msg)

    def warn(self, what, detail):
        msg = f"SUSPICIOUS: {what}: {detail}"
        print(msg, file=sys.stderr, flush=True)
        self.warnings.append(msg)

    # ---- commands

    def rsh(self, cipher=None):
        return f"ssh -F {self.cfg}" + (f" -o Ciphers={cipher}" if cipher else "")

    def command(self, tool, direction, src, dst, tree=False, cipher=None):
        """argv for one copy. src/dst are absolute paths; the remote one is
        given as target:PATH to scp/rsync and as a bare path to belay."""
        r = (lambda p: f"target:{p}")
        if tool.startswith("belay"):
            via = ["--via", "sftp"] if tool == "belay-sftp" else []
            return [self.belay, direction, "target", src, dst, "--json"] + via
        if tool == "scp":
            c = ["scp", "-F", self.cfg, "-q"] + (["-o", f"Ciphers={cipher}"] if cipher else [])
            c += ["-r"] if tree else []
            return c + ([src, r(dst)] if direction == "push" else [r(src), dst])
        if tool == "rsync":
            # Trailing slash on a tree's source: its contents become dst
            # (what `scp -r` and `belay` do when dst is absent).
            s = src + "/" if tree else src
            c = ["rsync", "-a", "-e", self.rsh(cipher)]
            return c + ([s, r(dst)] if direction == "push" else [r(s), dst])
        raise ValueError(tool)

    def run(self, cmd, env=None):
        t = time.perf_counter()
        r = subprocess.run(cmd, env=env or (self.benv if cmd[0] == self.belay else self.env),
                           stdin=subprocess.DEVNULL, capture_output=True, text=True)
        return r, time.perf_counter() - t

    # ---- verification

    def verify(self, what, r, src, dst, tree, belay_json=False, expect_files=None,
               expect_bytes=None):
        """True if the copy is right; else reports FAIL (and returns False)."""
        if r.returncode != 0:
            self.fail(what, f"exit {r.returncode}; stderr: {r.stderr.strip()[-2000:]}")
            return False
        ok = True
        if tree:
            d = subprocess.run(["diff", "-r", "-q", "--no-dereference", src, dst],
                               capture_output=True, text=True)
            if d.returncode != 0:
                self.fail(what, f"tree differs from source: {(d.stdout + d.stderr)[:2000]}")
                ok = False
        else:
            if not os.path.isfile(dst):
                self.fail(what, f"{dst} missing")
                return False
            c = subprocess.run(["cmp", src, dst], capture_output=True, text=True)
            if c.returncode != 0:
                self.fail(what, f"content differs: {(c.stdout + c.stderr).strip()} "
                                f"(sizes {os.path.getsize(src)} vs {os.path.getsize(dst)})")
                ok = False
        stray = sorted(n for n in entries(os.path.dirname(dst)) if n != os.path.basename(dst))
        if stray:
            self.fail(what, f"stray entries next to the destination: {stray}")
            ok = False
        if belay_json:
            ok = self.check_json(what, r.stdout, expect_files, expect_bytes) and ok
            if r.stderr.strip():
                self.warn(what, f"belay wrote to stderr: {r.stderr.strip()[:500]}")
            pairs = [(src, dst)]
            if tree:
                for d, _, names in os.walk(src):
                    rel = os.path.relpath(d, src)
                    pairs += [(os.path.join(d, n), os.path.join(dst, rel, n)) for n in names]
            bad_mode, bad_mtime = [], []
            for a, b in pairs:  # the contract: permission bits and mtime are kept
                s, t = os.lstat(a), os.lstat(b)
                if (s.st_mode & 0o7777) != (t.st_mode & 0o7777):
                    bad_mode.append(f"{b}: {oct(s.st_mode & 0o7777)} -> {oct(t.st_mode & 0o7777)}")
                if not tree or os.path.isfile(a):  # a directory's mtime moves as it fills
                    if int(s.st_mtime) != int(t.st_mtime):
                        bad_mtime.append(f"{b}: {s.st_mtime} -> {t.st_mtime}")
            if bad_mode:
                self.warn(what, f"mode not kept on {len(bad_mode)} entries, e.g. {bad_mode[:3]}")
            if bad_mtime:
                self.warn(what, f"mtime not kept on {len(bad_mtime)} entries, e.g. {bad_mtime[:3]}")
        return ok

    def parse_json(self, what, out):
        try:
            return json.loads(out)
        except ValueError:
            self.fail(what, f"--json output is not one JSON object: {out[:500]!r}")
            return None

    def check_json(self, what, out, files, nbytes):
        j = self.parse_json(what, out)
        if j is None:
            return False
        ok = True
        want = {"files": files, "files_transferred": files, "files_skipped": 0,
                "bytes": nbytes, "bytes_sent": nbytes, "bytes_resumed": 0}
        for k, v in want.items():
            if v is not None and j.get(k) != v:
                self.fail(what, f"--json {k} = {j.get(k)!r}, expected {v}: {out.strip()}")
                ok = False
        return ok

    # ---- sources

    def make_sources(self):
        a = self.a
        self.big = os.path.join(self.src, "big.bin")
        if a.sections & {1, 3}:
            with open(self.big, "wb") as f:
                left = a.size_mib * MiB
                while left:
                    n = min(left, 16 * MiB)
                    f.write(os.urandom(n))
                    left -= n
        self.tree = os.path.join(self.src, "tree")
        if 2 in a.sections:
            for i in range(a.dirs):
                d = os.path.join(self.tree, f"d{i:03d}")
                os.makedirs(d)
                for k in range(a.files):
                    name = os.path.join(d, f"f{k:03d}.dat")
                    with open(name, "wb") as f:
                        f.write(os.urandom(a.file_kib * 1024))
                    if k % 10 == 1:  # some modes to keep (belay is checked for it)
                        os.chmod(name, 0o600 if k % 20 == 1 else 0o755)
        sh(["sync"])

    # ---- section 1 and 2: timed first copies

    def timed_copies(self, tree, tools, ciphers):
        """{(direction, label): [seconds...]} over reps, tool order rotated."""
        a = self.a
        src = self.tree if tree else self.big
        name = os.path.basename(src)
        files = a.dirs * a.files if tree else 1
        nbytes = files * a.file_kib * 1024 if tree else a.size_mib * MiB
        plan = [(t, None) for t in tools] + [(t, c) for c in ciphers for t in tools
                                             if not t.startswith("belay")]
        out = {}
        for rep in range(a.reps):
            for direction in ("push", "pull"):
                k = (rep + (direction == "pull")) % len(plan)
                for tool, cipher in plan[k:] + plan[:k]:
                    if tool.startswith("belay") and not self.belay:
                        continue
                    label = "belay --via sftp" if tool == "belay-sftp" else \
                        tool + (" -r" if tool == "scp" and tree else "") + \
                        (" -a" if tool == "rsync" else "") + \
                        (f" (-o Ciphers={cipher})" if cipher else "")
                    ddir = self.remote if direction == "push" else self.local
                    dst = os.path.join(ddir, name)
                    clear_dir(ddir)
                    sh(["sync"])
                    cmd = self.command(tool, direction, src, dst, tree, cipher)
                    r, dt = self.run(cmd)
                    what = f"{'tree' if tree else 'big file'} {direction} {label} rep {rep + 1}"
                    ok = self.verify(what, r, src, dst, tree, tool.startswith("belay"), files,
                                     nbytes)
                    out.setdefault((direction, label), []).append(dt if ok else None)
                    print(f"  {what}: {dt:.2f} s{'' if ok else '  FAILED'}", file=sys.stderr,
                          flush=True)
                    self.sshd.settle()
        clear_dir(self.remote)
        clear_dir(self.local)
        return out

    # ---- section 3: resume after a cut

    def belay_resume(self, direction):
        a = self.a
        size, cut = a.size_mib * MiB, a.size_mib * MiB // 2
        ddir = self.remote if direction == "push" else self.local
        dst = os.path.join(ddir, "big.bin")
        clear_dir(ddir)
        sh(["sync"])
        cmd = self.command("belay", direction, self.big, dst)
        what = f"resume {direction} belay"
        r1, t1 = self.run(cmd, env=dict(self.benv, BELAY_FAILPOINT=f"transfer-bytes:{cut}"))
        settle = self.sshd.settle()
        if settle:
            self.warn(what, settle)
        row = {"direction": direction, "tool": "belay", "cut": "failpoint",
               "first_run_s": t1, "first_run_exit": r1.returncode, "first_run_bytes": cut}
        if r1.returncode != -signal.SIGKILL:
            self.fail(what, f"first run with BELAY_FAILPOINT=transfer-bytes:{cut} ended with "
                            f"{r1.returncode}, not SIGKILL; stdout {r1.stdout.strip()[:300]!r} "
                            f"stderr {r1.stderr.strip()[:500]!r}")
        after = quiet_entries(ddir)
        row["after_cut"] = after
        part = ".big.bin.belay-part"
        row["partial"] = after.get(part)
        if "big.bin" in after:
            self.fail(what, f"the final name exists after the cut ({after['big.bin']} bytes): "
                            f"{after}")
        if part not in after:
            self.warn(what, f"no {part} after the cut: {after}")
        elif os.stat(os.path.join(ddir, part)).st_mode & 0o777 != 0o600:
            self.warn(what, f"partial has mode "
                            f"{oct(os.stat(os.path.join(ddir, part)).st_mode & 0o777)}, not 0600")
        r2, t2 = self.run(cmd)
        row["second_run_s"] = t2
        ok = self.verify(what + " (re-run)", r2, self.big, dst, False)
        j = self.parse_json(what, r2.stdout) if r2.returncode == 0 else None
        if j:
            row["json"] = j
            row["second_run_bytes"] = j.get("bytes_sent")
            row["bytes_resumed"] = j.get("bytes_resumed")
            row["first_run_bytes"] = max([cut] + list(after.values()))
            if isinstance(j.get("bytes_sent"), int):
                row["sent_again"] = row["first_run_bytes"] + j["bytes_sent"] - size
            if row["partial"] is not None and j.get("bytes_resumed") not in (None, row["partial"]):
                self.warn(what, f"bytes_resumed {j.get('bytes_resumed')} != partial size "
                                f"{row['partial']} found after the cut")
            if j.get("bytes_sent", 0) + j.get("bytes_resumed", 0) != size:
                self.warn(what, f"bytes_sent + bytes_resumed = "
                                f"{j.get('bytes_sent', 0) + j.get('bytes_resumed', 0)} != {size}")
        row["ok"] = ok
        self.sshd.settle()
        clear_dir(ddir)
        return row

    def rsync_resume(self, direction, sig):
        a = self.a
        size, cut = a.size_mib * MiB, a.size_mib * MiB // 2
        ddir = self.remote if direction == "push" else self.local
        dst = os.path.join(ddir, "big.bin")
        clear_dir(ddir)
        sh(["sync"])
        what = f"resume {direction} rsync --partial ({sig.name})"
        base = ["rsync", "-a", "--partial", "-e", self.rsh()]
        args = [self.big, f"target:{dst}"] if direction == "push" else [f"target:{self.big}", dst]
        t = time.perf_counter()
        p = subprocess.Popen(base + args, env=self.env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
        seen = 0
        try:
            while p.poll() is None:
                seen = max(entries(ddir).values(), default=0)
                if seen >= cut:
                    break
                time.sleep(0.002)
            if p.poll() is not None:
                raise RuntimeError(f"{what}: rsync ended ({p.returncode}) before the cut; "
                                   f"{p.stderr.read().decode()[-500:]}")
            # SIGKILL: the whole local side (rsync processes and its ssh), as a
            # crash would; SIGTERM: to the rsync processes only, as `kill PID`
            # would (rsync's handler then saves the partial).
            if sig == signal.SIGKILL:
                os.killpg(p.pid, signal.SIGKILL)
            else:
                for pid in [p.pid] + descendants(p.pid):
                    if open(f"/proc/{pid}/comm").read().strip() == "rsync":
                        kill(pid, sig)
            p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        t1 = time.perf_counter() - t
        deadline = time.time() + 30
        while group_members(p.pid) and time.time() < deadline:  # its ssh, on EOF
            time.sleep(0.05)
        for pid in group_members(p.pid):
            kill(pid)
        settle = self.sshd.settle()
        if settle:
            self.warn(what, settle)
        after = quiet_entries(ddir)
        row = {"direction": direction, "tool": "rsync --partial", "cut": sig.name,
               "first_run_s": t1, "first_run_exit": p.returncode, "first_run_bytes": seen,
               "after_cut": after, "partial": after.get("big.bin")}
        # It carried at least what was on disk when cut, and what is on disk now.
        row["first_run_bytes"] = max([seen] + list(after.values()))
        t = time.perf_counter()
        r2 = subprocess.run(base + ["--stats"] + args, env=self.env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True)
        row["second_run_s"] = time.perf_counter() - t
        leftovers = {n: s for n, s in entries(ddir).items() if n != "big.bin"}
        row["left_behind"] = leftovers
        for n in leftovers:  # the kill's temp file: not ours to judge, just report
            os.unlink(os.path.join(ddir, n))
        row["ok"] = self.verify(what + " (re-run)", r2, self.big, dst, False)
        m = re.search(r"Literal data: ([\d,.]+)", r2.stdout)
        if m:
            lit = int(m.group(1).replace(",", "").replace(".", ""))
            row["second_run_bytes"] = lit
            row["sent_again"] = row["first_run_bytes"] + lit - size
        elif r2.returncode == 0:
            self.fail(what, f"no 'Literal data' in --stats output: {r2.stdout[-800:]}")
        self.sshd.settle()
        clear_dir(ddir)
        return row


# ---------------------------------------------------------------- cipher

def negotiated_ciphers(probe, cfg, belay, benv, tmp):
    """Cipher each client gets from an sshd with LogLevel DEBUG1 (its log
    names it per connection): `ssh` and a `belay push` of a small file."""
    def one(cmd, env):
        before = len(probe.log())
        r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True)
        deadline = time.time() + 5
        while time.time() < deadline:
            m = re.search(r"kex: client->server cipher: (\S+)", probe.log()[before:])
            if m:
                return m.group(1), r
            time.sleep(0.05)
        return None, r
    ssh_c, _ = one(["ssh", "-F", cfg, "cipherprobe", "true"], None)
    belay_c = None
    if belay:
        small = os.path.join(tmp, "cipher-probe.txt")
        with open(small, "w") as f:
            f.write("x\n")
        belay_c, r = one([belay, "push", "cipherprobe", small, small + ".copy"], benv)
        if r.returncode != 0:
            print(f"belay push to the cipher probe failed ({r.returncode}): {r.stderr.strip()}",
                  file=sys.stderr)
    offered = ""
    for line in sh(["ssh", "-G", "-F", cfg, "target"]).splitlines():
        if line.startswith("ciphers "):
            offered = line.split(" ", 1)[1]
    return ssh_c, belay_c, offered


# ---------------------------------------------------------------- report

def versions(belay):
    ssh_v = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.split(",")[0]
    rsync_v = sh(["rsync", "--version"]).splitlines()[0]
    belay_v = (subprocess.run([belay, "--version"], capture_output=True, text=True).stdout.strip()
               if belay else "(skipped)")
    return {"openssh": ssh_v.strip(), "rsync": rsync_v.strip(), "belay": belay_v,
            "kernel": platform.release(), "cpus": os.cpu_count()}


def med(xs):
    good = [x for x in xs if x is not None]
    return statistics.median(good) if good and len(good) == len(xs) else None


def report_copies(title, res, amount, unit, target, info):
    """amount per second in `unit` (size/1e6 for MB/s, a file count for files/s)."""
    print(f"\n{title}")
    head = (f"{'dir':5} {'tool':36} {'median':>8} {unit:>8}  {'runs (s)':24} "
            f"{'belay ratio':>11}  target")
    print(head)
    print("-" * len(head))
    rows = []
    order = list(dict.fromkeys(label for _, label in res))  # plan order (rep 1's push)
    for direction in ("push", "pull"):
        b = med(res.get((direction, "belay"), []))
        for label in order:
            xs = res.get((direction, label))
            if xs is None:
                continue
            m = med(xs)
            runs = " ".join("FAIL" if x is None else f"{x:.2f}" for x in xs)
            mbs = amount / m if m else None
            ratio = (m / b) if (m and b and label != "belay") else None
            forced = "Ciphers=" in label or "--via" in label
            verdict = ""
            if ratio is not None:
                verdict = "(info)" if forced else (
                    f">= {target}x: {'MET' if ratio >= target else 'NOT MET'}")
            print(f"{direction:5} {label:36} "
                  f"{(f'{m:.2f} s' if m else 'FAILED'):>8} "
                  f"{(f'{mbs:.1f}' if mbs else '-'):>8}  {runs:24} "
                  f"{(f'{ratio:.2f}x' if ratio else ''):>11}  {verdict}")
            rows.append({"direction": direction, "tool": label, "seconds": xs, "median_s": m,
                         unit.replace("/", "_per_"): mbs, "belay_ratio": ratio})
    for line in info:
        print(line)
    return rows


def report_resume(rows, size, target_mib):
    print(f"\n3. resume after a cut at {mib(size // 2)} of {mib(size)} (one run each)")
    head = (f"{'dir':5} {'tool':16} {'cut':9} {'kept after cut':>15} {'run 2 sent':>12} "
            f"{'sent again':>12} {'run 2':>7}  left behind / target")
    print(head)
    print("-" * len(head))
    for r in rows:
        kept = mib(r["partial"]) if r.get("partial") is not None else "none"
        r2 = mib(r["second_run_bytes"]) if r.get("second_run_bytes") is not None else "-"
        again = mib(r["sent_again"]) if r.get("sent_again") is not None else "-"
        note = ""
        if r["tool"] == "belay" and r.get("sent_again") is not None:
            note = f"<= {target_mib} MiB: {'MET' if r['sent_again'] <= target_mib * MiB else 'NOT MET'}"
        if r.get("left_behind"):
            note = ", ".join(f"{n} {mib(s)}" for n, s in r["left_behind"].items())
        if not r.get("ok"):
            note = "FAILED (see FAILURES)"
        print(f"{r['direction']:5} {r['tool']:16} {r['cut']:9} {kept:>15} {r2:>12} {again:>12} "
              f"{r['second_run_s']:6.2f}s  {note}")
    print("  cut: belay's failpoint SIGKILLs belay itself; rsync SIGKILL = its local process "
          "group (rsync + ssh),\n    SIGTERM = the local rsync processes only, so rsync's handler "
          "can keep the partial\n  kept after cut: the partial the next run can use (belay: .big.bin.belay-part; "
          "rsync: big.bin)\n  run 2 sent: file bytes carried by the re-run (belay bytes_sent, "
          "rsync Literal data)\n  sent again: run 1 bytes + run 2 sent - file size; run 1 bytes "
          "(a lower bound) is the largest of the\n    partial's size after the cut and (belay) "
          "the failpoint threshold / (rsync) the partial's size when it was cut")


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3, help="repetitions for sections 1 and 2")
    ap.add_argument("--sections", default="1,2,3", help="comma list of 1,2,3")
    ap.add_argument("--size-mib", type=int, default=1024, help="big file size (MiB)")
    ap.add_argument("--dirs", type=int, default=100, help="tree: directories")
    ap.add_argument("--files", type=int, default=100, help="tree: files per directory")
    ap.add_argument("--file-kib", type=int, default=4, help="tree: KiB per file")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where the temp dir goes")
    ap.add_argument("--tmpfs", action="store_true",
                    help="sources and destinations on a tmpfs inside the temp dir (mounted "
                         "before sshd starts, so its namespace shares it): takes the disk's "
                         "file-creation noise out")
    ap.add_argument("--belay", help="belay binary to use (default: build the release one)")
    ap.add_argument("--skip-belay", action="store_true", help="measure only scp/rsync")
    ap.add_argument("--sftp", action="store_true",
                    help="sections 1 and 2 also time `belay --via sftp` (informational rows: "
                         "the path for hosts that refuse commands)")
    ap.add_argument("--json", help="also write the results as JSON to this file")
    a = ap.parse_args()
    a.sections = {int(s) for s in a.sections.split(",") if s}
    prerequisites()
    need = (3 * a.size_mib * MiB if a.sections & {1, 3} else 0) + 3 * GiB // 4
    if a.tmpfs:
        with open("/proc/meminfo") as f:
            free = int(next(x for x in f if x.startswith("MemAvailable")).split()[1]) * 1024
        where = "memory (--tmpfs)"
    else:
        free, where = shutil.disk_usage(a.dir).free, a.dir
    if free < need + (GiB if a.tmpfs else 0):
        sys.exit(f"{where}: {free / GiB:.1f} GiB free, need {need / GiB:.1f} GiB")
    belay = None if a.skip_belay else (a.belay or build_belay())
    tmp = tempfile.mkdtemp(prefix="belay-bench-transfer.", dir=a.dir)
    sshd = probe = None
    result = {}
    data = os.path.join(tmp, "data")
    os.mkdir(data)
    mounted = False
    try:
        if a.tmpfs:
            sh(["mount", "-t", "tmpfs", "-o", f"size={need + GiB // 4},mode=0700", "tmpfs", data])
            mounted = True
        key = os.path.join(tmp, "id_bench")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-client", "-f", key])
        pub = open(key + ".pub").read()
        sshd = Sshd(tmp, "sshd", pub)
        probe = Sshd(tmp, "cipherprobe", pub, loglevel="DEBUG1")
        cfg = write_client_files(tmp, key, {"target": sshd, "cipherprobe": probe})
        b = Bench(a, tmp, data, cfg, sshd, belay)
        ssh_c, belay_c, offered = negotiated_ciphers(probe, cfg, belay, b.benv, tmp)
        probe.stop()
        v = versions(belay)
        result.update(versions=v, ciphers={"ssh": ssh_c, "belay": belay_c, "offered": offered})
        fs = "tmpfs (--tmpfs)" if a.tmpfs else sh(["stat", "-f", "-c", "%T", data]).strip()
        print(f"belay: {v['belay']} ({belay})\n{v['openssh']} (client and sshd), "
              f"{v['rsync']}\nLinux {v['kernel']}, {v['cpus']} CPUs; temp dir {tmp}; "
              f"files on {fs}")
        result["filesystem"] = fs
        print(f"ssh -G ciphers: {offered}\nnegotiated with this sshd: ssh {ssh_c}, "
              f"belay {belay_c}", flush=True)
        if not ssh_c or (belay and not belay_c):
            b.warn("cipher", "could not read a negotiated cipher from the sshd log")
        forced = [belay_c] if belay_c and ssh_c and belay_c != ssh_c else []

        b.make_sources()
        size = a.size_mib * MiB
        sftp_row = ["belay-sftp"] if a.sftp else []
        if 1 in a.sections:
            print("\nsection 1: big file", file=sys.stderr)
            res = b.timed_copies(False, ["belay", "scp", "rsync"] + sftp_row, forced)
            info = [f"  same cipher on both sides ({ssh_c}): no forced-cipher row needed"] \
                if not forced else [f"  rows with -o Ciphers={belay_c}: OpenSSH forced to "
                                    f"belay's cipher (belay does not read Ciphers)"]
            result["big"] = report_copies(
                f"1. {mib(size)} random file, first copy (median of {a.reps}; MB = 10^6 bytes; "
                "belay ratio = belay MB/s / other MB/s)", res, size / 1e6, "MB/s", 0.9, info)
        if 2 in a.sections:
            print("\nsection 2: tree", file=sys.stderr)
            res = b.timed_copies(True, ["belay", "rsync", "scp"] + sftp_row, [])
            n = a.dirs * a.files
            result["tree"] = report_copies(
                f"2. tree of {n} files x {a.file_kib} KiB ({a.dirs} dirs), first copy "
                f"(median of {a.reps}; belay ratio = other time / belay time)",
                res, n, "files/s", 1.5, [])
        if 3 in a.sections:
            print("\nsection 3: resume", file=sys.stderr)
            rows = []
            for direction in ("push", "pull"):
                if belay:
                    rows.append(b.belay_resume(direction))
                for sig in (signal.SIGKILL, signal.SIGTERM):
                    rows.append(b.rsync_resume(direction, sig))
            report_resume(rows, size, 8)
            result["resume"] = rows
        if b.warnings:
            print("\nsuspicious:\n  " + "\n  ".join(b.warnings))
        if b.failures:
            print("\nFAILURES (wrong or failed copies):\n  " + "\n  ".join(b.failures))
        result.update(failures=b.failures, warnings=b.warnings)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1, default=str)
        if b.failures:
            sys.exit(1)
    finally:
        for s in (probe, sshd):
            if s:
                s.stop()
        if mounted:
            time.sleep(0.2)  # sshd's namespace (holding a copy of the mount) ends
            if subprocess.run(["umount", data], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", data], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
