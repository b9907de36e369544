//! `BELAY_HOME` on a filesystem shared between machines (NFS homes on HPC
//! login nodes): the store uses a rollback journal there, never WAL. The
//! filesystem type is injected (`BELAY_HOME_FSTYPE`, a test-only hook);
//! the detection itself (statfs magics) is unit-tested in belay-core.

use crate::support::*;

fn journal_mode(b: &Belay) -> String {
    let conn = rusqlite::Connection::open(b.home.path().join("belay.db")).unwrap();
    conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_store_on_a_local_disk_uses_wal() {
    let b = Belay::new();
    b.ok(&["run", "local", "--", "true"]);
    assert_eq!(journal_mode(&b), "wal");
}

#[test]
fn a_store_on_nfs_uses_a_rollback_journal_even_one_that_was_wal() {
    let b = Belay::new();
    b.ok(&["run", "local", "--", "true"]);
    assert_eq!(journal_mode(&b), "wal");
    // The same home, now seen on NFS (moved there, or mounted so).
    let b = b.with_env("BELAY_HOME_FSTYPE", "nfs");
    assert_eq!(b.ok(&["run", "local", "--", "echo hi"]), "hi\n");
    assert_eq!(journal_mode(&b), "delete");
    assert!(
        !b.home.path().join("belay.db-wal").exists(),
        "no WAL file is left beside the store"
    );
    assert_eq!(b.jobs().len(), 2, "nothing lost in the switch");
}
