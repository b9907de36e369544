//! The command-line grammar (clap derive). Help texts carry examples; the
//! contract is shared/DESIGN.md's "Command-line contract".

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "belay",
    version,
    about = "Run and track jobs on remote machines over SSH, safe when the link falls.",
    after_help = "Examples:\n  belay run local -- echo hello\n  belay run -d --name train local -- python train.py\n  belay run gpu1 --input train.py --output ckpt -- python train.py\n  belay push gpu1 ./data /scratch/data\n  belay ps\n  belay logs -f train\n  belay cancel train\n\nState lives in $BELAY_HOME (default: the platform data directory)."
)]
pub struct Cli {
    /// Use this OpenSSH config file instead of ~/.ssh/config (as `ssh -F`;
    /// also BELAY_SSH_CONFIG).
    #[arg(long, global = true, value_name = "FILE")]
    pub ssh_config: Option<std::path::PathBuf>,
    /// Show what belay does on stderr: -v each hop's steps, -vv also each
    /// authentication attempt and protocol script (also BELAY_LOG=debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Work directly, without the belay daemon (also BELAY_NO_DAEMON=1).
    /// By default commands go through the daemon for this BELAY_HOME,
    /// which is started when none answers.
    #[arg(long, global = true)]
    pub no_daemon: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command as a tracked job on HOST.
    #[command(
        after_help = "Examples:\n  belay run local -- sh -c 'echo hi; exit 3'    # streams output, exits 3\n  belay run -d --name build local -- 'make -j4'   # one argument: a shell command line\n  belay run --env LR=0.1 --workdir ~/proj local -- python train.py\n  belay run -d cluster --partition gpu --gpus 1 --time 4:00:00 -- python train.py\n  HF_TOKEN=… belay run gpu1 --secret HF_TOKEN --secret DB_PASS=@~/.dbpass -- python train.py\n\nOn a host with `scheduler = \"slurm\"` in config.toml (or with --scheduler slurm)\nthe job goes through sbatch on that login node: `pending` with Slurm's reason\nwhile queued, its Slurm id in `belay show`, `cancel` is scancel.\n\nOne argument after `--` is run as a shell command line; several are an\nexact argv. Attached runs stream output and exit with the job's code\n(128+N for signal N); Ctrl-C detaches and leaves the job running."
    )]
    Run(Box<RunArgs>),
    /// Run a quick, untracked command on many hosts at once (no job, nothing
    /// recorded): aliases, `local`, or patterns over your ssh config's Host names.
    #[command(
        after_help = "Examples:\n  belay exec 'gpu-*' -- nvidia-smi --query-gpu=name,memory.used --format=csv\n  belay exec node1 node2 node3 -- uptime\n  belay exec --group 'node*' -- cat /etc/os-release     # identical outputs merged\n  belay exec --parallel 64 --timeout 10s 'n??' -- 'df -h /scratch | tail -1'\n  belay exec --json 'gpu-*' -- hostname | jq -r '.hosts[] | select(.status != \"ok\") | .host'\n\nA pattern (`*`, `?`) is matched against the plain names on the `Host` lines\nof your OpenSSH config and its Includes; one that matches nothing is an error\n(exit 2). Each line a host prints is prefixed `host: ` (stderr lines go to\nstderr), or with --group each distinct output is printed once under the list\nof hosts that printed it. A summary follows on stderr: every host that did not\nsucceed, with its exit code, its SSH error (unreachable) or its timeout.\nExit status: 0 when the command succeeded on every host, else 1.\n\nOne argument after `--` is a shell command line; several are an exact argv.\nHosts behind the same jump host share the pacing of new connections there\n(at most 8 handshakes at once per gateway, below sshd's MaxStartups)."
    )]
    Exec(ExecArgs),
    /// List jobs (live ones; --all for every job).
    #[command(
        after_help = "Examples:\n  belay ps\n  belay ps --all --json | jq '.[] | select(.state==\"failed\")'"
    )]
    Ps(PsArgs),
    /// Show one job in detail, with its event log.
    #[command(after_help = "Examples:\n  belay show train\n  belay show 1a2b3c4d --json")]
    Show(ShowArgs),
    /// Print a job's output (stdout, or --stderr); -f follows until it ends.
    #[command(after_help = "Examples:\n  belay logs train\n  belay logs -f --stderr 1a2b")]
    Logs(LogsArgs),
    /// Wait for a job to end; exit with its code.
    #[command(after_help = "Example:\n  belay run -d --name t local -- sleep 5 && belay wait t")]
    Wait(JobArg),
    /// Stop jobs and everything they started (TERM, then KILL after --grace).
    #[command(
        after_help = "Examples:\n  belay cancel train\n  belay cancel --grace 30 1a2b3c4d 5e6f7a8b"
    )]
    Cancel(CancelArgs),
    /// End a debug hold (`run --hold-on-failure`): the job ends with its
    /// command's own exit code.
    #[command(after_help = "Examples:
  belay run --hold-on-failure 2h gpu1 -- python train.py
  belay shell train        # look around the failed job's machine
  belay release train      # done: the job ends `failed` with its code

`belay cancel` ends a hold too (the job ends `cancelled`). A hold ends by
itself at its time limit, kept on the host even with no belay running.")]
    Release(ReleaseArgs),
    /// Open a terminal on a job's host, in its directory with its
    /// environment (or on HOST, in the home directory).
    #[command(
        after_help = "Examples:\n  belay shell train                 # where job `train` runs, in its working directory\n  belay shell gpu1                  # a login shell on host gpu1\n  belay shell train -- nvidia-smi   # one command there (no terminal needed)\n  belay shell --new train           # a second shell beside the first\n  belay shell --end train           # end the job's shells\n\nWhen the host has tmux, the shell is a tmux session named belay-<job id>\n(or belay-<host>): it survives a dropped connection or a killed terminal,\nand `belay shell JOB` again re-attaches with the earlier output. Without\ntmux it is a plain shell that ends with the connection. belay exits with\nthe remote shell's exit status (0 after a tmux detach)."
    )]
    Shell(ShellArgs),
    /// Copy a local file or directory tree to HOST (resumable, verified).
    #[command(
        after_help = "Examples:\n  belay push gpu1 ./data /scratch/data        # a tree; re-run to resume\n  belay push gpu1 train.py '~/proj/'          # into an existing directory\n  belay push gpu1 ckpt.pt /scratch/ckpt.pt --json\n\nLike `cp -r`: into DEST if it is a directory, else as DEST (whose parent\nmust exist). DEST/ (trailing slash): into that directory, made if missing. An interrupted copy resumes when run again: complete files are\nskipped, a partial big file is verified and extended. Every file is checked\n(cksum on both ends) and appears under its final name only when complete.\n\nHosts that refuse commands but serve SFTP (sftp-only accounts) are copied\nto over SFTP, found out automatically; there each file is read back to be\nverified. `--via sftp` asks for SFTP, `--via exec` for the shell only."
    )]
    Push(PushArgs),
    /// Copy a file or directory tree from HOST to here (resumable, verified).
    #[command(
        after_help = "Examples:\n  belay pull gpu1 /scratch/run7/checkpoints ./ckpt\n  belay pull gpu1 '~/results/metrics.csv' .\n\nLike `cp -r`, resumable and verified as `push`. Remote entries that would\nwrite outside LOCAL (`..`, absolute names, symlinks pointing out) are refused.\nSFTP-only hosts work too (see `belay push --help`)."
    )]
    Pull(PullArgs),
    /// Copy a job's declared outputs (`run --output`) to this machine.
    #[command(
        after_help = "Examples:\n  belay fetch train                  # into $BELAY_HOME/results/<id>/\n  belay fetch train --to ./results\n\nAn attached `belay run` fetches its outputs by itself when the job ends."
    )]
    Fetch(FetchArgs),
    /// Diagnose how belay reaches HOST: each hop of the jump chain, then
    /// the host itself; names the failing hop, what was seen and the fix.
    #[command(
        after_help = "Examples:\n  belay doctor gpu1\n  belay doctor cluster --json | jq '.checks[] | select(.verdict != \"ok\")'\n\nChecks, in order, hop by hop: resolution (ssh -G), reachability (DNS, TCP,\nSSH banner), host key, authentication; then on the host: server capabilities\n(SFTP, forwarding, MaxSessions), the login shell, and the host (workroot,\nspace, clock, tools, jobs recorded elsewhere). The doctor makes a fresh\nconnection of its own and changes nothing. Exit status: 0 when nothing\nfailed (warnings included), 1 when a check failed."
    )]
    Doctor(DoctorArgs),
    /// Hosts: how belay reaches them (from your OpenSSH config) and their health.
    #[command(subcommand)]
    Host(HostCommand),
    /// Forward local ports or sockets to a job's node or a host (as `ssh -L`),
    /// held by the daemon and self-healing.
    #[command(
        after_help = "Examples:\n  belay forward train 8888                  # 127.0.0.1:<chosen> -> localhost:8888 on train's node\n  belay forward gpu1 9000:8888 6006         # 127.0.0.1:9000 -> 8888, and a chosen port -> 6006\n  belay forward node1 /run/user/1000/app.sock   # a Unix socket on the node\n  belay forward gpu1 /tmp/db.sock:db:5432   # a local socket (0600) -> db:5432 as gpu1 sees it\n  belay forward --list\n  belay forward --stop all\n\nREMOTE is a port (on the node's localhost), HOST:PORT as the node sees it, or\n/path.sock; LOCAL is a port (absent or 0: chosen) or a local socket path.\nThe forward lives in the daemon: the command returns once it listens and\nprints where. The local address never changes while the link drops and comes\nback (connections made meanwhile wait up to 30 s for it). A job's forward\ngoes to the node the job runs on and closes when the job ends. A daemon that\nwas killed binds its forwards again when it restarts (`--list` says so).\n--foreground (and --no-daemon) keep the forward in this command until Ctrl-C."
    )]
    Forward(ForwardArgs),
    /// Apps: a server (Jupyter, your own HTTP server) run as a job and
    /// reached through a forward, its URL printed.
    #[command(subcommand)]
    App(AppCommand),
    /// Run the belay daemon: pooled connections, work moved forward with
    /// no terminal open, the API on $BELAY_HOME/belay.sock.
    #[command(
        after_help = "Commands start a daemon by themselves when none answers (it exits after\n10 minutes with nothing to do; `[daemon] idle_exit = \"30m\"` in config.toml).\nRun one yourself in the foreground, e.g. as a systemd user unit:\n\n  # ~/.config/systemd/user/belay.service\n  [Unit]\n  Description=belay daemon\n\n  [Service]\n  ExecStart=%h/.cargo/bin/belay serve\n  Restart=on-failure\n\n  [Install]\n  WantedBy=default.target\n\n  systemctl --user enable --now belay\n\nExamples:\n  belay serve                # foreground, logs on stderr\n  belay serve --status       # is one running? (exit 1 if not)\n  belay serve --stop         # stop it (work in hand is safe: all is in the store)\n  curl --unix-socket \"$BELAY_HOME/belay.sock\" http://belay/v1/jobs\n\nThe API on the network (every request needs `Authorization: Bearer TOKEN`,\nfrom `belay token create`; a user token sees only its own jobs):\n  belay serve --listen 127.0.0.1:8765   # prints the web dashboard's URL (dashboard: http://…/?token=…)\n  curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8765/v1/jobs\n  belay serve --listen 0.0.0.0:8765 --tls-cert cert.pem --tls-key key.pem\n  curl --cacert ca.pem -H \"Authorization: Bearer $TOKEN\" https://gpu-gw:8765/v1/jobs\n  belay serve --listen 0.0.0.0:8765 --insecure   # plain HTTP off loopback: say so\n\nA non-loopback address needs TLS (--tls-cert/--tls-key; the files are read\nagain when they change, so a renewed certificate needs no restart) or an\nexplicit --insecure."
    )]
    Serve(ServeArgs),
    /// Tokens for the API on the network (`belay serve --listen`): each
    /// names a user who sees only their own jobs; admin tokens see all.
    #[command(subcommand)]
    Token(TokenCommand),
    /// One pass of the work no command waits on (the daemon's loop):
    /// recorded cancels, queued and interrupted submits, live jobs, and
    /// the outputs of ended jobs into $BELAY_HOME/results/<id>/.
    #[command(hide = true)]
    Advance {
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh or fish) on stdout.
    #[command(
        after_help = "Install:\n  bash:  belay completions bash > ~/.local/share/bash-completion/completions/belay\n  zsh:   belay completions zsh > ~/.zfunc/_belay   # with fpath+=(~/.zfunc) before compinit\n  fish:  belay completions fish > ~/.config/fish/completions/belay.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

/// Shells `belay completions` writes scripts for.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Start APP on HOST as a job, wait until it answers, forward to it and
    /// print its URL.
    #[command(
        after_help = "Examples:\n  belay app run gpu1 jupyter                  # JupyterLab (or jupyter-server) from your login shell's PATH\n  belay app run node7 jupyter --name nb2 -- --ServerApp.root_dir=/scratch/me\n  belay app run gpu1 http -- 'python3 -m my_server --unix-socket \"$BELAY_APP_SOCKET\"'\n  belay app run cluster jupyter --partition debug --time 2:00:00   # through Slurm\n\nThe app listens on a Unix socket in its job's directory (mode 0600), reached\nthrough the daemon's forward (127.0.0.1:PORT here); its token, if it has one,\nis made on the host and never stored or logged by belay. Your own templates:\n$BELAY_HOME/apps/NAME.toml (see `belay app list --templates`). One app of a name\nper host: a second `app run` says where the first is. --no-daemon keeps the\nforward in this command until Ctrl-C."
    )]
    Run {
        host: String,
        /// The app's template: `jupyter`, `http`, or one of yours.
        app: String,
        /// The job's name (default: the app's); one app per name per host.
        #[arg(long)]
        name: Option<String>,
        /// Open the URL in a browser ($BROWSER, else xdg-open).
        #[arg(long)]
        open: bool,
        /// How long to wait for the app to answer (e.g. 2m).
        #[arg(long, default_value = "3m", value_parser = parse_duration)]
        timeout: std::time::Duration,
        /// Print {job, app, host, url, local, remote} as JSON.
        #[arg(long)]
        json: bool,
        /// Who runs the app's job: `direct` or `slurm` (default: the
        /// host's `scheduler` in config.toml).
        #[arg(long, value_name = "direct|slurm")]
        scheduler: Option<String>,
        /// A secret for the app's job, as `run --secret`: NAME (from the
        /// environment or a terminal prompt) or NAME=@FILE (repeatable).
        #[arg(long = "secret", value_name = "NAME[=@FILE]")]
        secrets: Vec<String>,
        #[command(flatten)]
        slurm: Box<SlurmArgs>,
        /// Arguments for the app (jupyter: server options; http: the command).
        #[arg(last = true, value_name = "ARG", help_heading = "Arguments")]
        args: Vec<String>,
    },
    /// Apps that run (or, with --templates, the templates there are).
    #[command(after_help = "Examples:\n  belay app list\n  belay app list --templates")]
    List {
        #[arg(long)]
        json: bool,
        /// List the app templates (built-in and yours) instead.
        #[arg(long)]
        templates: bool,
    },
    /// Forward to a running app again (if needed) and print its URL.
    #[command(after_help = "Example:\n  belay app open jupyter")]
    Open {
        job: String,
        #[arg(long)]
        open: bool,
        #[arg(long)]
        json: bool,
    },
    /// End an app: its job, its forwards and its socket.
    #[command(after_help = "Example:\n  belay app stop jupyter")]
    Stop { job: String },
}

/// A duration (`90s`, `3m`); a bare number is seconds.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    parse_hold(text).map(std::time::Duration::from_secs)
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Hosts: ssh_config aliases, [user@]host[:port], `local`, or patterns
    /// (`gpu-*`) over the Host names of your ssh config.
    #[arg(required = true, value_name = "HOST|PATTERN")]
    pub hosts: Vec<String>,
    /// Hosts worked on at once.
    #[arg(long, value_name = "N", default_value_t = belay_core::fanout::DEFAULT_PARALLEL as u32,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub parallel: u32,
    /// Give up on a host after this long (`30s`, `2m`): `unreachable` if not
    /// connected by then, `timeout` if the command still runs.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Merge identical outputs under the list of hosts that printed them.
    #[arg(long)]
    pub group: bool,
    /// One JSON document: per host {host, status, exit_code, stdout, stderr, ms, error}.
    #[arg(long, conflicts_with = "group")]
    pub json: bool,
    /// The command to run, after `--`.
    #[arg(
        last = true,
        value_name = "CMD",
        help_heading = "Arguments",
        required = true
    )]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum HostCommand {
    /// Hosts belay knows: with jobs, in config.toml, or seen before.
    #[command(after_help = "Example:\n  belay host list --json")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// How belay will reach HOST: every hop as `ssh -G` resolves it.
    #[command(
        after_help = "Example:\n  belay host show gpu1      # hostname, user, port, keys, jump chain"
    )]
    Show {
        host: String,
        #[arg(long)]
        json: bool,
    },
    /// Connect and run one round trip, with timings per hop.
    #[command(after_help = "Examples:\n  belay host check gpu1 login2\n  belay host check --all")]
    Check {
        hosts: Vec<String>,
        /// Every host belay knows.
        #[arg(long, conflicts_with = "hosts")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Fetch HOST's key, show its fingerprint, and record it in known_hosts.
    #[command(
        after_help = "Examples:\n  belay host trust gpu1                       # asks on a terminal\n  belay host trust gpu1 --fingerprint SHA256:AbC…   # scripts: pin the expected key\n  belay host trust gpu1 --replace             # the machine was re-created: its key changed"
    )]
    Trust {
        host: String,
        /// Record the key without asking (check the printed fingerprint!).
        #[arg(long)]
        yes: bool,
        /// Record the key only if its fingerprint is exactly this.
        #[arg(long, value_name = "SHA256:…")]
        fingerprint: Option<String>,
        /// Replace a different key already recorded for HOST (after a
        /// machine was re-created; without it that case is refused, as an
        /// attack looks the same).
        #[arg(long)]
        replace: bool,
    },
    /// Remove HOST's entries from your known_hosts file(s).
    #[command(
        after_help = "Example:\n  belay host forget gpu1    # after the machine was re-created"
    )]
    Forget { host: String },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Host: an ssh_config alias, [user@]host[:port], or `local`.
    pub host: String,
    /// A name to refer to the job by (newest job of that name wins).
    #[arg(long)]
    pub name: Option<String>,
    /// Working directory on the host (default: the current directory on
    /// `local`, the home directory elsewhere; `~/x` is relative to home).
    #[arg(long)]
    pub workdir: Option<String>,
    /// Set an environment variable for the job (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Give the job the secret NAME as an environment variable (repeatable):
    /// its value from the environment variable NAME, from FILE with
    /// NAME=@FILE, or asked for (echo off) on a terminal; never on the
    /// command line. It reaches the host on an SSH channel's stdin and is
    /// kept in no log, store or job file; output showing it prints `***`.
    #[arg(long = "secret", value_name = "NAME[=@FILE]")]
    pub secrets: Vec<String>,
    /// Do not wait: print the job id and return.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Run the command with /bin/sh instead of your login shell (skips
    /// your profile: faster start, but no `module`/conda set-up).
    #[arg(long)]
    pub no_login_shell: bool,
    /// Copy LOCAL (file or directory) into the job's inputs directory before
    /// it starts, as NAME (default: LOCAL's name). Without --workdir the
    /// job then runs in that directory ($BELAY_INPUTS). Repeatable.
    #[arg(long = "input", value_name = "LOCAL[:NAME]")]
    pub inputs: Vec<String>,
    /// A file or directory the job produces (relative to its working
    /// directory), fetched when an attached run ends or by `belay fetch`.
    /// Repeatable.
    #[arg(long = "output", value_name = "PATH")]
    pub outputs: Vec<String>,
    /// With -d: print the job as JSON instead of its id.
    #[arg(long, requires = "detach")]
    pub json: bool,
    /// Refuse a host that does not answer, even where the job would be
    /// queued until it does (through the daemon); direct mode always
    /// refuses.
    #[arg(long)]
    pub no_queue: bool,
    /// If the command fails, keep the job (state `held`: its directory,
    /// environment and machine) for DUR, e.g. `30m`, `2h`, for `belay
    /// shell JOB`; `belay release JOB` ends it sooner. The limit is kept
    /// on the host. (A job can also ask for a hold itself: `touch
    /// "$BELAY_JOB_DIR/hold"`, held even on success.)
    #[arg(long, value_name = "DUR", value_parser = parse_hold)]
    pub hold_on_failure: Option<u64>,
    /// Who runs the job on the host: `direct` (a detached process) or
    /// `slurm` (sbatch on a login node). Default: the host's `scheduler`
    /// in config.toml, else direct.
    #[arg(long, value_name = "direct|slurm")]
    pub scheduler: Option<String>,
    #[command(flatten)]
    pub slurm: SlurmArgs,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD", help_heading = "Arguments")]
    pub command: Vec<String>,
}

/// Slurm resources of a job: each becomes an `#SBATCH` line of its batch
/// script (the host's `[hosts.H.slurm]` defaults fill in the rest).
#[derive(Args, Debug, Default, Clone)]
#[command(next_help_heading = "Slurm (with scheduler slurm)")]
pub struct SlurmArgs {
    /// Partition (sbatch --partition).
    #[arg(long, value_name = "P")]
    pub partition: Option<String>,
    /// Time limit, in any form sbatch takes: `30`, `2:00:00`, `1-0`.
    #[arg(long, value_name = "T")]
    pub time: Option<String>,
    /// Number of nodes.
    #[arg(long, value_name = "N")]
    pub nodes: Option<String>,
    /// Number of tasks.
    #[arg(long, value_name = "N")]
    pub ntasks: Option<String>,
    /// CPUs per task (sbatch --cpus-per-task).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// Memory per node, e.g. `16G`.
    #[arg(long, value_name = "M")]
    pub mem: Option<String>,
    /// GPUs, e.g. `1` or `a100:2`.
    #[arg(long, value_name = "G")]
    pub gpus: Option<String>,
    /// Account to charge.
    #[arg(long, value_name = "A")]
    pub account: Option<String>,
    /// Quality of service.
    #[arg(long, value_name = "Q")]
    pub qos: Option<String>,
    /// Node features, e.g. `a100&ib`.
    #[arg(long, value_name = "C")]
    pub constraint: Option<String>,
    /// Any other sbatch option, passed as given (repeatable), e.g.
    /// `--sbatch-arg=--exclusive`.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

impl SlurmArgs {
    pub fn resources(&self) -> belay_core::config::SlurmResources {
        belay_core::config::SlurmResources {
            partition: self.partition.clone(),
            time: self.time.clone(),
            nodes: self.nodes.clone(),
            ntasks: self.ntasks.clone(),
            cpus: self.cpus.clone(),
            mem: self.mem.clone(),
            gpus: self.gpus.clone(),
            account: self.account.clone(),
            qos: self.qos.clone(),
            constraint: self.constraint.clone(),
            sbatch_args: self.sbatch_args.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Run detached, logging to $BELAY_HOME/serve.log and exiting when idle
    /// (what commands start by themselves).
    #[arg(long, conflicts_with_all = ["status", "stop"])]
    pub background: bool,
    /// Say whether a daemon serves this BELAY_HOME (exit 1 if none).
    #[arg(long, conflicts_with = "stop")]
    pub status: bool,
    /// Stop the daemon serving this BELAY_HOME.
    #[arg(long)]
    pub stop: bool,
    /// With --status: print JSON.
    #[arg(long, requires = "status")]
    pub json: bool,
    /// Also serve the API on TCP at ADDR (IP:PORT; port 0 picks one, named
    /// by `serve --status`). Every request needs a token (`belay token`).
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["status", "stop", "background"])]
    pub listen: Option<String>,
    /// Serve --listen as plain HTTP on a non-loopback address (tokens
    /// travel in clear: only on a network you trust).
    #[arg(long, requires = "listen")]
    pub insecure: bool,
    /// Serve --listen with TLS: the certificate chain (PEM). Read again
    /// when the file changes (a renewed certificate needs no restart).
    #[arg(long, value_name = "FILE", requires_all = ["listen", "tls_key"], conflicts_with = "insecure")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM; mode 0600: refused when group or
    /// others may read it).
    #[arg(long, value_name = "FILE", requires_all = ["listen", "tls_cert"], conflicts_with = "insecure")]
    pub tls_key: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a token for NAME and print it, once (only its hash is kept).
    #[command(
        after_help = "Examples:\n  belay token create alice            # alice's jobs only\n  belay token create ops --admin      # every job\n  TOKEN=$(belay token create ci)      # the token is the only line on stdout"
    )]
    Create {
        /// Who the token is for: the owner of the jobs it submits.
        name: String,
        /// See and act on every user's jobs, and manage the daemon.
        #[arg(long)]
        admin: bool,
    },
    /// Tokens: names, admin, created, last used (never the tokens).
    #[command(after_help = "Example:\n  belay token list --json")]
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke NAME's token: refused from the next request on.
    #[command(after_help = "Example:\n  belay token revoke alice")]
    Revoke { name: String },
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Host: an ssh_config alias, [user@]host[:port], or `local`.
    pub host: String,
    /// Local file or directory.
    pub local: std::path::PathBuf,
    /// Destination on the host (absolute, `~/…`, or relative to home).
    pub remote: String,
    /// Print a JSON summary (files, bytes sent, bytes resumed…).
    #[arg(long)]
    pub json: bool,
    /// How to reach the host's files: `auto` (the shell; SFTP if the host
    /// refuses commands), `exec` (the shell only) or `sftp`.
    #[arg(long, value_name = "auto|exec|sftp", default_value = "auto")]
    pub via: belay_core::transfer::Via,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Host: an ssh_config alias, [user@]host[:port], or `local`.
    pub host: String,
    /// File or directory on the host (absolute, `~/…`, or relative to home).
    pub remote: String,
    /// Local destination.
    pub local: std::path::PathBuf,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
    /// How to reach the host's files: `auto` (the shell; SFTP if the host
    /// refuses commands), `exec` (the shell only) or `sftp`.
    #[arg(long, value_name = "auto|exec|sftp", default_value = "auto")]
    pub via: belay_core::transfer::Via,
}

#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Host: an ssh_config alias, [user@]host[:port], or `local`.
    pub host: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Job id, id prefix or name.
    pub job: String,
    /// Directory to copy the outputs into (default:
    /// $BELAY_HOME/results/<job id>).
    #[arg(long, value_name = "DIR")]
    pub to: Option<std::path::PathBuf>,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Include jobs that have ended.
    #[arg(short, long)]
    pub all: bool,
    /// Only jobs on this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Print a JSON array of jobs.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Job id, id prefix or name.
    pub job: String,
    /// Print JSON (the job plus its events).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Job id, id prefix or name.
    pub job: String,
    /// Keep printing new output until the job ends.
    #[arg(short, long)]
    pub follow: bool,
    /// Print the job's stderr instead of its stdout.
    #[arg(long)]
    pub stderr: bool,
}

#[derive(Args, Debug)]
pub struct JobArg {
    /// Job id, id prefix or name.
    pub job: String,
}

/// `--hold-on-failure`: a duration (`90s`, `30m`, `2h`; a bare number is
/// seconds), as whole seconds.
fn parse_hold(text: &str) -> Result<u64, String> {
    let secs = match text.parse::<u64>() {
        Ok(s) => s,
        Err(_) => humantime::parse_duration(text)
            .map_err(|e| format!("'{text}' is not a duration like 30m or 2h ({e})"))?
            .as_secs(),
    };
    Ok(secs)
}

#[derive(Args, Debug)]
pub struct ReleaseArgs {
    /// The held job (id, prefix or name).
    pub job: String,
    /// Print the job as JSON once released.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ShellArgs {
    /// A job (id, prefix or name) or a host (ssh_config alias or
    /// [user@]host[:port]).
    #[arg(value_name = "JOB|HOST")]
    pub target: String,
    /// Start another persistent shell instead of re-attaching to the first.
    #[arg(long, conflicts_with = "end")]
    pub new: bool,
    /// End the job's (or host's) persistent shells.
    #[arg(long, conflicts_with = "command")]
    pub end: bool,
    /// Run this command there instead of an interactive shell.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CancelArgs {
    /// Jobs to cancel (ids, prefixes or names).
    #[arg(required = true)]
    pub jobs: Vec<String>,
    /// Seconds between TERM and KILL.
    #[arg(long, default_value_t = belay_core::engine::cancel::DEFAULT_GRACE_SECS)]
    pub grace: u32,
}

#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// A job (forwards go to the node it runs on) or a host alias.
    #[arg(required_unless_present_any = ["list", "stop"])]
    pub to: Option<String>,
    /// What to forward: [LOCAL:]REMOTE, one or more.
    #[arg(value_name = "[LOCAL:]REMOTE")]
    pub specs: Vec<String>,
    /// List the daemon's forwards.
    #[arg(long, conflicts_with_all = ["stop", "foreground", "to"])]
    pub list: bool,
    /// Stop a forward (its id), a job's forwards, or `all`.
    #[arg(long, value_name = "ID|JOB|all", conflicts_with_all = ["foreground", "to"])]
    pub stop: Option<String>,
    /// Keep the forward in this command (not the daemon) until Ctrl-C.
    #[arg(long)]
    pub foreground: bool,
    #[arg(long)]
    pub json: bool,
}
