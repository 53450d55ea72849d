//! One function per command; they translate flags into engine calls and results into output.

pub mod admin;
pub mod containers;
mod copy;
pub mod images;
mod login;
pub mod networks;
pub mod packages;
pub mod plugins;
mod pods;
pub mod snapshots;
pub mod volumes;

use std::sync::Arc;

use berth_core::RemoveOptions;

use crate::cli::{Command, PluginCommand};
use berth_engine::Engine;

/// Runs `command`: one operation, whose plugin calls share `[pipeline] budget-ms`.
pub async fn dispatch(engine: Arc<Engine>, command: Command, json: bool) -> anyhow::Result<i32> {
    let budget = std::time::Duration::from_millis(engine.config.pipeline.budget_ms);
    berth_plugins::budget::within(budget, run(engine, command, json)).await
}

async fn run(engine: Arc<Engine>, command: Command, json: bool) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => containers::run(&engine, args).await,
        Command::Create(args) => containers::create(&engine, args).await,
        Command::Start {
            attach: false,
            containers,
            ..
        } => containers::start(&engine, &containers).await,
        Command::Start {
            interactive,
            detach_keys,
            containers,
            ..
        } => containers::start_attached(&engine, &containers, interactive, &detach_keys).await,
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
        Command::Update {
            memory,
            cpus,
            pids_limit,
            containers,
        } => {
            let limits = berth_core::Limits {
                memory_bytes: memory.as_deref().map(berth_core::parse_size).transpose()?,
                cpu_millis: cpus.as_deref().map(berth_core::parse_cpus).transpose()?,
                pids: pids_limit,
            };
            containers::update(&engine, &containers, &limits).await
        }
        Command::Logs {
            follow,
            tail,
            since,
            until,
            timestamps,
            container,
        } => {
            let options = berth_core::LogOptions {
                follow,
                tail: containers::parse_tail(&tail)?,
                since: since.as_deref().map(containers::parse_time).transpose()?,
                until: until.as_deref().map(containers::parse_time).transpose()?,
                timestamps,
            };
            containers::logs(&engine, options, &container).await
        }
        Command::Attach {
            no_stdin,
            detach_keys,
            container,
        } => containers::attach_stdio(&engine, &container, no_stdin, &detach_keys).await,
        Command::Cp {
            archive,
            follow_link,
            source,
            dest,
        } => {
            let options = berth_engine::CopyOptions {
                archive,
                follow_link,
            };
            copy::cp(&engine, &source, &dest, options).await
        }
        Command::Exec {
            interactive,
            tty,
            env,
            workdir,
            container,
            command,
        } => {
            let spec = containers::exec_spec(command, &env, workdir, interactive, tty)?;
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
        Command::Pod(command) => pods::dispatch(&engine, command, json).await,
        Command::Cri(crate::cli::CriCommand::Serve { listen }) => {
            let listen = listen.unwrap_or_else(|| engine.config.cri.listen.clone());
            let current = engine.config.clone();
            let config = Box::new(move || current.reread());
            berth_cri::serve(engine.clone(), &listen, config, terminated()).await?;
            Ok(0)
        }
        Command::Backend(_) => admin::backend_ls(&engine, json).await,
        Command::Login {
            server,
            username,
            password,
            password_stdin,
        } => {
            let secret = login::Secret::of(password, password_stdin);
            login::login(&engine, &server, username, secret, json).await
        }
        Command::Logout { server } => login::logout(&engine, &server, json),
        Command::Events { follow } => plugins::events(&engine, follow, json),
        Command::Gc {
            dry_run,
            exited,
            grace,
            restart,
        } => admin::gc(&engine, dry_run, exited.then_some(&grace), restart, json).await,
        Command::RestartWatch { id, boot } => {
            engine.keep_restarting(&id, boot).await?;
            Ok(0)
        }
        Command::Plugin(PluginCommand::Ls) => plugins::ls(&engine, json),
        Command::Plugin(PluginCommand::Reload) => plugins::reload(&engine, json),
        Command::Plugin(PluginCommand::Call { name, hook, spec }) => {
            plugins::call(&engine, &name, &hook, &spec, json).await
        }
        // Handled before the engine is built.
        Command::Config(_) | Command::Plugin(PluginCommand::Check { .. }) => {
            unreachable!("handled in main")
        }
    }
}

/// What the networking flags say, parsed.
pub struct NetworkFlags {
    pub ports: Vec<berth_core::PortMapping>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Vec<berth_core::HostEntry>,
    pub networks: Vec<String>,
}

impl crate::cli::NetworkArgs {
    pub fn parse(self) -> berth_core::Result<NetworkFlags> {
        Ok(NetworkFlags {
            ports: self
                .publish
                .iter()
                .map(|p| berth_core::PortMapping::parse(p))
                .collect::<berth_core::Result<_>>()?,
            dns: self.dns,
            dns_search: self.dns_search,
            dns_options: self.dns_option,
            extra_hosts: self
                .add_host
                .iter()
                .map(|h| berth_core::HostEntry::parse(h))
                .collect::<berth_core::Result<_>>()?,
            networks: self.network,
        })
    }
}

/// SIGTERM or SIGINT, whichever comes first: a server's signal to drain and stop.
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
