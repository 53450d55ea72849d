//! One function per command; they translate flags into engine calls and results into output.

pub mod admin;
pub mod containers;
pub mod images;
pub mod networks;
pub mod packages;
pub mod plugins;
pub mod snapshots;
pub mod volumes;

use std::sync::Arc;

use berth_core::RemoveOptions;

use crate::cli::{Command, PluginCommand};
use berth_engine::Engine;

pub async fn dispatch(engine: Arc<Engine>, command: Command, json: bool) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => containers::run(&engine, args).await,
        Command::Create(args) => containers::create(&engine, args).await,
        Command::Start { containers } => containers::start(&engine, &containers).await,
        Command::Stop {
            timeout,
            signal,
            containers,
        } => containers::stop(&engine, timeout, &signal, &containers).await,
        Command::Kill { signal, containers } => {
            containers::kill(&engine, &signal, &containers).await
        }
        Command::Rm {
            force,
            keep_snapshot,
            containers,
        } => {
            let options = RemoveOptions {
                force,
                keep_snapshot,
            };
            containers::rm(&engine, options, &containers).await
        }
        Command::Ps { all, filter, quiet } => {
            containers::ps(&engine, all, &filter, quiet, json).await
        }
        Command::Inspect { containers } => containers::inspect(&engine, &containers).await,
        Command::Stats { containers } => containers::stats(&engine, &containers, json).await,
        Command::Logs { follow, container } => containers::logs(&engine, follow, &container).await,
        Command::Exec {
            interactive,
            env,
            workdir,
            container,
            command,
        } => {
            let spec = containers::exec_spec(command, &env, workdir, interactive)?;
            containers::exec(&engine, &container, &spec).await
        }
        Command::Image(args) => images::dispatch(&engine, args, json).await,
        Command::Snapshot(args) => snapshots::dispatch(&engine, args, json).await,
        Command::Commit { container, name } => {
            snapshots::commit(&engine, &container, name.as_deref()).await
        }
        Command::Rollback { container, version } => {
            snapshots::rollback(&engine, &container, &version).await
        }
        Command::Pkg(command) => packages::dispatch(&engine, command, json),
        Command::Volume(command) => volumes::dispatch(&engine, command, json),
        Command::Network(command) => networks::dispatch(&engine, command, json),
        Command::Backend(_) => admin::backend_ls(&engine, json).await,
        Command::Events { follow } => plugins::events(&engine, follow, json),
        Command::Gc {
            dry_run,
            exited,
            grace,
        } => admin::gc(&engine, dry_run, exited.then_some(&grace), json).await,
        Command::Plugin(PluginCommand::Ls) => plugins::ls(&engine, json),
        Command::Plugin(PluginCommand::Call { name, hook, spec }) => {
            plugins::call(&engine, &name, &hook, &spec, json).await
        }
        // Handled before the engine is built.
        Command::Config(_) | Command::Plugin(PluginCommand::Check { .. }) => {
            unreachable!("handled in main")
        }
    }
}
