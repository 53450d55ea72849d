//! The `berth` binary: parses the command line, loads the configuration, runs one command and
//! turns its outcome into an exit code. Everything that is not presentation lives in the
//! library crates.

mod cli;
mod commands;
mod exit;
mod output;
mod terminal;

use anyhow::Context;
use clap::Parser;

use crate::cli::{Cli, Command, LogFormat};
use berth_engine::Engine;

fn main() {
    // The native backend re-executes this binary as a per-container supervisor (and for exec);
    // those entry points must run before anything starts a thread (libcontainer uses clone3).
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = berth_backend_native::reexec::dispatch(&args) {
        std::process::exit(code);
    }
    if let Some(code) = berth_engine::pods::infra::dispatch(&args) {
        std::process::exit(code);
    }
    if let Some(code) = berth_engine::pods::watch::dispatch(&args) {
        std::process::exit(code);
    }
    if let Some(code) = berth_backend_containerd::logger::dispatch(&args) {
        std::process::exit(code);
    }

    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_tracing(cli.log_format, &cli.log_level);
    quiet_on_closed_stdout();

    let code = match run(cli) {
        Ok(code) => code,
        Err(error) => {
            report(&error);
            exit::for_error(&error)
        }
    };
    std::process::exit(code);
}

/// `berth ps | head -1`: once the reader is gone, printing panics with EPIPE (Rust ignores
/// SIGPIPE, and berth keeps it ignored so a daemon closing a socket cannot kill it silently).
/// Such a panic ends berth quietly with the status a SIGPIPE death would give, as `ls` does.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(exit::CLOSED_STDOUT);
        }
        default(info);
    }));
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    // Commands that need no configuration and no runtime.
    if let Command::Config(command) = &cli.command {
        return commands::admin::config(command, cli.config.as_deref(), cli.json);
    }
    if let Command::Plugin(cli::PluginCommand::Check { file }) = &cli.command {
        let config = berth_core::Config::load(cli.config.as_deref())?;
        return commands::plugins::check(file, &config, cli.json);
    }

    let config = berth_core::Config::load(cli.config.as_deref())?;
    if matches!(cli.command, Command::Cri(_)) {
        berth_plugins::pool_instances();
    }
    let worlds = cli.command.consulted_worlds();
    if !worlds.is_empty() && !config.plugins.is_empty() {
        berth_plugins::start_engine(&config, worlds);
    }
    // A server serves calls concurrently; a command needs one worker.
    let workers = if matches!(cli.command, Command::Cri(_)) {
        2
    } else {
        1
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let engine = Engine::open(config, runtime.handle().clone())?;
    let code = runtime.block_on(commands::dispatch(engine.clone(), cli.command, cli.json));
    // The process ends next, and exit frees it all at once: dropping the engine would first
    // unmap wasmtime's code and reset its instance pools piece by piece, and dropping the
    // runtime would wait for a blocking read of stdin (`run -i`, `attach`) to finish.
    std::mem::forget(engine);
    std::mem::forget(runtime);
    code
}

fn init_tracing(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // libcgroups warns about every v1 controller this kernel lacks, and the TLS verifier
        // logs the certificate error berth reports anyway: noise for a user.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "{level},libcgroups=error,libcontainer=error,rustls_platform_verifier=off"
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Prints the error and its causes once each; a cause already spelled out in the message
/// above it is not repeated. Escaped: errors quote plugin answers (deny reasons, traps) and
/// user or record text, none of which may drive the terminal or fake a line of its own.
fn report(error: &anyhow::Error) {
    let mut printed = String::new();
    for (i, cause) in error.chain().enumerate() {
        let text = output::escaped(&cause.to_string()).into_owned();
        if i > 0 && printed.contains(&text) {
            continue;
        }
        if i == 0 {
            eprintln!("berth: error: {text}");
        } else {
            eprintln!("  caused by: {text}");
        }
        printed.push_str(&text);
    }
}
