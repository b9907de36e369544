//! Slurm clusters for the CLI tests: a real single-node Slurm
//! (belay-testbed's [`Slurm`]) whose login node is a loopback sshd, reached
//! as the ssh_config alias `cluster` and declared in belay's config.toml as
//! `scheduler = "slurm"` — the way a user would set up a cluster.

use belay_testbed::{HostBlock, NoSlurmPath, Prerequisite, Slurm, SlurmOptions, require};

use super::Belay;
use super::remote::Loopback;

/// A cluster and its login node. Field order is drop order: Slurm (and the
/// jobs in the login node's namespace) stops before the sshd.
pub struct Cluster {
    pub slurm: Slurm,
    pub login: Loopback,
}

/// What `[hosts.cluster]` says besides `scheduler = "slurm"`: a short poll
/// interval, so tests see state changes quickly.
pub const DEFAULT_HOST_CONFIG: &str = "poll_interval = \"1s\"\n";

impl Cluster {
    pub fn start() -> Self {
        Self::start_with(SlurmOptions::default())
    }

    pub fn start_with(opts: SlurmOptions) -> Self {
        super::remote::prerequisites();
        require(&[Prerequisite::Slurm])
            .expect("Slurm tests need slurm-wlm and munge (scripts/test.sh installs them)");
        let mut slurm = Slurm::prepare(opts).expect("prepare slurm");
        let login = Loopback::start_options(belay_testbed::SshdOptions {
            extra_config: slurm.sshd_config(),
            home_files: slurm.home_files(),
            ..Default::default()
        });
        slurm.start(login.sshd.pid()).expect("start slurm");
        login.add_host(HostBlock::new("cluster"));
        Cluster { slurm, login }
    }

    /// A belay that knows `cluster` as a Slurm host (with
    /// [`DEFAULT_HOST_CONFIG`]).
    pub fn belay(&self) -> Belay {
        self.belay_with(DEFAULT_HOST_CONFIG)
    }

    /// A belay whose `[hosts.cluster]` has `host_toml` after
    /// `scheduler = "slurm"` (more tables may follow it, e.g.
    /// `[hosts.cluster.slurm]`).
    pub fn belay_with(&self, host_toml: &str) -> Belay {
        let b = self.login.belay();
        std::fs::write(
            b.home.path().join("config.toml"),
            format!("[hosts.cluster]\nscheduler = \"slurm\"\n{host_toml}"),
        )
        .expect("config.toml");
        b
    }

    /// Lets users SSH to the compute node through the login node (needs
    /// `SlurmOptions::compute_node`): an sshd on `node1` with the login
    /// node's configuration, and `Host node1` in the ssh config with
    /// `ProxyJump cluster`, the way a user reaches compute nodes where the
    /// site allows it.
    pub fn allow_ssh_to_node(&mut self) {
        let config = self.login.sshd.dir().join("sshd_config");
        self.slurm
            .start_node_sshd(&config)
            .expect("the node's sshd");
        self.configure_node_host();
    }

    /// `Host node1` (ProxyJump cluster) in the ssh config, whether or not
    /// the node takes SSH ([`Cluster::allow_ssh_to_node`] makes it).
    pub fn configure_node_host(&self) {
        let addr = self.slurm.node_addr().expect("a compute node");
        let mut known = std::fs::read_to_string(&self.login.known_hosts).expect("known_hosts");
        // Port 22: the plain name, no `[addr]:port`.
        known.push_str(&format!("{addr} {}\n", self.login.sshd.host_key_line()));
        std::fs::write(&self.login.known_hosts, known).expect("known_hosts");
        self.login.add_hosts(
            &HostBlock::new(belay_testbed::NODE_NAME)
                .hostname(&addr)
                .port(22)
                .proxy_jump("cluster")
                .test_client(&self.login.key, &self.login.known_hosts)
                .to_string(),
        );
    }

    /// `path` (absolute) as the login node and its jobs see it.
    pub fn remote(&self, path: &str) -> std::path::PathBuf {
        self.login.remote_view(std::path::Path::new(path))
    }

    /// The Slurm job belay submitted for `job` (from `show --json`'s
    /// `scheduler_id`, waited for: through the daemon `run -d` returns
    /// before sbatch has answered), checked against the comment belay gave
    /// it: exactly one Slurm job carries it.
    pub fn slurm_id(&self, b: &Belay, job: &str) -> String {
        let mut v = serde_json::Value::Null;
        let ok = super::poll(std::time::Duration::from_secs(30), || {
            v = b.job(job);
            v["scheduler_id"].is_string()
        });
        assert!(ok, "no scheduler_id: {v:#}");
        let id = v["scheduler_id"].as_str().expect("id").to_string();
        let key = v["key"].as_str().expect("key");
        assert_eq!(
            self.slurm.jobs_with_comment(&format!("belay:{key}")),
            vec![id.clone()],
            "one Slurm job with belay's comment; queue:\n{}",
            self.slurm.queue()
        );
        id
    }
}

/// A login node configured as a Slurm host in belay's config (`nosbatch`)
/// whose sessions have no Slurm command on their PATH.
pub struct NoSbatch {
    pub login: Loopback,
    _path: NoSlurmPath,
}

impl NoSbatch {
    pub fn start() -> Self {
        let path = NoSlurmPath::create().expect("a PATH without Slurm");
        let login = Loopback::start_options(belay_testbed::SshdOptions {
            extra_config: path.sshd_config(),
            home_files: path.home_files(),
            ..Default::default()
        });
        login.add_host(HostBlock::new("nosbatch"));
        NoSbatch { login, _path: path }
    }

    pub fn belay(&self) -> Belay {
        let b = self.login.belay();
        std::fs::write(
            b.home.path().join("config.toml"),
            "[hosts.nosbatch]\nscheduler = \"slurm\"\n",
        )
        .expect("config.toml");
        b
    }
}
