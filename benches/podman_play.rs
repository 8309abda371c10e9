//! podstart's StartPod against `podman kube play` of the same pods, in the
//! same run on the same machine.
//!
//!   set -a; eval "$(scripts/containerd-lab.sh start)"; set +a
//!   cargo bench --bench podman_play            # release, 10 rounds
//!   PODSTART_BENCH_SMOKE=1 cargo test --bench podman_play   # debug, 2 rounds
//!
//! Settings: the lab's `CONTAINER_RUNTIME_ENDPOINT`, `TEST_IMAGE` and
//! `REGISTRY` (podman pulls the test image from the lab registry, plain
//! HTTP), `PODSTART_BENCH_ROUNDS` (default 10, smoke 2). Needs `podman`
//! (scripts/bench.sh installs Debian's with apt); without it, or when podman
//! cannot run a pod here, it prints why and skips.
//!
//! Pods: `1-container` and `init-2-app` as in benches/lab_overhead.rs, as
//! Pod YAML for podman. podman is timed from the command's start to its
//! exit; podstart (a `podstart serve` process against the lab containerd)
//! from StartPod to PodStarted. Rounds alternate; each pod is removed
//! between rounds (untimed: `podman pod rm -f`, StopPod). Prints medians,
//! p90 and the ratio of medians, and whether podman ran the PostStart hook
//! (the features overlap only where it does). Samples:
//! `target/bench/podman-<pod>.csv` (series podman, podstart).
//!
//! Where the machine's PID 1 does not reap orphans, the conmon processes
//! podman leaves would pile up as zombies: this process becomes a child
//! subreaper and reaps them. The containers get `nofile`/`nproc` limits no
//! higher than this process's own (podman's defaults exceed what an
//! unprivileged container may set). Measures, asserts nothing.
#[path = "labkit/mod.rs"]
mod labkit;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use labkit::Server;
use labkit::pods::{Kind, request, yaml};

/// Children this process waits for itself: the orphan reaper leaves them.
static OWN_CHILDREN: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

fn own(pid: u32, on: bool) {
    let mut set = OWN_CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    let set = set.get_or_insert_with(HashSet::new);
    if on {
        set.insert(pid);
    } else {
        set.remove(&pid);
    }
}

/// Reaps every exited child of this process that is not one of its own
/// commands (orphans re-parented here: podman's conmon processes).
fn reap_orphans() {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name in parentheses: state, ppid.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (Some("Z"), Some(ppid)) = (f.next(), f.next()) else {
            continue;
        };
        if ppid.parse() != Ok(me) {
            continue;
        }
        let owned = OWN_CHILDREN
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|s| s.contains(&pid));
        if !owned {
            let _ = rustix::process::waitpid(
                rustix::process::Pid::from_raw(pid as i32),
                rustix::process::WaitOptions::NOHANG,
            );
        }
    }
}

/// Makes this process the subreaper of its descendants and reaps orphans
/// at every SIGCHLD (and every 100 ms, as signals coalesce).
fn start_reaper() -> tokio::task::JoinHandle<()> {
    if rustix::process::set_child_subreaper(Some(rustix::process::getpid())).is_err() {
        eprintln!("podman_play: cannot become a child subreaper; podman may wait for zombies");
    }
    tokio::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut sig) = signal(SignalKind::child()) else {
            return;
        };
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = sig.recv() => {}
                _ = tick.tick() => {}
            }
            reap_orphans();
        }
    })
}

struct Podman {
    conf: PathBuf,
}

struct Run {
    took: Duration,
    ok: bool,
    output: String,
}

impl Podman {
    /// Runs `podman args…` to its exit (off the async threads), timed.
    async fn run(&self, args: &[&str]) -> Run {
        let conf = self.conf.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let began = Instant::now();
            let child = Command::new("podman")
                .args(&args)
                .env("CONTAINERS_CONF", &conf)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) => {
                    return Run {
                        took: began.elapsed(),
                        ok: false,
                        output: format!("cannot run podman: {e}"),
                    };
                }
            };
            let pid = child.id();
            own(pid, true);
            let out = child.wait_with_output();
            let took = began.elapsed();
            own(pid, false);
            match out {
                Ok(o) => Run {
                    took,
                    ok: o.status.success(),
                    output: format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    )
                    .trim()
                    .to_string(),
                },
                Err(e) => Run {
                    took,
                    ok: false,
                    output: e.to_string(),
                },
            }
        })
        .await
        .expect("podman task")
    }

    /// `podman kube play` of `kind` as pod `name`.
    async fn play(&self, dir: &Path, kind: Kind, name: &str, image: &str) -> Run {
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, yaml(kind, name, image)).expect("write pod YAML");
        let file = file.display().to_string();
        self.play_file(&file).await
    }

    async fn play_file(&self, file: &str) -> Run {
        self.run(&["kube", "play", "--tls-verify=false", "--quiet", file])
            .await
    }

    async fn remove(&self, name: &str) {
        let r = self
            .run(&["pod", "rm", "--force", "--time", "0", name])
            .await;
        if !r.ok {
            eprintln!("podman pod rm {name}: {}", r.output);
        }
    }
}

/// This process's soft limit for `what` (a /proc/self/limits row), at most
/// `cap`.
fn soft_limit(what: &str, cap: u64) -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|r| r.starts_with(what))
                .and_then(|r| r[what.len()..].split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(cap)
        .min(cap)
}

/// Why podman cannot be measured here, if it cannot.
async fn podman_ready(podman: &Podman, dir: &Path, image: &str) -> Result<(), String> {
    let v = podman.run(&["--version"]).await;
    if !v.ok {
        return Err(format!(
            "podman is not usable ({}); scripts/bench.sh installs it with apt",
            v.output
        ));
    }
    let info = podman.run(&["info", "--format", "{{.Host.CgroupsVersion}} {{.Host.CgroupManager}} {{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}}"]).await;
    if !info.ok {
        return Err(format!("`podman info` fails: {}", info.output));
    }
    println!(
        "{} (cgroups, manager, network, OCI runtime: {})",
        v.output, info.output
    );
    let pull = podman
        .run(&["pull", "--quiet", "--tls-verify=false", image])
        .await;
    if !pull.ok {
        return Err(format!("cannot pull {image} into podman: {}", pull.output));
    }
    let name = "podman-probe";
    let r = podman.play(dir, Kind::One, name, image).await;
    podman.remove(name).await;
    if !r.ok {
        return Err(format!("podman cannot run a pod here: {}", r.output));
    }
    Ok(())
}

/// Whether podman runs a PostStart exec hook: one untimed pod whose hook
/// leaves a file, read back with `podman exec`.
async fn podman_runs_post_start(podman: &Podman, dir: &Path, image: &str) -> bool {
    let name = "podman-hook-probe";
    let text =
        yaml(Kind::InitTwoApp, name, image).replace("\"echo ok\"", "\"echo ok > /tmp/post-start\"");
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, text).expect("write pod YAML");
    let played = podman.play_file(&file.display().to_string()).await;
    let read = podman
        .run(&["exec", &format!("{name}-app-1"), "cat", "/tmp/post-start"])
        .await;
    podman.remove(name).await;
    played.ok && read.ok && read.output.contains("ok")
}

#[tokio::main]
async fn main() {
    let machine = labkit::machine_line();
    let Some(runtime) = labkit::runtime_endpoint() else {
        println!(
            "podman_play: skipped: no lab (set CONTAINER_RUNTIME_ENDPOINT, e.g. from scripts/containerd-lab.sh start)"
        );
        return;
    };
    let image = labkit::test_image();
    let registry = std::env::var("REGISTRY").unwrap_or_else(|_| "127.0.0.1:5400".into());
    let podman_image = std::env::var("PODSTART_BENCH_PODMAN_IMAGE").unwrap_or_else(|_| match image
        .strip_prefix("localhost/")
    {
        Some(path) => format!("{registry}/{path}"),
        None => image.clone(),
    });
    let rounds = labkit::count("ROUNDS", 10, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("containers.conf");
    std::fs::write(
        &conf,
        format!(
            "[containers]\ndefault_ulimits = [\"nofile={n}:{n}\", \"nproc={p}:{p}\"]\n",
            n = soft_limit("Max open files", 1 << 20),
            p = soft_limit("Max processes", 4096),
        ),
    )
    .expect("containers.conf");
    let podman = Podman { conf };

    labkit::remove_leftovers(&runtime, "podstart-").await;
    let server = Server::start(&runtime, dir.path(), &[]).await;
    own(server.pid(), true);
    let client = server.client();
    let reaper = start_reaper();

    println!();
    println!("### (b) podstart against `podman kube play`");
    println!();
    if let Err(why) = podman_ready(&podman, dir.path(), &podman_image).await {
        println!("podman_play: skipped: {why}");
        reaper.abort();
        return;
    }
    let hooks = podman_runs_post_start(&podman, dir.path(), &podman_image).await;

    let kinds = [Kind::One, Kind::InitTwoApp];
    let mut results = Vec::new();
    for kind in kinds {
        let (mut pm, mut ps) = (Vec::new(), Vec::new());
        // Round 0 warms both up and is not counted.
        for round in 0..=rounds {
            let name = format!("podman-{}-{round}", kind.name());
            let r = podman.play(dir.path(), kind, &name, &podman_image).await;
            podman.remove(&name).await;
            if !r.ok {
                println!("podman kube play of {} failed: {}", kind.name(), r.output);
                break;
            }
            let uid = uuid::Uuid::new_v4().to_string();
            let name = format!("podstart-{}-{}-{round}", labkit::run_id(), kind.name());
            let (took, _) = labkit::start_pod(&client, request(kind, &name, &uid, &image)).await;
            labkit::stop_pod(&client, &uid).await;
            if round > 0 {
                pm.push(r.took);
                ps.push(took);
            }
        }
        labkit::write_csv(
            &format!("podman-{}", kind.name()),
            &[("podman", &pm), ("podstart", &ps)],
        );
        results.push((kind, pm, ps));
    }
    reaper.abort();
    drop(server);

    println!();
    println!("{machine}");
    println!(
        "rounds: {rounds} (alternating, after 1 warm-up each); podman image {podman_image}, podstart image {image} (same content)"
    );
    println!(
        "podman ran the PostStart exec hook: {}",
        if hooks {
            "yes"
        } else {
            "no (podman kube play ignores lifecycle hooks: its init-2-app does less work)"
        }
    );
    println!();
    println!(
        "| pod | podman kube play median | p90 | podstart StartPod median | p90 | ratio of medians (podstart / podman) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (kind, pm, ps) in &results {
        let (mm, m90) = labkit::stats(pm);
        let (sm, s90) = labkit::stats(ps);
        println!(
            "| {} | {} ms | {} ms | {} ms | {} ms | {:.2} |",
            kind.describe(),
            labkit::cell(mm),
            labkit::cell(m90),
            labkit::cell(sm),
            labkit::cell(s90),
            sm / mm
        );
    }
}
