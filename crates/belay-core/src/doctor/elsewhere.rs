//! Jobs this store records as running on the host, that run `elsewhere`
//! from where this connection landed: another node behind a round-robin
//! alias with a shared home, or another pid namespace (a re-created
//! container). A started job's identity is recorded as its liveness token
//! ("pid ticks boot node pidns", see `engine::reconcile`); the probes call
//! such a job `elsewhere` and leave it alone, and so its processes can be
//! neither seen nor signalled from this connection. The doctor names them
//! and how to reach them.

use super::host_facts::HostFacts;
use super::report::{Check, Section};
use crate::job::{Job, JobState};
use crate::store::{JobFilter, Store};

pub fn check(store: &Store, facts: &HostFacts, host: &str) -> Check {
    let jobs = match store.list(&JobFilter {
        all: false,
        host: Some(host.to_string()),
        owner: None,
        page: None,
    }) {
        Ok(jobs) => jobs,
        Err(e) => {
            return Check::warn(
                Section::Host,
                host,
                "jobs elsewhere",
                format!("cannot read the store: {e}"),
            );
        }
    };
    let node = facts.get("node").unwrap_or("");
    let pidns = facts.get("pidns").unwrap_or("");
    let running: Vec<&Job> = jobs
        .iter()
        .filter(|j| {
            matches!(j.state, JobState::Running | JobState::Held) && j.scheduler == "direct"
        })
        .collect();
    let away: Vec<(&Job, Away)> = running
        .iter()
        .filter_map(|j| Some((*j, away(j.liveness.as_deref()?, node, pidns)?)))
        .collect();
    if away.is_empty() {
        return Check::ok(
            Section::Host,
            host,
            "jobs elsewhere",
            match running.len() {
                0 => "no job recorded as running here".to_string(),
                n => format!(
                    "none: the {n} running job{} recorded here run{} where this connection landed ({node})",
                    if n == 1 { "" } else { "s" },
                    if n == 1 { "s" } else { "" }
                ),
            },
        );
    }
    let seen = away
        .iter()
        .map(|(j, a)| {
            let name = j
                .name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            match a {
                Away::Node(n) => format!("{}{name} runs on {n}", j.id),
                Away::Container => format!("{}{name} runs in another pid namespace", j.id),
            }
        })
        .collect::<Vec<_>>()
        .join("; ");
    let nodes: Vec<&str> = away
        .iter()
        .filter_map(|(_, a)| match a {
            Away::Node(n) => Some(n.as_str()),
            Away::Container => None,
        })
        .fold(Vec::new(), |mut v, n| {
            if !v.contains(&n) {
                v.push(n);
            }
            v
        });
    let remedy = if nodes.is_empty() {
        "this connection reached another container than the one they started in (re-created?): their processes cannot be seen from here; belay leaves them alone and settles them once a connection reaches that container again"
            .to_string()
    } else {
        format!(
            "this connection reached {node}; reach {} directly (a Host block with that HostName, or `ProxyJump {host}`) to follow or cancel them; belay leaves them alone until a connection lands there",
            nodes.join(", ")
        )
    };
    Check::warn(
        Section::Host,
        host,
        "jobs elsewhere",
        format!("{} of {} running: {seen}", away.len(), running.len()),
    )
    .remedy(remedy)
}

#[derive(Debug, PartialEq, Eq)]
enum Away {
    Node(String),
    Container,
}

/// Where a job with liveness `token` runs, if not where this connection
/// landed (`node`, `pidns`); as the probes judge it, the node first.
fn away(token: &str, node: &str, pidns: &str) -> Option<Away> {
    let parts: Vec<&str> = token.split(' ').collect();
    let at = |i: usize| parts.get(i).copied().filter(|p| !p.is_empty());
    if let Some(n) = at(3)
        && !node.is_empty()
        && n != node
    {
        return Some(Away::Node(n.to_string()));
    }
    if let Some(p) = at(4)
        && !pidns.is_empty()
        && p != pidns
    {
        return Some(Away::Container);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_and_then_the_pid_namespace_decide() {
        assert_eq!(
            away("12 345 boot login2 4026531836", "login1", "4026531836"),
            Some(Away::Node("login2".into()))
        );
        assert_eq!(
            away("12 345 boot login1 4026532000", "login1", "4026531836"),
            Some(Away::Container)
        );
        assert_eq!(
            away("12 345 boot login1 4026531836", "login1", "4026531836"),
            None
        );
        assert_eq!(
            away("12 345 boot", "login1", "1"),
            None,
            "older tokens say nothing"
        );
    }
}
