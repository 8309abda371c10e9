//! The client subcommands: `run`, `stop`, `get`, `ls`, `events`. Each talks
//! to a podstart daemon over its API and prints what comes back.
use std::{io::Write, process::ExitCode};

use tokio_stream::StreamExt;
use tonic::{Status, transport::Channel};

use super::manifest::{self, ManifestError};
use super::render;
use crate::config::{EventsArgs, GetArgs, LsArgs, Output, PodSelector, RunArgs, StopArgs};
use crate::endpoint::{self, Address, ClientTls, ConnectError, EndpointError, Peer};
use crate::proto::v1::{
    AppStartMode, GetPodRequest, ListPodsRequest, PodRef, StartEvent, StartOptions, StopPodRequest,
    WatchEventsRequest, pod_starter_client::PodStarterClient, start_event::Payload,
};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    #[error("is podstart serving there? {0}")]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{}: {}{}", .0.code().description(), .0.message(), causes(.0))]
    Rpc(#[from] Status),
    #[error("pod: give a manifest file, --uid, or --name (with --namespace)")]
    NoPod,
    #[error("the event stream ended without a final event")]
    Truncated,
    #[error("--registry-config {path}: {source}")]
    RegistryConfig {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    PullSecret(#[from] super::pull_secrets::PullSecretError),
}

/// What lies under a failed call (a refused TLS handshake, a reset
/// connection), as `: cause: cause`; empty when nothing does.
fn causes(status: &Status) -> String {
    let (mut out, mut last) = (String::new(), status.message().to_string());
    let mut next = std::error::Error::source(status);
    while let Some(e) = next {
        let text = e.to_string();
        if text != last {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        next = e.source();
    }
    out
}

/// The daemon a client command talks to: `--endpoint` and, for an
/// `https://` one, the TLS files.
#[derive(Clone, Debug)]
pub struct Target {
    pub endpoint: String,
    pub tls: ClientTls,
}

async fn client(target: &Target) -> Result<PodStarterClient<Channel>, CliError> {
    let addr = Address::parse(&target.endpoint, Peer::Podstart)?;
    // Connect now, so an absent daemon is reported as such.
    let channel = endpoint::connect_api(&addr, &target.tls).await?;
    Ok(PodStarterClient::new(channel))
}

/// Prints a stream of events; returns the terminal event, if one came.
async fn follow(
    mut stream: tonic::Streaming<StartEvent>,
    output: Output,
) -> Result<Option<StartEvent>, CliError> {
    let mut since = None;
    let mut out = std::io::stdout().lock();
    while let Some(event) = stream.next().await {
        let event = event?;
        // Lines show the time since the request began: the first event's
        // time less its own duration.
        let start = *since.get_or_insert(
            event.time_unix_nano - i64::try_from(event.duration_micros * 1000).unwrap_or(0),
        );
        let line = match output {
            Output::Text => render::event_line(&event, start),
            Output::Json => render::event_json(&event).to_string(),
        };
        // A closed stdout (e.g. `| head`) is not an error worth reporting.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        if event.is_terminal() {
            return Ok(Some(event));
        }
    }
    Ok(None)
}

fn exit_for(terminal: Option<StartEvent>) -> Result<ExitCode, CliError> {
    match terminal.and_then(|e| e.payload) {
        Some(Payload::PodStarted(_) | Payload::PodStopped(_)) => Ok(ExitCode::SUCCESS),
        Some(_) => Ok(ExitCode::from(1)),
        None => Err(CliError::Truncated),
    }
}

pub async fn run(endpoint: &Target, args: RunArgs) -> Result<ExitCode, CliError> {
    let loaded = manifest::load_manifests(&args.files())?;
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let mut request = loaded.request;
    if args.parallel {
        let options = request.options.get_or_insert_with(StartOptions::default);
        options.set_app_start(AppStartMode::Parallel);
    }
    if args.no_pre_pull {
        request
            .options
            .get_or_insert_with(StartOptions::default)
            .no_pre_pull = true;
    }
    if let Some(path) = &args.registry_config {
        let text = std::fs::read(path).map_err(|source| CliError::RegistryConfig {
            path: path.display().to_string(),
            source,
        })?;
        let origin = path.display().to_string();
        request
            .credentials
            .extend(super::pull_secrets::from_docker_config(&text, &origin)?);
    }
    let mut client = client(endpoint).await?;
    let stream = client.start_pod(request).await?.into_inner();
    exit_for(follow(stream, args.output).await?)
}

/// The pod a selector names. A manifest names it by namespace and name.
fn pod_ref(sel: &PodSelector) -> Result<PodRef, CliError> {
    let files = sel.files();
    if !files.is_empty() {
        let loaded = manifest::load_manifests(&files)?;
        let meta = loaded
            .request
            .pod
            .and_then(|p| p.metadata)
            .unwrap_or_default();
        return Ok(PodRef {
            namespace: meta.namespace,
            name: meta.name,
            ..Default::default()
        });
    }
    if let Some(uid) = &sel.uid {
        return Ok(PodRef {
            uid: uid.clone(),
            ..Default::default()
        });
    }
    if let Some(name) = &sel.name {
        return Ok(PodRef {
            namespace: sel.namespace.clone(),
            name: name.clone(),
            ..Default::default()
        });
    }
    Err(CliError::NoPod)
}

pub async fn stop(endpoint: &Target, args: StopArgs) -> Result<ExitCode, CliError> {
    let pod = pod_ref(&args.pod)?;
    let mut client = client(endpoint).await?;
    let stream = client
        .stop_pod(StopPodRequest {
            pod: Some(pod),
            grace_period_seconds: args.grace_period,
        })
        .await?
        .into_inner();
    exit_for(follow(stream, args.output).await?)
}

pub async fn get(endpoint: &Target, args: GetArgs) -> Result<ExitCode, CliError> {
    let pod = pod_ref(&args.pod)?;
    let mut client = client(endpoint).await?;
    let pod = client
        .get_pod(GetPodRequest { pod: Some(pod) })
        .await?
        .into_inner();
    match args.output {
        Output::Text => print!("{}", render::pod_text(&pod)),
        Output::Json => println!("{}", render::pod_json(&pod)),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn ls(endpoint: &Target, args: LsArgs) -> Result<ExitCode, CliError> {
    let mut client = client(endpoint).await?;
    let pods = client
        .list_pods(ListPodsRequest {
            namespace: args.namespace.unwrap_or_default(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .pods;
    match args.output {
        Output::Text => {
            println!(
                "{:<16} {:<24} {:<38} {:<9} {:<16} RUNNING",
                "NAMESPACE", "NAME", "UID", "SANDBOX", "IP"
            );
            for p in &pods {
                println!("{}", render::pod_row(p));
            }
        }
        Output::Json => {
            for p in &pods {
                println!("{}", render::pod_json(p));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn events(endpoint: &Target, args: EventsArgs) -> Result<ExitCode, CliError> {
    let mut client = client(endpoint).await?;
    let stream = client
        .watch_events(WatchEventsRequest {
            pod_uid: args.uid.unwrap_or_default(),
            namespace: args.namespace.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let mut stream = stream;
    let mut since = None;
    while let Some(event) = stream.next().await {
        let event = event?;
        let start = *since.get_or_insert(event.time_unix_nano);
        match args.output {
            Output::Text => println!("{}", render::event_line(&event, start)),
            Output::Json => println!("{}", render::event_json(&event)),
        }
    }
    Ok(ExitCode::SUCCESS)
}
