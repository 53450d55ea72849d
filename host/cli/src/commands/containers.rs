//! Container commands: run, create, start, stop, kill, rm, ps, inspect, logs, exec.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use berth_core::{
    ContainerSpec, Error, ExecSpec, ListFilter, LogOptions, Mount, NetworkSpec, PortMapping,
    RemoveOptions, RestartPolicy, StdioSink, StopOptions, parse_cpus, parse_key_value, parse_size,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{CreateArgs, RunArgs};
use crate::host::{ContainerRecord, Host};
use crate::output;

/// Builds the spec: the `--spec` file if any, then every flag on top of it.
pub fn spec_from_args(args: CreateArgs) -> berth_core::Result<ContainerSpec> {
    let mut spec = match &args.spec {
        Some(path) => read_spec(path)?,
        None => ContainerSpec::default(),
    };
    if let Some(image) = args.image {
        spec.image = image;
    }
    if spec.image.is_empty() {
        return Err(
            Error::invalid("container spec", "no image given").with_hint(
                "pass an image, e.g. `berth run busybox:local echo hi`, or set image in --spec",
            ),
        );
    }
    if !args.command.is_empty() {
        spec.command = args.command;
    }
    if let Some(name) = args.name {
        spec.name = name;
    }
    for text in &args.env {
        let (k, v) = parse_key_value("--env", text)?;
        spec.env.insert(k, v);
    }
    for text in &args.label {
        let (k, v) = parse_key_value("--label", text)?;
        spec.labels.insert(k, v);
    }
    for text in &args.volume {
        spec.mounts.push(Mount::parse(text)?);
    }
    if let Some(memory) = &args.memory {
        spec.limits.memory_bytes = Some(parse_size(memory)?);
    }
    if let Some(cpus) = &args.cpus {
        spec.limits.cpu_millis = Some(parse_cpus(cpus)?);
    }
    if args.pids_limit.is_some() {
        spec.limits.pids = args.pids_limit;
    }
    if args.backend.is_some() {
        spec.backend = args.backend;
    }
    if args.workdir.is_some() {
        spec.working_dir = args.workdir;
    }
    if args.hostname.is_some() {
        spec.hostname = args.hostname;
    }
    for text in args.pkg {
        berth_packages::parse_ref(&text)?;
        spec.packages.push(text);
    }
    for text in &args.publish {
        spec.ports.push(PortMapping::parse(text)?);
    }
    if let Some(policy) = &args.restart {
        spec.restart = RestartPolicy::parse(policy)?;
    }
    spec.dns.extend(args.dns);
    if let (Some(ipv4), Some(subnet)) = (args.ip, args.subnet) {
        spec.network = Some(NetworkSpec { ipv4, subnet });
    }
    if let Some(network) = &spec.network {
        network.cidr()?;
    }
    Ok(spec)
}

/// Reads a TOML container spec, strictly: unknown keys are errors naming file and line.
pub fn read_spec(path: &Path) -> berth_core::Result<ContainerSpec> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading spec file {}", path.display()), e))?;
    toml::from_str(&text)
        .map_err(|e| Error::invalid(format!("spec file {}", path.display()), e.to_string()))
}

pub async fn create(host: &std::sync::Arc<Host>, args: CreateArgs) -> anyhow::Result<i32> {
    let record = host.create(spec_from_args(args)?).await?;
    println!("{}", record.id);
    Ok(0)
}

pub async fn run(host: &std::sync::Arc<Host>, args: RunArgs) -> anyhow::Result<i32> {
    let record = host.create(spec_from_args(args.create)?).await?;
    if let Err(e) = host.start(&record).await {
        if args.rm {
            let _ = host.remove(&record, RemoveOptions::forced()).await;
        }
        return Err(e.into());
    }
    if args.detach {
        println!("{}", record.id);
        return Ok(0);
    }
    let outcome = attach(host, &record).await;
    if args.rm {
        host.remove(&record, RemoveOptions::forced())
            .await
            .with_context(|| format!("removing container {} after it exited", record.name))?;
    }
    outcome
}

/// Streams the container's output until it exits, forwarding SIGINT and SIGTERM to it, and
/// returns its exit code.
async fn attach(host: &Host, record: &ContainerRecord) -> anyhow::Result<i32> {
    let backend = host.backend(&record.backend)?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut sink = StdioSink;
    let logs = backend.logs(&record.id, LogOptions { follow: true }, &mut sink);
    tokio::pin!(logs);
    loop {
        tokio::select! {
            result = &mut logs => { result?; break; }
            _ = interrupt.recv() => { let _ = backend.kill(&record.id, libc::SIGINT).await; }
            _ = terminate.recv() => { let _ = backend.kill(&record.id, libc::SIGTERM).await; }
        }
    }
    Ok(backend.wait(&record.id).await?)
}

/// Applies `action` to each reference, reporting failures per container like docker does.
async fn each<'a, F, Fut>(
    host: &'a Host,
    references: &'a [String],
    mut action: F,
) -> anyhow::Result<i32>
where
    F: FnMut(ContainerRecord) -> Fut,
    Fut: Future<Output = berth_core::Result<()>>,
{
    let mut first_error: Option<anyhow::Error> = None;
    for reference in references {
        let outcome = match host.resolve(reference) {
            Ok(record) => action(record).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => println!("{reference}"),
            Err(e) if references.len() == 1 => return Err(e.into()),
            Err(e) => {
                eprintln!("berth: error: {reference}: {e}");
                first_error.get_or_insert(e.into());
            }
        }
    }
    first_error.map_or(Ok(0), Err)
}

pub async fn start(host: &std::sync::Arc<Host>, references: &[String]) -> anyhow::Result<i32> {
    each(host, references, async |record| host.start(&record).await).await
}

pub async fn stop(
    host: &std::sync::Arc<Host>,
    timeout: u64,
    signal_name: &str,
    references: &[String],
) -> anyhow::Result<i32> {
    let options = StopOptions {
        signal: parse_signal(signal_name)?,
        timeout: Duration::from_secs(timeout),
        force: true,
    };
    each(host, references, async |record| {
        host.stop(&record, &options).await
    })
    .await
}

pub async fn kill(
    host: &std::sync::Arc<Host>,
    signal_name: &str,
    references: &[String],
) -> anyhow::Result<i32> {
    let signal = parse_signal(signal_name)?;
    each(host, references, async |record| {
        host.backend(&record.backend)?
            .kill(&record.id, signal)
            .await
    })
    .await
}

pub async fn rm(
    host: &std::sync::Arc<Host>,
    options: RemoveOptions,
    references: &[String],
) -> anyhow::Result<i32> {
    each(host, references, async |record| {
        host.remove(&record, options).await
    })
    .await
}

pub async fn ps(
    host: &Host,
    all: bool,
    filters: &[String],
    quiet: bool,
    json: bool,
) -> anyhow::Result<i32> {
    let mut filter = ListFilter {
        all,
        ..Default::default()
    };
    for text in filters {
        let Some(label) = text.strip_prefix("label=") else {
            return Err(
                Error::invalid(format!("--filter {text:?}"), "unsupported filter")
                    .with_hint("use label=KEY=VALUE")
                    .into(),
            );
        };
        let (k, v) = parse_key_value("--filter label", label)?;
        filter.labels.insert(k, v);
    }
    let rows = host.list(&filter).await?;
    if json {
        let infos: Vec<_> = rows.iter().map(|(_, info)| info).collect();
        output::json(&infos);
    } else if quiet {
        for (_, info) in &rows {
            println!("{}", output::short_id(&info.id));
        }
    } else {
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(_, info)| {
                vec![
                    output::short_id(&info.id).to_string(),
                    info.name.clone(),
                    info.image.clone(),
                    info.backend.clone(),
                    output::status(info),
                ]
            })
            .collect();
        output::table(
            &["CONTAINER ID", "NAME", "IMAGE", "BACKEND", "STATUS"],
            &cells,
        );
    }
    Ok(0)
}

pub async fn inspect(host: &Host, references: &[String]) -> anyhow::Result<i32> {
    let mut documents = Vec::new();
    for reference in references {
        let record = host.resolve(reference)?;
        let info = host.info(&record).await;
        let mut document = serde_json::to_value(&info)?;
        document["spec"] = serde_json::to_value(&record.spec)?;
        documents.push(document);
    }
    output::json(&documents);
    Ok(0)
}

/// One container's figures: the stats, with which container they are of.
#[derive(serde::Serialize)]
struct StatsRow {
    id: String,
    name: String,
    #[serde(flatten)]
    stats: berth_core::ContainerStats,
}

pub async fn stats(host: &Host, references: &[String], json: bool) -> anyhow::Result<i32> {
    let mut rows = Vec::with_capacity(references.len());
    for reference in references {
        let record = host.resolve(reference)?;
        let stats = host.backend(&record.backend)?.stats(&record.id).await?;
        rows.push(StatsRow {
            id: record.id,
            name: record.name,
            stats,
        });
    }
    let header = [
        "CONTAINER ID",
        "NAME",
        "CPU TIME",
        "MEM USAGE",
        "MEM CACHE",
        "NET RX / TX",
        "BLOCK READ / WRITE",
    ];
    output::listing(json, &rows, &header, |row| {
        let s = &row.stats;
        vec![
            output::short_id(&row.id).to_string(),
            row.name.clone(),
            format!("{:.2}s", s.cpu_total_ns as f64 / 1e9),
            output::bytes(s.memory_usage_bytes),
            output::bytes(s.memory_cache_bytes),
            format!(
                "{} / {}",
                output::bytes(s.net_rx_bytes),
                output::bytes(s.net_tx_bytes)
            ),
            format!(
                "{} / {} ({} / {} ops)",
                output::bytes(s.block_read_bytes),
                output::bytes(s.block_write_bytes),
                s.block_read_ops,
                s.block_write_ops
            ),
        ]
    });
    Ok(0)
}

pub async fn logs(host: &Host, follow: bool, reference: &str) -> anyhow::Result<i32> {
    let record = host.resolve(reference)?;
    host.backend(&record.backend)?
        .logs(&record.id, LogOptions { follow }, &mut StdioSink)
        .await?;
    Ok(0)
}

pub async fn exec(
    host: &Host,
    reference: &str,
    command: Vec<String>,
    env: &[String],
    working_dir: Option<String>,
) -> anyhow::Result<i32> {
    let record = host.resolve(reference)?;
    let mut spec = ExecSpec {
        command,
        working_dir,
        ..Default::default()
    };
    for text in env {
        let (k, v) = parse_key_value("--env", text)?;
        spec.env.insert(k, v);
    }
    Ok(host
        .backend(&record.backend)?
        .exec(&record.id, &spec)
        .await?)
}

/// `TERM`, `SIGTERM` or `15`.
fn parse_signal(text: &str) -> berth_core::Result<i32> {
    if let Ok(number) = text.parse::<i32>()
        && nix::sys::signal::Signal::try_from(number).is_ok()
    {
        return Ok(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| {
            Error::invalid(format!("signal {text:?}"), "unknown signal")
                .with_hint("use a name like TERM, KILL, HUP or a number")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("1").unwrap(), libc::SIGHUP);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
