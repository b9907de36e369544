//! The CLI's edges around hosts and job files: trusting a host key that
//! differs from the recorded one, host health after a fixed refusal,
//! outputs with the same final name, `--env` errors, shell completions.

use crate::support::remote::Loopback;
use crate::support::*;

fn trust(b: &Belay, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["host", "trust", "target", "--yes"];
    args.extend_from_slice(extra);
    b.run(&args)
}

#[test]
fn trust_refuses_a_key_that_differs_from_the_recorded_one_unless_replace() {
    let host = Loopback::start();
    let b = host.belay();
    // Another sshd's key recorded for `target`: what a machine in the
    // middle (or a re-created machine) looks like.
    let other = belay_testbed::Sshd::start(Default::default()).unwrap();
    let forged = format!(
        "[127.0.0.1]:{} {}\n",
        host.sshd.port(),
        other.host_key_line()
    );
    std::fs::write(&host.known_hosts, &forged).unwrap();

    let out = trust(&b, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let err = stderr_of(&out);
    assert!(
        err.contains("differs") && err.contains(&format!("{}:1", host.known_hosts.display())),
        "says the recorded key differs, and where: {err}"
    );
    assert!(err.contains("--replace"), "names the way out: {err}");
    assert_eq!(
        std::fs::read_to_string(&host.known_hosts).unwrap(),
        forged,
        "nothing recorded"
    );
    let out = b.run(&["run", "target", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "still refused: {}",
        stderr_of(&out)
    );

    // --replace: the old entry goes, the offered key is recorded.
    let out = trust(&b, &["--replace"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let text = std::fs::read_to_string(&host.known_hosts).unwrap();
    assert!(!text.contains(&forged), "old key removed: {text}");
    assert_eq!(
        b.ok(&["run", "target", "--", "echo replaced"]),
        "replaced\n"
    );

    // Trusting the recorded key again changes nothing.
    let out = trust(&b, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(std::fs::read_to_string(&host.known_hosts).unwrap(), text);

    // The normal path after a re-created machine: forget, then trust.
    std::fs::write(&host.known_hosts, &forged).unwrap();
    b.ok(&["host", "forget", "target"]);
    let out = trust(&b, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(b.ok(&["run", "target", "--", "echo again"]), "again\n");
}

#[test]
fn a_refused_host_key_then_trusted_leaves_the_host_healthy_with_the_error_shown() {
    let host = Loopback::start();
    let b = host.belay();
    std::fs::write(&host.known_hosts, "").unwrap();
    let out = b.run(&["run", "target", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let row = |list: &str| {
        list.lines()
            .find(|l| l.starts_with("target "))
            .unwrap_or_else(|| panic!("no target row: {list}"))
            .to_string()
    };
    let list = b.ok(&["host", "list"]);
    assert!(row(&list).contains("unreachable"), "{list}");
    assert!(
        row(&list).contains("not known"),
        "the error is shown: {list}"
    );

    let out = trust(&b, &[]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(b.ok(&["run", "target", "--", "echo ok"]), "ok\n");

    let list = b.ok(&["host", "list"]);
    let target = row(&list);
    assert!(target.contains("healthy"), "{list}");
    assert!(
        target.contains("(answered since)") && target.contains("not known"),
        "the last error stays visible, marked as answered since: {list}"
    );
    let v = b.cmd(["host", "list", "--json"]).json();
    let t = v
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host"] == "target")
        .unwrap();
    assert_eq!(t["health"], "healthy", "{t:#}");
    assert_eq!(t["last_error_kind"], "refused", "{t:#}");
    assert!(t["last_error"].is_string(), "{t:#}");
}

#[test]
fn outputs_with_the_same_final_name_land_apart_and_true_collisions_are_refused() {
    let b = Belay::new();
    let work = b.scratch("work");
    std::fs::create_dir(&work).unwrap();
    let w = work.to_str().unwrap();
    let out = b.run(&[
        "run",
        "--workdir",
        w,
        "--output",
        "a/x",
        "--output",
        "b/x",
        "local",
        "--",
        "mkdir -p a b && echo from-a > a/x && echo from-b > b/x",
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let id = b.jobs()[0]["id"].as_str().unwrap().to_string();
    let results = b.home.path().join("results").join(&id);
    let read = |rel: &str| std::fs::read_to_string(results.join(rel)).unwrap_or_default();
    assert_eq!(read("a/x"), "from-a\n", "{}", stderr_of(&out));
    assert_eq!(read("b/x"), "from-b\n", "{}", stderr_of(&out));

    // fetch --to keeps the same layout.
    let to = b.scratch("to");
    b.cmd(["fetch", &id, "--to"]).arg(&to).ok();
    assert_eq!(std::fs::read_to_string(to.join("a/x")).unwrap(), "from-a\n");
    assert_eq!(std::fs::read_to_string(to.join("b/x")).unwrap(), "from-b\n");

    // Two outputs that would be the same file there: refused at submit.
    b.cmd([
        "run", "--output", "a/x", "--output", "./a/x", "local", "--", "true",
    ])
    .bad_input("./a/x");
    b.cmd([
        "run", "--output", "/tmp/s/x", "--output", "x", "local", "--", "true",
    ])
    .bad_input("'x'");
    assert_eq!(b.jobs().len(), 1, "nothing recorded for refused submits");
}

#[test]
fn env_with_a_bad_name_names_it_and_never_its_value() {
    let b = Belay::new();
    let line = b
        .cmd([
            "run",
            "--env",
            "API-TOKEN=s3cr3t-value",
            "local",
            "--",
            "true",
        ])
        .bad_input("API-TOKEN");
    assert!(!line.contains("s3cr3t-value"), "value echoed: {line}");
    assert!(b.jobs().is_empty());
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    let b = Belay::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = b.cmd(["completions", shell]).ok();
        assert!(
            script.contains("belay") && script.contains("host") && script.contains("fetch"),
            "{shell}: {script}"
        );
    }
    b.cmd(["completions", "tcsh"]).bad_input("tcsh");
}
