//! `podstart serve --listen` removes nothing but a stale socket: a file, a
//! directory or a socket something serves on is an error naming the path,
//! and stays as it was.
use std::{
    io::Read,
    os::unix::net::{UnixListener, UnixStream},
    path::Path,
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use crate::net::free_port;
use crate::process::{Proc, podstart_bin, wait_for};

fn serve(dir: &Path, listen: &Path) -> Proc {
    let runtime = format!("unix://{}", dir.join("no-runtime.sock").display());
    let child = Command::new(podstart_bin())
        .args(["serve", "--runtime-endpoint", &runtime])
        .arg("--metrics-listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg(format!("--listen=unix://{}", listen.display()))
        .arg("--pod-log-root")
        .arg(dir.join("pods"))
        .arg("--pod-state-root")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Proc(child)
}

/// Runs `serve` until it exits (it must, within 20 s): its status and
/// what it wrote to stderr.
async fn refused(dir: &Path, listen: &Path) -> (ExitStatus, String) {
    let mut p = serve(dir, listen);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = p.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "podstart must exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut err = String::new();
    p.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, err)
}

#[tokio::test]
async fn a_regular_file_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("podstart.sock");
    std::fs::write(&path, "precious").unwrap();
    let (status, err) = refused(dir.path(), &path).await;
    assert!(!status.success());
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("is not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[tokio::test]
async fn a_directory_or_a_link_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a-dir");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inside"), "x").unwrap();
    let (status, err) = refused(dir.path(), &sub).await;
    assert!(
        !status.success() && err.contains("is not a socket"),
        "{err}"
    );
    assert!(sub.join("inside").exists());

    let target = dir.path().join("target");
    std::fs::write(&target, "x").unwrap();
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (status, err) = refused(dir.path(), &link).await;
    assert!(
        !status.success() && err.contains("is not a socket"),
        "{err}"
    );
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink() && target.exists());
}

#[tokio::test]
async fn a_socket_someone_serves_on_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("podstart.sock");
    let live = UnixListener::bind(&path).unwrap();
    let (status, err) = refused(dir.path(), &path).await;
    assert!(!status.success());
    assert!(
        err.contains(&format!("another process is serving on {}", path.display())),
        "{err}"
    );
    // Still the same socket, still answered.
    assert!(UnixStream::connect(&path).is_ok());
    drop(live);
}

#[tokio::test]
async fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("podstart.sock");
    drop(UnixListener::bind(&path).unwrap());
    assert!(
        path.exists() && UnixStream::connect(&path).is_err(),
        "stale"
    );
    let _p = serve(dir.path(), &path);
    wait_for(
        || UnixStream::connect(&path).is_ok(),
        "podstart on the old socket's path",
        Duration::from_secs(20),
    )
    .await;
}
