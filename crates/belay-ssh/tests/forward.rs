//! Forwarded streams (`direct-tcpip`, `direct-streamlocal`) through a real
//! sshd: bytes both ways, a transfer larger than the channel window (flow
//! control), and refusals that name the hop and the sshd setting.

use belay_ssh::{ForwardError, ForwardTarget};
use belay_testbed::SshdOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::Env;

/// An echo server on a fresh TCP port of 127.0.0.1.
async fn tcp_echo() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// An echo server on a Unix socket at `path`.
fn unix_echo(path: &std::path::Path) {
    let listener = tokio::net::UnixListener::bind(path).unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
}

/// Sends `len` bytes through `stream` while reading the echo back; checks
/// every byte.
async fn echo_round(stream: belay_ssh::ForwardStream, len: usize) {
    let (mut r, mut w) = tokio::io::split(stream);
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w.flush().await.unwrap();
        w
    });
    let mut back = vec![0u8; len];
    tokio::time::timeout(std::time::Duration::from_secs(60), r.read_exact(&mut back))
        .await
        .expect("echo within 60 s")
        .unwrap();
    let _w = writer.await.unwrap();
    assert!(back == data, "echoed bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_unix_forwards_carry_bytes_beyond_the_window() {
    let env = Env::new(SshdOptions::default());
    let client = env.client("target");
    let port = tcp_echo().await;
    let tcp = ForwardTarget::parse(&format!("127.0.0.1:{port}")).unwrap();
    // 24 MiB: six times the channel window, so the sender must wait for
    // the reader (flow control) and nothing is lost.
    echo_round(
        client.open_forward(&tcp).await.expect("tcp forward"),
        24 << 20,
    )
    .await;

    let sock = env.path().join("echo.sock");
    unix_echo(&sock);
    let unix = ForwardTarget::Unix(sock.display().to_string());
    echo_round(
        client.open_forward(&unix).await.expect("unix forward"),
        1 << 20,
    )
    .await;
    // Many forwards on one connection at once (not limited by MaxSessions).
    let mut opened = Vec::new();
    for _ in 0..12 {
        opened.push(client.open_forward(&tcp).await.expect("12 at once"));
    }
    assert_eq!(client.connect_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_named_as_such() {
    let env = Env::new(SshdOptions::default());
    let client = env.client("target");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let e = client
        .open_forward(&ForwardTarget::parse(&format!("127.0.0.1:{port}")).unwrap())
        .await
        .err()
        .expect("nothing listens");
    assert!(matches!(e, ForwardError::NothingThere { .. }), "{e}");
    assert!(e.to_string().contains("target"), "{e}");
    let missing = env.path().join("missing.sock").display().to_string();
    let e = client
        .open_forward(&ForwardTarget::Unix(missing.clone()))
        .await
        .err()
        .expect("no socket");
    let text = e.to_string();
    assert!(
        matches!(e, ForwardError::NothingThere { .. }) && text.contains("no such socket"),
        "{text}"
    );
    assert!(text.contains(&missing), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_the_hop_and_the_setting() {
    let env = Env::new(SshdOptions {
        extra_config: vec![
            "AllowTcpForwarding no".into(),
            "AllowStreamLocalForwarding no".into(),
        ],
        ..SshdOptions::default()
    });
    let client = env.client("target");
    let port = tcp_echo().await;
    let e = client
        .open_forward(&ForwardTarget::parse(&port.to_string()).unwrap())
        .await
        .err()
        .expect("AllowTcpForwarding no");
    let text = e.to_string();
    assert!(matches!(e, ForwardError::Refused { .. }), "{text}");
    assert!(text.starts_with("target refuses"), "{text}");
    assert!(text.contains("AllowTcpForwarding"), "{text}");

    let sock = env.path().join("echo.sock");
    unix_echo(&sock);
    let e = client
        .open_forward(&ForwardTarget::Unix(sock.display().to_string()))
        .await
        .err()
        .expect("AllowStreamLocalForwarding no");
    let text = e.to_string();
    assert!(matches!(e, ForwardError::Refused { .. }), "{text}");
    assert!(text.contains("AllowStreamLocalForwarding"), "{text}");
    assert!(text.starts_with("target refuses"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permit_open_refusal_is_named() {
    let env = Env::new(SshdOptions {
        extra_config: vec!["PermitOpen 127.0.0.1:1".into()],
        ..SshdOptions::default()
    });
    let port = tcp_echo().await;
    let e = env
        .client("target")
        .open_forward(&ForwardTarget::parse(&format!("127.0.0.1:{port}")).unwrap())
        .await
        .err()
        .expect("PermitOpen");
    let text = e.to_string();
    assert!(matches!(e, ForwardError::Refused { .. }), "{text}");
    assert!(text.contains("PermitOpen"), "{text}");
}
