//! One function per command; they translate flags into host calls and results into output.

pub mod admin;
pub mod containers;
pub mod images;
pub mod packages;
pub mod plugins;
pub mod snapshots;
pub mod volumes;

use std::sync::Arc;

use berth_core::RemoveOptions;

use crate::cli::{Command, PluginCommand};
use crate::host::Host;

pub async fn dispatch(host: Arc<Host>, command: Command, json: bool) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => containers::run(&host, args).await,
        Command::Create(args) => containers::create(&host, args).await,
        Command::Start { containers } => containers::start(&host, &containers).await,
        Command::Stop {
            timeout,
            signal,
            containers,
        } => containers::stop(&host, timeout, &signal, &containers).await,
        Command::Kill { signal, containers } => containers::kill(&host, &signal, &containers).await,
        Command::Rm {
            force,
            keep_snapshot,
            containers,
        } => {
            let options = RemoveOptions {
                force,
                keep_snapshot,
            };
            containers::rm(&host, options, &containers).await
        }
        Command::Ps { all, filter, quiet } => {
            containers::ps(&host, all, &filter, quiet, json).await
        }
        Command::Inspect { containers } => containers::inspect(&host, &containers).await,
        Command::Stats { containers } => containers::stats(&host, &containers, json).await,
        Command::Logs { follow, container } => containers::logs(&host, follow, &container).await,
        Command::Exec {
            env,
            workdir,
            container,
            command,
        } => containers::exec(&host, &container, command, &env, workdir).await,
        Command::Image(args) => images::dispatch(&host, args, json).await,
        Command::Snapshot(args) => snapshots::dispatch(&host, args, json).await,
        Command::Commit { container, name } => {
            snapshots::commit(&host, &container, name.as_deref()).await
        }
        Command::Rollback { container, version } => {
            snapshots::rollback(&host, &container, &version).await
        }
        Command::Pkg(command) => packages::dispatch(&host, command, json),
        Command::Volume(command) => volumes::dispatch(&host, command, json),
        Command::Backend(_) => admin::backend_ls(&host, json).await,
        Command::Events { follow } => plugins::events(&host, follow, json),
        Command::Plugin(PluginCommand::Ls) => plugins::ls(&host, json),
        Command::Plugin(PluginCommand::Call { name, hook, spec }) => {
            plugins::call(&host, &name, &hook, &spec, json).await
        }
        // Handled before the host is built.
        Command::Config(_) | Command::Plugin(PluginCommand::Check { .. }) => {
            unreachable!("handled in main")
        }
    }
}
