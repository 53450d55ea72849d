//! Container commands: run, create, start, stop, kill, rm, ps, inspect, logs, exec.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use berth_core::{
    ContainerSpec, Error, ExecSpec, ListFilter, LogOptions, Mount, NetworkSpec, RemoveOptions,
    RestartPolicy, StdioSink, StopOptions, parse_cpus, parse_key_value, parse_size,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::{CreateArgs, RunArgs};
use crate::output;
use berth_engine::{ContainerRecord, CreateOptions, Engine};

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
    if args.interactive {
        spec.stdin_open = true;
    }
    if args.tty {
        spec.tty = true;
        spec.console_size = berth_core::terminal::user_size();
    }
    for text in args.pkg {
        berth_packages::parse_ref(&text)?;
        spec.packages.push(text);
    }
    if let Some(policy) = &args.restart {
        (spec.restart, spec.restart_max_retries) = RestartPolicy::parse(policy)?;
    }
    let net = args.net.parse()?;
    spec.ports.extend(net.ports);
    spec.dns.extend(net.dns);
    spec.dns_search.extend(net.dns_search);
    spec.dns_options.extend(net.dns_options);
    spec.extra_hosts.extend(net.extra_hosts);
    spec.networks.extend(net.networks);
    if let Some(ipv4) = args.ip {
        spec.network = Some(NetworkSpec {
            ipv4,
            subnet: args.subnet,
        });
    }
    if let Some(network) = &spec.network {
        network.cidr()?;
    }
    if args.pod.is_some() {
        spec.pod = args.pod;
    }
    Ok(spec)
}

/// Reads a TOML container spec, strictly: unknown keys are errors naming file and line.
pub fn read_spec<T: serde::de::DeserializeOwned>(path: &Path) -> berth_core::Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading spec file {}", path.display()), e))?;
    toml::from_str(&text)
        .map_err(|e| Error::invalid(format!("spec file {}", path.display()), e.to_string()))
}

pub async fn create(engine: &std::sync::Arc<Engine>, args: CreateArgs) -> anyhow::Result<i32> {
    let record = engine
        .create(spec_from_args(args)?, CreateOptions::default())
        .await?;
    println!("{}", record.id);
    Ok(0)
}

pub async fn run(engine: &std::sync::Arc<Engine>, args: RunArgs) -> anyhow::Result<i32> {
    let options = CreateOptions {
        auto_remove: args.rm,
        ..CreateOptions::default()
    };
    let detach_keys = crate::terminal::parse_detach_keys(&args.detach_keys)?;
    if args.rm && args.create.restart.as_deref().is_some_and(|p| p != "no") {
        return Err(berth_core::Error::invalid(
            "--restart with --rm",
            "a container removed when it exits cannot be restarted",
        )
        .with_hint("drop one of the two")
        .into());
    }
    if args.create.interactive && args.create.tty && !args.detach {
        crate::terminal::stdin_must_be_a_terminal("run -it")?;
    }
    let mut spec = spec_from_args(args.create)?;
    // In the foreground, this stdin ends the container's: docker's `run -i`.
    spec.stdin_once = spec.stdin_open && !args.detach;
    let record = engine.create(spec, options).await?;
    if let Err(e) = engine.start(&record).await {
        if args.rm {
            let _ = engine.remove(&record, RemoveOptions::forced()).await;
        }
        return Err(e.into());
    }
    if args.detach {
        println!("{}", record.id);
        return Ok(0);
    }
    let foreground = Foreground {
        feed_stdin: record.spec.stdin_open,
        detach_keys,
    };
    let Some(outcome) = foreground.stay(engine, &record).await else {
        return Ok(0);
    };
    if args.rm {
        engine
            .remove(&record, RemoveOptions::forced())
            .await
            .with_context(|| format!("removing container {} after it exited", record.name))?;
    }
    outcome
}

/// `run` without -d and `start -a`: with the container until it exits.
struct Foreground {
    /// This stdin goes into the container's.
    feed_stdin: bool,
    /// On a terminal, what detaches.
    detach_keys: Vec<u8>,
}

impl Foreground {
    /// The container's exit code once it has exited; `None` when the user detached from its
    /// terminal and it runs on.
    async fn stay(
        &self,
        engine: &std::sync::Arc<Engine>,
        record: &ContainerRecord,
    ) -> Option<anyhow::Result<i32>> {
        if record.spec.tty {
            let stdin = if self.feed_stdin {
                berth_core::AttachStdin::ThenOutput
            } else {
                berth_core::AttachStdin::Off
            };
            return on_terminal(engine, record, stdin, &self.detach_keys).await;
        }
        // The output comes from the log; the attachment carries stdin alone.
        let feed = self.feed_stdin.then(|| {
            let (engine, record) = (engine.clone(), record.clone());
            tokio::spawn(async move {
                let io = berth_core::ExecStreams {
                    stdin: Box::new(tokio::io::stdin()),
                    stdout: Box::new(tokio::io::sink()),
                    stderr: Box::new(tokio::io::sink()),
                    resize: None,
                };
                engine
                    .attach(&record, io, berth_core::AttachStdin::UntilEnd)
                    .await
            })
        });
        let outcome = attach(engine, record).await;
        if let Some(feed) = feed {
            feed.abort();
        }
        Some(outcome)
    }
}

/// This terminal on the container's until it exits (its exit code) or the user detaches
/// (`None`, said on stderr).
async fn on_terminal(
    engine: &Engine,
    record: &ContainerRecord,
    stdin: berth_core::AttachStdin,
    detach_keys: &[u8],
) -> Option<anyhow::Result<i32>> {
    match crate::terminal::attach(engine, record, stdin, detach_keys).await {
        Err(e) => {
            // It exited before this could attach (`run -t true`): what it wrote is in its log.
            let exiting = std::time::Duration::from_secs(5);
            let Ok(Ok(code)) = tokio::time::timeout(exiting, engine.wait(record)).await else {
                return Some(Err(e.into()));
            };
            let logs = engine
                .logs(record, LogOptions::default(), &mut StdioSink)
                .await;
            Some(logs.map(|()| code).map_err(Into::into))
        }
        Ok(crate::terminal::Ended::Exited) => Some(engine.wait(record).await.map_err(Into::into)),
        Ok(crate::terminal::Ended::Detached) => {
            let name = output::escaped(&record.name);
            eprintln!("berth: detached from {name}; it runs on (`berth attach {name}` to return)");
            None
        }
    }
}

/// Streams the container's output until it exits, forwarding SIGINT and SIGTERM to it, and
/// returns its exit code.
async fn attach(engine: &Engine, record: &ContainerRecord) -> anyhow::Result<i32> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut sink = StdioSink;
    let follow = LogOptions {
        follow: true,
        ..LogOptions::default()
    };
    let logs = engine.logs(record, follow, &mut sink);
    tokio::pin!(logs);
    loop {
        tokio::select! {
            result = &mut logs => { result?; break; }
            _ = interrupt.recv() => { let _ = engine.kill(record, libc::SIGINT).await; }
            _ = terminate.recv() => { let _ = engine.kill(record, libc::SIGTERM).await; }
        }
    }
    Ok(engine.wait(record).await?)
}

/// `berth attach`: this process's stdio on the container's until it exits (its exit code);
/// the end of this stdin only stops the input. On a terminal, the detach keys leave it.
pub async fn attach_stdio(
    engine: &Engine,
    reference: &str,
    no_stdin: bool,
    detach_keys: &str,
) -> anyhow::Result<i32> {
    let detach_keys = crate::terminal::parse_detach_keys(detach_keys)?;
    let record = engine.resolve(reference)?;
    let stdin = if record.spec.stdin_open && !no_stdin {
        berth_core::AttachStdin::ThenOutput
    } else {
        berth_core::AttachStdin::Off
    };
    if record.spec.tty {
        if stdin != berth_core::AttachStdin::Off {
            crate::terminal::stdin_must_be_a_terminal(&format!("attach to {}", record.name))?;
        }
        return on_terminal(engine, &record, stdin, &detach_keys)
            .await
            .unwrap_or(Ok(0));
    }
    engine
        .attach(&record, berth_core::ExecStreams::stdio(), stdin)
        .await?;
    // The output ended: the container is exiting.
    Ok(engine.wait(&record).await?)
}

/// Applies `action` to each reference, reporting failures per container like docker does.
async fn each<'a, F, Fut>(
    engine: &'a Engine,
    references: &'a [String],
    mut action: F,
) -> anyhow::Result<i32>
where
    F: FnMut(ContainerRecord) -> Fut,
    Fut: Future<Output = berth_core::Result<()>>,
{
    let mut first_error: Option<anyhow::Error> = None;
    for reference in references {
        let outcome = match engine.resolve(reference) {
            Ok(record) => action(record).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => println!("{reference}"),
            Err(e) if references.len() == 1 => return Err(e.into()),
            Err(e) => {
                let text = format!("{reference}: {e}");
                eprintln!("berth: error: {}", crate::output::escaped(&text));
                first_error.get_or_insert(e.into());
            }
        }
    }
    first_error.map_or(Ok(0), Err)
}

pub async fn start(engine: &std::sync::Arc<Engine>, references: &[String]) -> anyhow::Result<i32> {
    each(engine, references, async |record| {
        engine.start(&record).await
    })
    .await
}

/// `start -a [-i]`: starts one container and stays with it, as `run` does.
pub async fn start_attached(
    engine: &std::sync::Arc<Engine>,
    references: &[String],
    interactive: bool,
    detach_keys: &str,
) -> anyhow::Result<i32> {
    let detach_keys = crate::terminal::parse_detach_keys(detach_keys)?;
    let [reference] = references else {
        return Err(
            Error::invalid("start --attach", "more than one container given")
                .with_hint("attach to one container at a time")
                .into(),
        );
    };
    let record = engine.resolve(reference)?;
    if interactive && !record.spec.stdin_open {
        return Err(Error::invalid(
            format!("start -i of container {}", record.name),
            "it was created without -i, so its stdin is closed",
        )
        .with_hint("create it with -i to feed it stdin")
        .into());
    }
    if interactive && record.spec.tty {
        crate::terminal::stdin_must_be_a_terminal(&format!("start -ai of {}", record.name))?;
    }
    engine.start(&record).await?;
    let foreground = Foreground {
        feed_stdin: interactive,
        detach_keys,
    };
    foreground.stay(engine, &record).await.unwrap_or(Ok(0))
}

pub async fn stop(
    engine: &std::sync::Arc<Engine>,
    timeout: u64,
    signal_name: &str,
    references: &[String],
) -> anyhow::Result<i32> {
    let options = StopOptions {
        signal: parse_signal(signal_name)?,
        timeout: Duration::from_secs(timeout),
        force: true,
    };
    each(engine, references, async |record| {
        engine.stop(&record, &options).await
    })
    .await
}

pub async fn kill(
    engine: &std::sync::Arc<Engine>,
    signal_name: &str,
    references: &[String],
) -> anyhow::Result<i32> {
    let signal = parse_signal(signal_name)?;
    each(engine, references, async |record| {
        engine.kill(&record, signal).await
    })
    .await
}

pub async fn rm(
    engine: &std::sync::Arc<Engine>,
    options: RemoveOptions,
    references: &[String],
) -> anyhow::Result<i32> {
    each(engine, references, async |record| {
        engine.remove(&record, options).await
    })
    .await
}

pub async fn ps(
    engine: &Engine,
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
    let rows = engine.list(&filter).await?;
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
                    ports(&info.ports),
                ]
            })
            .collect();
        output::table(
            &[
                "CONTAINER ID",
                "NAME",
                "IMAGE",
                "BACKEND",
                "STATUS",
                "PORTS",
            ],
            &cells,
        );
    }
    Ok(0)
}

/// Docker's PORTS column: `127.0.0.1:8080->80/tcp, 8443->443/tcp`.
fn ports(ports: &[berth_core::PortMapping]) -> String {
    ports
        .iter()
        .map(|p| {
            let host = match (&p.host_ip, p.host_port) {
                (Some(ip), Some(port)) => format!("{ip}:{port}->"),
                (None, Some(port)) => format!("{port}->"),
                _ => String::new(),
            };
            format!("{host}{}/{}", p.container_port, p.protocol)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn inspect(engine: &Engine, references: &[String]) -> anyhow::Result<i32> {
    let mut documents = Vec::new();
    for reference in references {
        let record = engine.resolve(reference)?;
        let info = engine.info(&record).await;
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

/// `berth update`: each container's new limits, printed by name as docker does.
pub async fn update(
    engine: &Engine,
    references: &[String],
    limits: &berth_core::Limits,
) -> anyhow::Result<i32> {
    if *limits == berth_core::Limits::default() {
        return Err(berth_core::Error::invalid("update", "no limit given")
            .with_hint("give --memory, --cpus or --pids-limit")
            .into());
    }
    for reference in references {
        let record = engine.resolve(reference)?;
        engine.update_limits(&record, limits).await?;
        println!("{}", output::escaped(reference));
    }
    Ok(0)
}

pub async fn stats(engine: &Engine, references: &[String], json: bool) -> anyhow::Result<i32> {
    let mut rows = Vec::with_capacity(references.len());
    for reference in references {
        let record = engine.resolve(reference)?;
        let stats = engine.stats(&record).await?;
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

pub async fn logs(engine: &Engine, options: LogOptions, reference: &str) -> anyhow::Result<i32> {
    let record = engine.resolve(reference)?;
    engine.logs(&record, options, &mut StdioSink).await?;
    Ok(0)
}

/// `--tail`: a number of lines, or `all`.
pub fn parse_tail(text: &str) -> berth_core::Result<Option<usize>> {
    if text == "all" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        Error::invalid(format!("--tail {text:?}"), "not a number of lines")
            .with_hint("give a number such as 20, or all")
    })
}

/// `--since`/`--until`: an RFC 3339 time, or a duration ago (`10m`, `2h`, `30s`), as docker
/// reads them.
pub fn parse_time(text: &str) -> berth_core::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    let ago = crate::commands::admin::parse_duration(text).map_err(|_| {
        Error::invalid(
            format!("time {text:?}"),
            "neither an RFC 3339 time nor a duration",
        )
        .with_hint("use e.g. 2026-01-02T03:04:05Z or 10m")
    })?;
    let ago = chrono::Duration::from_std(ago).unwrap_or(chrono::Duration::MAX);
    Ok(chrono::Utc::now()
        .checked_sub_signed(ago)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
}

/// What `berth exec` asks for.
pub fn exec_spec(
    command: Vec<String>,
    env: &[String],
    working_dir: Option<String>,
    interactive: bool,
    tty: bool,
) -> berth_core::Result<ExecSpec> {
    let mut spec = ExecSpec {
        command,
        working_dir,
        interactive,
        tty,
        ..Default::default()
    };
    for text in env {
        let (k, v) = parse_key_value("--env", text)?;
        spec.env.insert(k, v);
    }
    Ok(spec)
}

pub async fn exec(engine: &Engine, reference: &str, spec: &ExecSpec) -> anyhow::Result<i32> {
    let record = engine.resolve(reference)?;
    if spec.interactive && spec.tty {
        crate::terminal::stdin_must_be_a_terminal(&format!("exec -it in {}", record.name))?;
    }
    Ok(engine
        .exec(&record, spec, berth_core::ExecIo::Inherit)
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
    fn log_windows_parse_as_docker_reads_them() {
        assert_eq!(parse_tail("all").unwrap(), None);
        assert_eq!(parse_tail("3").unwrap(), Some(3));
        assert!(parse_tail("-1").is_err());
        let exact = parse_time("2026-01-02T03:04:05.5+01:00").unwrap();
        assert_eq!(exact.to_rfc3339(), "2026-01-02T02:04:05.500+00:00");
        let ago = chrono::Utc::now() - parse_time("10m").unwrap();
        assert!((599..=601).contains(&ago.num_seconds()), "{ago}");
        assert!(
            parse_time("99999999d").is_ok(),
            "far back is the beginning, not a panic"
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn signals_parse_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), libc::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), libc::SIGKILL);
        assert_eq!(parse_signal("1").unwrap(), libc::SIGHUP);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
