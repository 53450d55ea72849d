//! `berth pod create|run|prepare|start|stop|enter|ls|inspect|rm|gc`; apps also join with
//! `berth run --pod`.

use std::sync::Arc;
use std::time::Duration;

use berth_core::{Error, ExecSpec, parse_key_value};
use berth_engine::Engine;
use berth_engine::pods::{PodRecord, PodSpec, manifest, watch};

use crate::cli::{PodCommand, PodCreateArgs, PodManifestArgs};
use crate::output;

pub async fn dispatch(
    engine: &Arc<Engine>,
    command: PodCommand,
    json: bool,
) -> anyhow::Result<i32> {
    match command {
        PodCommand::Create(args) => {
            let pod = engine.create_pod(create_spec(*args)?).await?;
            println!("{}", pod.id);
        }
        PodCommand::Run(args) => {
            let (spec, apps) = read_manifest(&args)?;
            let pod = engine.run_pod(spec, apps).await?;
            println!("{}", pod.id);
        }
        PodCommand::Prepare(args) => {
            let (spec, apps) = read_manifest(&args)?;
            let pod = engine.prepare_pod(spec, apps).await?;
            println!("{}", pod.id);
        }
        PodCommand::Start { pods } => {
            for pod in resolve_all(engine, &pods)? {
                engine.start_pod(&pod).await?;
                println!("{}", pod.name);
            }
        }
        PodCommand::Stop {
            force,
            time,
            if_infra,
            pods,
        } => {
            let infra = if_infra
                .map(|arg| {
                    watch::Process::parse(&arg).ok_or_else(|| {
                        Error::invalid(format!("--if-infra {arg:?}"), "it is no PID:START")
                    })
                })
                .transpose()?;
            for pod in resolve_all(engine, &pods)? {
                if let Some(infra) = infra
                    && !engine.pod_runs_on(&pod, infra)?
                {
                    continue;
                }
                engine
                    .stop_pod(&pod, Duration::from_secs(time), force)
                    .await?;
                println!("{}", pod.name);
            }
        }
        PodCommand::Enter {
            app,
            interactive,
            pod,
            command,
        } => {
            let pod = engine.resolve_pod(&pod)?;
            let container = engine.pod_app(&pod, app.as_deref())?;
            let spec = ExecSpec {
                command: if command.is_empty() {
                    vec!["/bin/sh".into()]
                } else {
                    command
                },
                interactive,
                ..ExecSpec::default()
            };
            return Ok(engine
                .exec(&container, &spec, berth_core::ExecIo::Inherit)
                .await?);
        }
        PodCommand::Ls { quiet } if quiet && !json => {
            for pod in engine.pods()? {
                println!("{}", pod.id);
            }
        }
        PodCommand::Ls { .. } => {
            let mut infos = Vec::new();
            for pod in engine.pods()? {
                infos.push(engine.pod_info(&pod).await);
            }
            output::listing(
                json,
                &infos,
                &["POD ID", "NAME", "STATE", "APPS", "HOSTNAME"],
                |p| {
                    vec![
                        p.id[..12].to_string(),
                        p.name.clone(),
                        p.state.clone(),
                        p.apps.len().to_string(),
                        p.hostname.clone(),
                    ]
                },
            );
        }
        PodCommand::Inspect { pods } => {
            let mut shown = Vec::new();
            for pod in resolve_all(engine, &pods)? {
                shown.push(engine.pod_info(&pod).await);
            }
            output::json(&shown);
        }
        PodCommand::Rm { force, pods } => {
            for pod in resolve_all(engine, &pods)? {
                engine.remove_pod(&pod, force).await?;
                println!("{}", pod.name);
            }
        }
        PodCommand::Gc {
            grace_period,
            dry_run,
        } => {
            let grace = crate::commands::admin::parse_duration(&grace_period)?;
            let mut failed = false;
            for (verb, what, result) in engine.gc_pods(grace, dry_run).await? {
                let verb = if dry_run {
                    format!("would {verb}")
                } else {
                    verb.to_string()
                };
                match result {
                    Ok(()) => println!("{verb}: {what}"),
                    Err(e) => {
                        failed = true;
                        eprintln!("berth: pod gc: cannot {verb} {what}: {e}");
                    }
                }
            }
            if failed {
                return Ok(crate::exit::OTHER);
            }
        }
    }
    Ok(0)
}

fn create_spec(args: PodCreateArgs) -> berth_core::Result<PodSpec> {
    let PodCreateArgs {
        name,
        label,
        hostname,
        backend,
        memory,
        cpus,
        share_pid,
        sysctl,
        net,
    } = args;
    let net = net.parse()?;
    let mut spec = PodSpec {
        name: name.unwrap_or_default(),
        hostname,
        networks: net.networks,
        ports: net.ports,
        dns: net.dns,
        dns_search: net.dns_search,
        dns_options: net.dns_options,
        extra_hosts: net.extra_hosts,
        backend,
        limits: berth_core::Limits {
            memory_bytes: memory.as_deref().map(berth_core::parse_size).transpose()?,
            cpu_millis: cpus.as_deref().map(berth_core::parse_cpus).transpose()?,
            pids: None,
        },
        share_pid,
        ..PodSpec::default()
    };
    for text in &label {
        let (key, value) = parse_key_value("--label", text)?;
        spec.labels.insert(key, value);
    }
    for text in &sysctl {
        let (key, value) = parse_key_value("--sysctl", text)?;
        spec.sysctls.insert(key, value);
    }
    Ok(spec)
}

fn read_manifest(
    args: &PodManifestArgs,
) -> berth_core::Result<(PodSpec, Vec<berth_engine::pods::AppRequest>)> {
    let overrides = manifest::Overrides {
        name: args.name.clone(),
        inherit_env: args.inherit_env,
        env_files: args.env_file.clone(),
        env: args
            .env
            .iter()
            .map(|e| parse_key_value("--env", e))
            .collect::<berth_core::Result<_>>()?,
    };
    manifest::read(&args.manifest, &overrides, || std::env::vars().collect())
}

fn resolve_all(engine: &Engine, references: &[String]) -> berth_core::Result<Vec<PodRecord>> {
    references.iter().map(|r| engine.resolve_pod(r)).collect()
}
