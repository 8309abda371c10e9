//! The node's container lifecycle, watched once for everyone (the kubelet's
//! PLEG). One task keeps a [`Table`] of every container on the node from one
//! event stream (`source.rs`: CRI events, else containerd's events, else
//! none) and one relist (ListContainers for the whole node, diffed into the
//! table: every `relist_period` without events, every
//! `events_relist_period` with them, and at once after a lost stream so no
//! exit is missed). Whoever waits on a pod's containers — init containers
//! to exit, a sleep PostStart hook, a pod's restart supervisor — subscribes
//! to the pod's sandbox and reads the table: no per-pod streams, no per-pod
//! polling, however many pods the node runs.
//!
//! - `table.rs`: the containers as last seen (pure);
//! - `source.rs`: the event sources and their decoding.
mod source;
mod table;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

pub use source::{Source, SourceChoice};
pub use table::{Exit, Phase, Seen};

use crate::cri::Cri;
use crate::endpoint::Address;
use crate::telemetry::Metrics;
use source::{Change, Next, OpenError, Stream};
use table::{Applied, Table};

/// How the watcher finds out about containers.
#[derive(Debug, Clone)]
pub struct PlegConfig {
    pub source: SourceChoice,
    /// Relist period without an event stream (the kubelet's PLEG: 1 s).
    pub relist_period: Duration,
    /// Relist period with an event stream: a safety net only.
    pub events_relist_period: Duration,
    /// containerd's own API (its events service), when the runtime is
    /// containerd: the CRI socket.
    pub containerd: Option<Address>,
}

impl Default for PlegConfig {
    fn default() -> Self {
        PlegConfig {
            source: SourceChoice::Auto,
            relist_period: Duration::from_secs(1),
            events_relist_period: Duration::from_secs(30),
            containerd: None,
        }
    }
}

/// Shortest pause between two relists that events asked for (an event
/// about a container the table does not know yet).
const MIN_ASKED_RELIST_GAP: Duration = Duration::from_millis(200);
/// A relist this soon after a stream opened catches what happened while
/// the subscription was on its way.
const SETTLE_RELIST: Duration = Duration::from_secs(1);
/// Pause before reopening an event stream that failed to open.
const REOPEN_PAUSE: Duration = Duration::from_secs(1);

/// A handle on the node's watcher (cheap to clone). The watcher runs until
/// the last handle is dropped or `shutdown` fires.
#[derive(Clone)]
pub struct Pleg {
    shared: Arc<Shared>,
    _stop: Arc<DropGuard>,
}

impl std::fmt::Debug for Pleg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pleg")
            .field("source", &self.source())
            .finish_non_exhaustive()
    }
}

struct Shared {
    table: Mutex<Table>,
    /// One generation counter per sandbox somebody waits on.
    watchers: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Asks for a relist soon (an event named an unknown container).
    relist_asked: Notify,
    /// The source in use; `None` until the first relist is done.
    synced: watch::Sender<Option<Source>>,
    metrics: Metrics,
}

/// News about one sandbox's containers.
#[derive(Debug)]
pub struct Changes {
    rx: watch::Receiver<u64>,
}

impl Changes {
    /// Forgets news so far: read the table after this, then wait.
    pub fn mark_seen(&mut self) {
        self.rx.mark_unchanged();
    }

    /// Waits for news; false when the watcher is gone.
    pub async fn changed(&mut self) -> bool {
        self.rx.changed().await.is_ok()
    }
}

impl Pleg {
    /// Starts the node's watcher on the current Tokio runtime.
    pub fn start(cri: Cri, config: PlegConfig, metrics: Metrics) -> Pleg {
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            table: Mutex::default(),
            watchers: Mutex::default(),
            relist_asked: Notify::new(),
            synced: watch::channel(None).0,
            metrics,
        });
        tokio::spawn(run(Arc::clone(&shared), cri, config, stop.clone()));
        Pleg {
            shared,
            _stop: Arc::new(stop.drop_guard()),
        }
    }

    /// Subscribes to news about a sandbox's containers.
    pub fn subscribe(&self, sandbox_id: &str) -> Changes {
        let mut watchers = lock(&self.shared.watchers);
        let tx = watchers
            .entry(sandbox_id.to_string())
            .or_insert_with(|| watch::channel(0).0);
        Changes { rx: tx.subscribe() }
    }

    /// A container the flow just created: placed at once, so its events
    /// are understood before the next relist.
    pub fn track(&self, seen: Seen) {
        let changed = lock(&self.shared.table).upsert(seen);
        if let Some(sandbox_id) = changed {
            self.shared.notify(&sandbox_id);
        }
    }

    /// The containers of a sandbox as last seen.
    pub fn containers(&self, sandbox_id: &str) -> Vec<Seen> {
        lock(&self.shared.table).of_sandbox(sandbox_id)
    }

    /// A container's phase as last seen; `None` when not (yet) known.
    pub fn phase(&self, container_id: &str) -> Option<Phase> {
        lock(&self.shared.table).phase(container_id)
    }

    /// How a container exited, when an event said so (containerd's
    /// TaskExit: ahead of the runtime's CRI status).
    pub fn exit(&self, container_id: &str) -> Option<Exit> {
        lock(&self.shared.table).exit(container_id)
    }

    /// The source in use, once the first relist is done.
    pub fn source(&self) -> Option<Source> {
        *self.shared.synced.borrow()
    }

    /// Waits for the first relist (the table holds the whole node).
    pub async fn synced(&self) -> Source {
        let mut rx = self.shared.synced.subscribe();
        loop {
            if let Some(source) = *rx.borrow_and_update() {
                return source;
            }
            if rx.changed().await.is_err() {
                return Source::Relist;
            }
        }
    }
}

impl Shared {
    fn notify(&self, sandbox_id: &str) {
        let mut watchers = lock(&self.watchers);
        let Some(tx) = watchers.get(sandbox_id) else {
            return;
        };
        if tx.receiver_count() == 0 {
            watchers.remove(sandbox_id);
            return;
        }
        tx.send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    fn apply(&self, changes: Vec<Change>) {
        let mut news = Vec::new();
        let mut unknown = false;
        {
            let mut table = lock(&self.table);
            for change in changes {
                match change {
                    Change::Seen(seen) => news.extend(table.upsert(seen)),
                    // A container created or started that the table does
                    // not know is placed by the flow's `track` or the next
                    // relist (most are sandboxes' own pause containers):
                    // no relist for it.
                    Change::Phase { id, phase } => match table.advance(&id, phase) {
                        Applied::Changed { sandbox_id } => news.push(sandbox_id),
                        Applied::Unchanged => {}
                        Applied::Unknown => unknown |= phase == Phase::Exited,
                    },
                    Change::Exited { id, exit } => {
                        tracing::debug!(container = %id, code = exit.code, lag_ms = lag_ms(exit.finished_at), "container exit event");
                        match table.exited(&id, exit) {
                            Applied::Changed { sandbox_id } => news.push(sandbox_id),
                            Applied::Unchanged => {}
                            Applied::Unknown => unknown = true,
                        }
                    }
                    Change::Deleted { id } => news.extend(table.deleted(&id)),
                }
            }
        }
        news.sort_unstable();
        news.dedup();
        for sandbox_id in &news {
            self.notify(sandbox_id);
        }
        if unknown {
            self.relist_asked.notify_one();
        }
    }

    /// One ListContainers for the whole node, diffed into the table.
    async fn relist(&self, cri: &Cri) -> bool {
        let epoch = lock(&self.table).begin_relist();
        let began = Instant::now();
        let listed = match cri.list_containers(None, HashMap::new()).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(error = %e, "relist failed");
                return false;
            }
        };
        let seen = listed
            .into_iter()
            .map(|c| {
                let meta = c.metadata.unwrap_or_default();
                Seen {
                    id: c.id,
                    sandbox_id: c.pod_sandbox_id,
                    name: meta.name,
                    attempt: meta.attempt,
                    phase: Phase::from_cri(c.state),
                }
            })
            .collect();
        let (changed, count) = {
            let mut table = lock(&self.table);
            let changed = table.relisted(epoch, seen);
            (changed, table.len())
        };
        self.metrics.pleg_relisted(began.elapsed(), count);
        for sandbox_id in &changed {
            self.notify(sandbox_id);
        }
        // Forget sandboxes nobody waits on any more.
        lock(&self.watchers).retain(|_, tx| tx.receiver_count() > 0);
        true
    }
}

/// Opens the best event stream the choice and the runtime allow; `missing`
/// remembers sources the runtime does not have, so they are not asked again.
async fn open(
    cri: &Cri,
    config: &PlegConfig,
    missing: &mut Vec<Source>,
) -> Result<Stream, Option<String>> {
    let mut tried = Vec::new();
    if !missing.contains(&Source::Cri) {
        match Stream::open_cri(cri).await {
            Ok(s) => return Ok(s),
            Err(OpenError::Missing) => missing.push(Source::Cri),
            Err(OpenError::Failed(why)) => tried.push(why),
        }
    }
    if !missing.contains(&Source::Containerd) {
        match &config.containerd {
            Some(addr) => match Stream::open_containerd(addr).await {
                Ok(s) => return Ok(s),
                Err(OpenError::Missing) => missing.push(Source::Containerd),
                Err(OpenError::Failed(why)) => tried.push(why),
            },
            None => missing.push(Source::Containerd),
        }
    }
    Err((!tried.is_empty()).then(|| tried.join("; ")))
}

// Long: the watcher's one loop — relist, (re)open the stream, apply events
// until the next relist is due or asked for — reads best whole.
async fn run(shared: Arc<Shared>, cri: Cri, config: PlegConfig, stop: CancellationToken) {
    let mut stream: Option<Stream> = None;
    // Sources the choice excludes count as missing.
    let mut missing = match config.source {
        SourceChoice::Auto => vec![],
        SourceChoice::Cri => vec![Source::Containerd],
        SourceChoice::Containerd => vec![Source::Cri],
        SourceChoice::Relist => vec![Source::Cri, Source::Containerd],
    };
    let mut reopen_at = Instant::now();
    let mut last_relist: Option<Instant> = None;
    let mut just_opened = false;
    // Whether the open stream has given an event yet; the source last
    // announced in the log.
    let mut delivered = false;
    let mut logged_source: Option<Source> = None;
    loop {
        if stop.is_cancelled() {
            return;
        }
        // Open the stream before relisting, so nothing falls between the two.
        if stream.is_none() && Instant::now() >= reopen_at {
            match open(&cri, &config, &mut missing).await {
                Ok(s) => {
                    if logged_source != Some(s.source()) {
                        tracing::info!(source = %s.source(), "watching the node's containers through events");
                        logged_source = Some(s.source());
                    }
                    stream = Some(s);
                    just_opened = true;
                    delivered = false;
                }
                Err(failed) => {
                    if let Some(why) = failed {
                        tracing::debug!(error = %why, "container event stream unavailable; relisting meanwhile");
                    }
                    reopen_at = Instant::now() + REOPEN_PAUSE;
                }
            }
        }
        let source = stream.as_ref().map_or(Source::Relist, Stream::source);
        let relisted = shared.relist(&cri).await;
        if relisted {
            last_relist = Some(Instant::now());
            if *shared.synced.borrow() != Some(source) {
                shared.metrics.set_pleg_source(source.name());
                shared.synced.send_replace(Some(source));
            }
        }
        let period = match (&stream, relisted) {
            // The runtime is away: try again soon, stream or not.
            (_, false) => config.relist_period.min(REOPEN_PAUSE),
            // A stream only just opened may not have reached the runtime
            // before the relist did: relist once more, soon.
            (Some(_), true) if std::mem::take(&mut just_opened) => {
                config.events_relist_period.min(SETTLE_RELIST)
            }
            (Some(_), true) => config.events_relist_period,
            (None, true) => config.relist_period,
        };
        let mut next_relist = Instant::now() + period;
        loop {
            let could_reopen = stream.is_none() && missing.len() < 2;
            let woke = {
                let next = async {
                    match stream.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending::<Next>().await,
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep_until(next_relist) => Woke::RelistDue,
                    _ = tokio::time::sleep_until(reopen_at), if could_reopen => Woke::RelistDue,
                    () = shared.relist_asked.notified() => Woke::RelistAsked,
                    changes = next => Woke::Events(changes),
                }
            };
            match woke {
                Woke::RelistDue => break,
                Woke::RelistAsked => match asked_relist(last_relist, Instant::now()) {
                    None => break,
                    // Meanwhile events are still read: an exit waited on
                    // must not queue behind another container's news.
                    Some(earliest) => next_relist = next_relist.min(earliest),
                },
                Woke::Events(Next::Changes(changes)) => {
                    delivered = true;
                    shared.apply(changes);
                }
                Woke::Events(Next::Ended) => {
                    // A stream that ends before its first event (the
                    // runtime is away) is tried again after a pause.
                    if std::mem::take(&mut delivered) {
                        tracing::info!("container event stream ended; relisting and reopening it");
                        reopen_at = Instant::now();
                    } else {
                        tracing::debug!(
                            "container event stream ended before any event; reopening it shortly"
                        );
                        reopen_at = Instant::now() + REOPEN_PAUSE;
                    }
                    stream = None;
                    break;
                }
                Woke::Events(Next::Missing) => {
                    let source = stream.take().map_or(Source::Relist, |s| s.source());
                    tracing::info!(%source, "the runtime has no such event source; relisting instead");
                    missing.push(source);
                    reopen_at = Instant::now();
                    break;
                }
            }
        }
    }
}

enum Woke {
    RelistDue,
    RelistAsked,
    Events(Next),
}

/// When a relist an event asked for may run: `None` now, else no sooner
/// than [`MIN_ASKED_RELIST_GAP`] after the last one — a time to relist at,
/// never a pause in reading events.
fn asked_relist(last_relist: Option<Instant>, now: Instant) -> Option<Instant> {
    let earliest = last_relist? + MIN_ASKED_RELIST_GAP;
    (earliest > now).then_some(earliest)
}

/// Milliseconds from `at` (nanoseconds since the epoch) to now.
fn lag_ms(at: i64) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    (now - at) as f64 / 1e6
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_asked_relist_runs_at_once_after_the_gap_and_is_scheduled_within_it() {
        let now = Instant::now();
        // Never relisted, or long ago: now.
        assert_eq!(asked_relist(None, now), None);
        assert_eq!(asked_relist(Some(now - MIN_ASKED_RELIST_GAP), now), None);
        // Within the gap: a time to relist at (the loop keeps reading
        // events until then), exactly the gap after the last relist.
        let last = now - Duration::from_millis(50);
        assert_eq!(
            asked_relist(Some(last), now),
            Some(last + MIN_ASKED_RELIST_GAP)
        );
    }
}
