#!/usr/bin/env bash
# The whole test suite: the README's test command and what CI runs.
#
# On a fresh Debian machine, run as root, it first installs what the tests
# drive for real (OpenSSH server and client, iproute2 and nftables for
# network-namespace hosts, rsync and Slurm for later suites, inotify-tools
# for the output follower on the test hosts, Chromium and its WebDriver for
# the dashboard). Tests that
# need those parts fail, never skip, when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
need() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ] || packages+=("$2"); }
need /usr/sbin/sshd openssh-server
need ssh openssh-client
need ssh-keygen openssh-client
need ip iproute2
need nft nftables
need rsync rsync
need inotifywait inotify-tools
# The app tests install a real jupyter-server into a virtualenv (kept
# under target/) from the Python package index.
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || packages+=(python3-venv)
# belay shell: the tests drive a real pty with it, and the remote side keeps
# persistent shells in it.
need tmux tmux
# Slurm hosts: a real single-node Slurm (slurmctld, slurmd, the commands)
# authenticated by a private munged, started by the tests themselves.
need slurmctld slurm-wlm
need munged munge
need mungekey munge
# TLS on `serve --listen`: certificates made at test time, real clients.
need openssl openssl
need curl curl
# The dashboard: a real headless Chromium driven through WebDriver.
need chromium chromium
need chromedriver chromium-driver
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: missing ${packages[*]}; run as root (or install them) first" >&2
    exit 1
  fi
  echo "test.sh: installing ${packages[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
# sshd's privilege-separation directory (no service manager starts it here).
if [ "$(id -u)" -eq 0 ]; then install -d -m 0755 /run/sshd; fi

cargo test --workspace --locked "$@"

# The daemon matrix: the suites that must behave the same with and without
# the daemon run again, every command going through it (the run above
# works directly: tests/support `daemon_mode`). Not here: `forward`,
# `daemon`, `tokens`, `tls` pick their mode themselves; `queue` is about
# the direct pass (`belay advance`); `shared_home` and `submit_outcomes`
# change per command what a long-lived daemon only reads once (the home's
# file system type, a CLI SIGKILLed mid-submit, another ssh config).
BELAY_TEST_DAEMON=1 cargo test -p belay-cli --test integration --locked -- \
  lifecycle:: remote:: recovery:: chaos:: hold:: shell:: slurm:: slurm_into:: \
  hosts_and_outputs:: ssh_trust:: transfer:: store_and_input:: doctor_connection:: \
  secrets:: gpus:: dashboard:: streaming:: remote_netns:: states:: exec:: \
  transfer_hardening:: doctor_host:: app::
