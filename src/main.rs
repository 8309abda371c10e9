//! The `podstart` binary: parse the command line, set up logging, run the
//! chosen subcommand.
use std::process::ExitCode;

use clap::Parser;
use podstart::config::{Cli, Command};
use podstart::{cli::commands, server, sim, telemetry};

/// mimalloc instead of glibc's malloc: a start allocates and frees many
/// small buffers (protobuf messages, HTTP/2 frames, events) across worker
/// threads, where glibc's arenas spent a fifth of the serve process's CPU
/// under load (BENCHMARKS.md, scenario (d)). Built without transparent
/// huge pages (`no_thp`), which doubled the idle RSS.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _tracing =
        match telemetry::init_tracing(&cli.log_level, cli.log_format, cli.otlp_endpoint.as_deref())
        {
            Ok(guard) => guard,
            Err(e) => {
                eprintln!("podstart: {e}");
                return ExitCode::from(2);
            }
        };
    let endpoint = &commands::Target {
        endpoint: cli.endpoint.clone(),
        tls: podstart::endpoint::ClientTls {
            ca: cli.certificate_authority.clone(),
            identity: cli.client_certificate.clone().zip(cli.client_key.clone()),
        },
    };
    let result = match cli.command {
        Command::Serve(args) => server::serve(*args)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
        Command::SimRuntime(args) => sim::run(&args.listen)
            .await
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| e.to_string()),
        Command::Run(args) => commands::run(endpoint, args)
            .await
            .map_err(|e| e.to_string()),
        Command::Stop(args) => commands::stop(endpoint, args)
            .await
            .map_err(|e| e.to_string()),
        Command::Get(args) => commands::get(endpoint, args)
            .await
            .map_err(|e| e.to_string()),
        Command::Ls(args) => commands::ls(endpoint, args)
            .await
            .map_err(|e| e.to_string()),
        Command::Events(args) => commands::events(endpoint, args)
            .await
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("podstart: {message}");
            ExitCode::from(2)
        }
    }
}
