//! `podstart` run as a separate process: the binary under test, a child
//! killed when its handle drops, SIGTERM, and polling until something holds.
//! Shared by the `it` and `e2e` test binaries.
use std::{
    process::{Child, Command},
    time::{Duration, Instant},
};

/// The `podstart` binary cargo built for these tests.
pub(crate) fn podstart_bin() -> &'static str {
    env!("CARGO_BIN_EXE_podstart")
}

/// A child process, killed and reaped when dropped.
#[derive(Debug)]
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends SIGTERM to `child`; whether `kill` succeeded.
pub(crate) fn sigterm(child: &Child) -> bool {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Polls `ok` until it holds; fails the test after `within`.
pub(crate) async fn wait_for(mut ok: impl FnMut() -> bool, what: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
