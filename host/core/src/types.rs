//! Domain types shared by the CLI, the backends and the plugin runtime.
//!
//! A [`ContainerSpec`] is what a user asks for (flags or a TOML spec file) and what plugins see
//! and patch; a [`ContainerInfo`] is what a backend reports back. Both serialise to the same JSON
//! that `--json` prints, so scripts and plugins share one vocabulary.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A bind mount from the host (or a named volume) into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub readonly: bool,
    /// Ownership given to the host directory before the container starts (backends that
    /// support it; the directory is created when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
}

/// A numeric owner for a host path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Mount {
    /// Parses the `-v` syntax `SOURCE:TARGET[:ro|:rw]`.
    pub fn parse(text: &str) -> Result<Mount> {
        let bad = |reason: &str| {
            Error::invalid(format!("mount {text:?}"), reason)
                .with_hint("use SOURCE:TARGET or SOURCE:TARGET:ro")
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, readonly) = match parts.as_slice() {
            [s, t] => (*s, *t, false),
            [s, t, "ro"] => (*s, *t, true),
            [s, t, "rw"] => (*s, *t, false),
            [_, _, opt] => return Err(bad(&format!("unknown option {opt:?}"))),
            _ => return Err(bad("expected two or three ':'-separated fields")),
        };
        if source.is_empty() || target.is_empty() {
            return Err(bad("source and target must not be empty"));
        }
        if !target.starts_with('/') {
            return Err(bad("the target must be an absolute path"));
        }
        Ok(Mount {
            source: source.into(),
            target: target.into(),
            readonly,
            owner: None,
        })
    }
}

/// Resource limits; `None` means "no limit".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// CPU in thousandths of a core (`--cpus 1.5` = 1500).
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
}

impl Limits {
    /// These limits with `update`'s in place where it gives one (`berth update`).
    pub fn updated_by(&self, update: &Limits) -> Limits {
        Limits {
            cpu_millis: update.cpu_millis.or(self.cpu_millis),
            memory_bytes: update.memory_bytes.or(self.memory_bytes),
            pids: update.pids.or(self.pids),
        }
    }
}

/// What a user asks berth to run. Plugins receive it and may patch env, labels, mounts, limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContainerSpec {
    #[serde(default)]
    pub name: String,
    pub image: String,
    /// Overrides the image's default command; empty keeps the image's.
    #[serde(default)]
    pub command: Vec<String>,
    /// Replaces the image's entrypoint (and, as docker's `--entrypoint`, its default command);
    /// `None` keeps the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub limits: Limits,
    /// A requested backend; the backend policy may honour or refuse it.
    #[serde(default)]
    pub backend: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Published ports (`-p`); backends without networking refuse them.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// `--restart on-failure:N`: at most N restarts (none: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_max_retries: Option<u32>,
    /// DNS servers for the container's resolv.conf.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search`: search domains for the container's resolv.conf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `--dns-option`: `options` for the container's resolv.conf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP`: extra lines for the container's /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<HostEntry>,
    /// `--network`: `none` (loopback only), `host` (the host's own), or the networks to attach
    /// to; empty means the default network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    /// A static address (`--ip`): on the container's network, or on the private subnet
    /// `--subnet` names (Docker's VPC network).
    #[serde(default)]
    pub network: Option<NetworkSpec>,
    /// Set by the engine for the backend, never by a user: the network namespace the
    /// container joins.
    #[serde(default, skip_serializing_if = "NetworkNamespace::is_private")]
    pub network_namespace: NetworkNamespace,
    /// Packages (`NAME@VERSION`) mounted read-only into the container.
    #[serde(default)]
    pub packages: Vec<String>,
    /// `--pod`: the pod (name or id) whose namespaces this container joins, as one of its apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Set by the engine for the backend, never by a user: what this app joins of its pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_join: Option<PodJoin>,
    /// Output is also written here in the CRI's log format (the kubelet's `log_path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<std::path::PathBuf>,
    /// The container's stdin stays open for attached clients to write to (`docker run -i`,
    /// the kubelet's `stdin`); otherwise it reads an empty stdin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    /// With `stdin_open`: the first attached client to finish closes the container's stdin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_once: bool,
    /// `-t`: the container's stdio is a terminal (one output stream), sized by whoever is
    /// attached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    /// With `tty`: the terminal's size from the first instant (the creating client's), until
    /// a client resizes it; docker's `ConsoleSize`. Without it a process that asks at once
    /// sees 0x0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub console_size: Option<TerminalSize>,
}

/// What an app shares with its pod: the namespaces the pod's infra process holds, joined by
/// path (the network namespace is the pod's too, given as [`NetworkNamespace::Path`]), and the
/// pod's cgroup, which the app's cgroup is made under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PodJoin {
    pub ipc: std::path::PathBuf,
    pub uts: std::path::PathBuf,
    /// The pod's PID namespace, when its apps share one.
    #[serde(default)]
    pub pid: Option<std::path::PathBuf>,
    #[serde(default)]
    pub cgroup: Option<PodCgroup>,
}

/// A pod's cgroup: a directory under the backend's cgroup parent, with the pod's limits,
/// shared by all its apps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PodCgroup {
    /// One path component, `pod-<id>`.
    pub name: String,
    #[serde(default)]
    pub limits: Limits,
}

/// A container port published on the host: `[HOST_IP:][HOST_PORT:]PORT[/PROTO]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PortMapping {
    pub container_port: u16,
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// `None` lets the backend pick a free port.
    #[serde(default)]
    pub host_port: Option<u16>,
    #[serde(default)]
    pub host_ip: Option<String>,
}

fn default_protocol() -> String {
    "tcp".into()
}

impl PortMapping {
    /// Parses docker's `-p` syntax.
    pub fn parse(text: &str) -> Result<PortMapping> {
        let bad = |reason: &str| {
            Error::invalid(format!("port {text:?}"), reason)
                .with_hint("use [HOST_IP:][HOST_PORT:]PORT[/tcp|udp|sctp], e.g. 8080:80")
        };
        let (ports, protocol) = match text.rsplit_once('/') {
            Some((ports, proto @ ("tcp" | "udp" | "sctp"))) => (ports, proto),
            Some((_, proto)) => return Err(bad(&format!("unknown protocol {proto:?}"))),
            None => (text, "tcp"),
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad(&format!("{p:?} is not a port number (1-65535)")))
        };
        let parts: Vec<&str> = ports.split(':').collect();
        let (host_ip, host_port, container_port) = match parts.as_slice() {
            [c] => (None, None, port(c)?),
            [h, c] => (None, Some(port(h)?), port(c)?),
            [ip, h, c] => {
                ip.parse::<std::net::IpAddr>()
                    .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?;
                let host_port = if h.is_empty() { None } else { Some(port(h)?) };
                (Some(ip.to_string()), host_port, port(c)?)
            }
            _ => return Err(bad("too many ':'")),
        };
        Ok(PortMapping {
            container_port,
            protocol: protocol.into(),
            host_port,
            host_ip,
        })
    }
}

/// What a backend does when the container exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    OnFailure,
    UnlessStopped,
}

impl RestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure` or `on-failure:N` (docker's syntax): the
    /// policy and its retry limit.
    pub fn parse(text: &str) -> Result<(RestartPolicy, Option<u32>)> {
        let (name, max) = match text.split_once(':') {
            Some((name, max)) => (name, Some(max)),
            None => (text, None),
        };
        let policy = match name {
            "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "on-failure" => RestartPolicy::OnFailure,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            _ => {
                return Err(
                    Error::invalid(format!("restart policy {text:?}"), "unknown policy")
                        .with_hint("use no, always, on-failure[:N] or unless-stopped"),
                );
            }
        };
        let max = match max {
            None => None,
            Some(_) if policy != RestartPolicy::OnFailure => {
                return Err(Error::invalid(
                    format!("restart policy {text:?}"),
                    "only on-failure takes a maximum retry count",
                )
                .with_hint(format!("use --restart {name}")));
            }
            Some(max) => Some(max.parse::<u32>().map_err(|_| {
                Error::invalid(
                    format!("restart policy {text:?}"),
                    "the maximum retry count is no whole number",
                )
                .with_hint("e.g. --restart on-failure:3")
            })?),
        };
        Ok((policy, max))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

/// The special `--network` values; any other value names a network.
pub const NETWORK_NONE: &str = "none";
pub const NETWORK_HOST: &str = "host";

/// Where a container's network comes from, as the backend applies it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkNamespace {
    /// A new namespace holding only loopback.
    #[default]
    Private,
    /// The host's namespace.
    Host,
    /// A namespace the host prepared (its networks already attached), joined by path.
    Path(std::path::PathBuf),
}

impl NetworkNamespace {
    pub fn is_private(&self) -> bool {
        *self == NetworkNamespace::Private
    }
}

/// One `--add-host NAME:IP` line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    pub name: String,
    pub ip: std::net::IpAddr,
}

impl HostEntry {
    /// Parses docker's `NAME:IP` (the IP may be IPv6, so the name ends at the first ':').
    pub fn parse(text: &str) -> Result<HostEntry> {
        let bad = |reason: &str| {
            Error::invalid(format!("host entry {text:?}"), reason)
                .with_hint("use NAME:IP, e.g. --add-host db:10.0.0.5")
        };
        let (name, ip) = text
            .split_once(':')
            .ok_or_else(|| bad("expected NAME:IP"))?;
        if !HostEntry::valid_name(name) {
            return Err(bad(HostEntry::NAME_RULE));
        }
        let ip = ip
            .parse()
            .map_err(|_| bad(&format!("{ip:?} is not an IP address")))?;
        Ok(HostEntry {
            name: name.into(),
            ip,
        })
    }

    pub const NAME_RULE: &str = "the name must be a host name (letters, digits, '-', '.')";

    /// Whether `name` can stand on an /etc/hosts line.
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    }
}

/// A static IPv4 address, on the container's network or on a private subnet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkSpec {
    pub ipv4: std::net::Ipv4Addr,
    /// CIDR; a bare address means `/24`. Without one the address is on the container's
    /// network, whose subnet it must be in.
    #[serde(default)]
    pub subnet: Option<String>,
}

impl NetworkSpec {
    /// The subnet in CIDR form (`10.0.0.0` becomes `10.0.0.0/24`), validated; `None` when
    /// none was given.
    pub fn cidr(&self) -> Result<Option<String>> {
        let Some(subnet) = &self.subnet else {
            return Ok(None);
        };
        let bad = |reason: &str| {
            Error::invalid(format!("subnet {subnet:?}"), reason)
                .with_hint("use a CIDR such as 10.10.0.0/24")
        };
        let (address, prefix) = match subnet.split_once('/') {
            Some((a, p)) => (a, p),
            None => (subnet.as_str(), "24"),
        };
        address
            .parse::<std::net::Ipv4Addr>()
            .map_err(|_| bad("not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| bad("the prefix length must be 0-32"))?;
        Ok(Some(format!("{address}/{prefix}")))
    }
}

/// Lifecycle state as every backend reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Start requested, the process is not up yet.
    Starting,
    Running,
    /// The process has exited; `exit_code` says how.
    Stopped,
    /// Exited, and its restart policy starts it again once the back-off is over.
    Restarting,
    /// Whatever watched the process is gone, so its fate is unknown (e.g. a killed supervisor).
    Dead,
}

impl ContainerState {
    pub fn is_running(self) -> bool {
        matches!(self, ContainerState::Running | ContainerState::Starting)
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerState::Created => "created",
            ContainerState::Starting => "starting",
            ContainerState::Running => "running",
            ContainerState::Stopped => "stopped",
            ContainerState::Restarting => "restarting",
            ContainerState::Dead => "dead",
        })
    }
}

/// What a backend knows about one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub pid: Option<u32>,
    pub exit_code: Option<i32>,
    pub created: DateTime<Utc>,
    pub started: Option<DateTime<Utc>>,
    pub finished: Option<DateTime<Utc>>,
    pub labels: BTreeMap<String, String>,
    pub backend: String,
    /// Why the container is in its state, when that is not obvious (e.g. "supervisor died").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_detail: Option<String>,
    /// The container's address, when the backend gives it one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    /// The networks the container is attached to, with its address on each and the ports
    /// published (filled by the engine for networks it manages).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// Limits as the backend applied them, when it reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Restarts by its restart policy since a user last started it.
    #[serde(default)]
    pub restart_count: u32,
}

/// A container's place on one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    pub network: String,
    /// The interface inside the container.
    pub interface: String,
    /// CIDR, e.g. `10.91.0.2/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A backend's answer to ping + info.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendInfo {
    /// The configured name (`[backends.<name>]`).
    pub name: String,
    /// The implementation (`native`, `docker`, `containerd`).
    pub kind: String,
    pub version: String,
    pub healthy: bool,
    pub features: Vec<String>,
    /// Why the backend is unhealthy, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How to remove a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Kill a running container first instead of refusing.
    pub force: bool,
    /// Leave the container's filesystem behind as a snapshot under its snapshot key (backends
    /// with snapshots; the others refuse before removing anything).
    pub keep_snapshot: bool,
}

impl RemoveOptions {
    /// Kill if running; keep nothing.
    pub fn forced() -> RemoveOptions {
        RemoveOptions {
            force: true,
            keep_snapshot: false,
        }
    }
}

/// How to stop a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopOptions {
    /// Signal sent first (default SIGTERM).
    pub signal: i32,
    /// Grace period before giving up or killing.
    pub timeout: std::time::Duration,
    /// Send SIGKILL after the timeout instead of failing with a timeout error.
    pub force: bool,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions {
            signal: libc::SIGTERM,
            timeout: std::time::Duration::from_secs(10),
            force: true,
        }
    }
}

/// Which containers `list` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Include stopped and created containers, not just running ones.
    pub all: bool,
    /// Every `key=value` here must match the container's labels.
    pub labels: BTreeMap<String, String>,
}

impl ListFilter {
    pub fn matches(&self, info: &ContainerInfo) -> bool {
        (self.all || info.state.is_running())
            && self
                .labels
                .iter()
                .all(|(k, v)| info.labels.get(k) == Some(v))
    }
}

/// A process to run inside a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: Option<String>,
    /// `-i`: the process reads its stdin (this process's, or the caller's stream); otherwise
    /// its stdin is empty, as docker's.
    pub interactive: bool,
    /// Past this the process is killed and the exec fails with a timeout (the CRI's ExecSync).
    pub timeout: Option<std::time::Duration>,
    /// `-t`: the process's stdio is a terminal; its output comes as stdout alone.
    pub tty: bool,
}

/// A terminal's size, as the attached client's window has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    pub rows: u16,
    pub cols: u16,
}

/// Size changes of the client's terminal, for a process or container that has one.
pub type Resizes = tokio::sync::mpsc::Receiver<TerminalSize>;

/// Where an exec's stdio goes.
pub enum ExecIo {
    /// This process's own stdin, stdout and stderr (the CLI).
    Inherit,
    /// The caller's streams (the CRI's ExecSync and streaming server).
    Streams(ExecStreams),
}

/// What an attachment does with the caller's stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachStdin {
    /// Not read: output only, until the container's ends.
    Off,
    /// Sent to the container; its end detaches (a kubelet's attach).
    UntilEnd,
    /// Sent to the container; at its end the output still flows until the container's ends
    /// (`berth attach`).
    ThenOutput,
}

/// Output kept in memory, shared with whoever reads it once the writer is done (ExecSync).
/// Past its cap the rest is read and dropped, so a process that writes without end can
/// neither fill the host's memory nor block on a full pipe.
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    kept: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    cap: usize,
}

impl Default for CapturedOutput {
    fn default() -> Self {
        CapturedOutput::capped(usize::MAX)
    }
}

impl CapturedOutput {
    /// Keeps at most `cap` bytes.
    pub fn capped(cap: usize) -> CapturedOutput {
        CapturedOutput {
            kept: Default::default(),
            cap,
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let room = self.cap.saturating_sub(kept.len());
        kept.extend_from_slice(&data[..data.len().min(room)]);
        std::task::Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// An exec's streams, as the caller gives them: stdin is read when the exec is interactive.
pub struct ExecStreams {
    pub stdin: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    pub stdout: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    pub stderr: Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
    /// The client's terminal size, first and on every change (with a terminal only).
    pub resize: Option<Resizes>,
}

impl ExecStreams {
    /// Output into `stdout` and `stderr`, with an empty stdin.
    pub fn output(
        stdout: impl tokio::io::AsyncWrite + Send + Unpin + 'static,
        stderr: impl tokio::io::AsyncWrite + Send + Unpin + 'static,
    ) -> ExecStreams {
        ExecStreams {
            stdin: Box::new(tokio::io::empty()),
            stdout: Box::new(stdout),
            stderr: Box::new(stderr),
            resize: None,
        }
    }

    /// This process's own stdio, as streams (for backends that copy an exec's output).
    pub fn stdio() -> ExecStreams {
        ExecStreams {
            stdin: Box::new(tokio::io::stdin()),
            stdout: Box::new(tokio::io::stdout()),
            stderr: Box::new(tokio::io::stderr()),
            resize: None,
        }
    }

    /// Copies the process's output into these streams until both outputs end, and this stdin
    /// into `to_stdin` when `interactive`; at the end of stdin (at once when not interactive)
    /// `to_stdin` is shut and `stdin_closed` runs. Stdin is abandoned once the output is done (a
    /// process that exits without reading it).
    pub async fn pump(
        self,
        interactive: bool,
        mut to_stdin: impl tokio::io::AsyncWrite + Send + Unpin + 'static,
        mut from_stdout: impl tokio::io::AsyncRead + Unpin,
        mut from_stderr: impl tokio::io::AsyncRead + Unpin,
        stdin_closed: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let ExecStreams {
            mut stdin,
            mut stdout,
            mut stderr,
            ..
        } = self;
        let feed = tokio::spawn(async move {
            if interactive {
                let _ = tokio::io::copy(&mut stdin, &mut to_stdin).await;
            }
            let _ = to_stdin.shutdown().await;
            drop(to_stdin);
            stdin_closed.await;
        });
        let out = async {
            tokio::io::copy(&mut from_stdout, &mut stdout).await?;
            stdout.flush().await
        };
        let err = async {
            tokio::io::copy(&mut from_stderr, &mut stderr).await?;
            stderr.flush().await
        };
        let (out, err) = tokio::join!(out, err);
        feed.abort();
        out.and(err)
    }
}

/// Which stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// Receives container output; backends push chunks into it.
pub trait LogSink: Send {
    fn write(&mut self, stream: LogStream, data: &[u8]) -> std::io::Result<()>;
}

/// Container output to this process's stdout and stderr, flushed per chunk so it interleaves
/// as the container wrote it.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdioSink;

impl LogSink for StdioSink {
    fn write(&mut self, stream: LogStream, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let write = |out: &mut dyn Write| {
            out.write_all(data)?;
            out.flush()
        };
        match stream {
            LogStream::Stdout => write(&mut std::io::stdout().lock()),
            LogStream::Stderr => write(&mut std::io::stderr().lock()),
        }
    }
}

/// Parses docker-style sizes: `512`, `64k`, `10m`, `1.5g` (binary units, case-insensitive, a
/// trailing `b`/`ib` allowed).
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = || {
        Error::invalid(format!("size {text:?}"), "not a size")
            .with_hint("use a number with an optional unit: 512, 64k, 10m, 1g")
    };
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (number, multiplier) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1u64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        Some('t') => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value < 0.0 {
        return Err(bad());
    }
    Ok((value * multiplier as f64) as u64)
}

/// Parses `--cpus 1.5` into millicores.
pub fn parse_cpus(text: &str) -> Result<u64> {
    let value: f64 = text.trim().parse().map_err(|_| {
        Error::invalid(format!("--cpus {text:?}"), "not a number").with_hint("use e.g. 0.5 or 2")
    })?;
    if !value.is_finite() || value <= 0.0 {
        return Err(Error::invalid(
            format!("--cpus {text:?}"),
            "must be greater than zero",
        ));
    }
    Ok((value * 1000.0).round() as u64)
}

/// Parses `KEY=VALUE`; `what` names the flag in the error.
pub fn parse_key_value(what: &str, text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(Error::invalid(
            format!("{what} {text:?}"),
            "expected KEY=VALUE",
        )),
    }
}

/// A new random 64-hex-digit container id, as docker and containerd users expect.
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the kernel's random source is available");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_keeps_up_to_its_cap_and_takes_the_rest() {
        use tokio::io::AsyncWriteExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let capped = CapturedOutput::capped(4);
        let mut writer = capped.clone();
        runtime.block_on(async {
            writer.write_all(b"0123456789").await.unwrap();
            writer.write_all(b"more").await.unwrap();
        });
        assert_eq!(capped.bytes(), b"0123");
        let mut whole = CapturedOutput::default();
        runtime.block_on(whole.write_all(b"all of it")).unwrap();
        assert_eq!(whole.text(), "all of it");
    }

    #[test]
    fn sizes_parse_like_docker() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("10M").unwrap(), 10 << 20);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-1m").is_err());
    }

    #[test]
    fn cpus_become_millicores() {
        assert_eq!(parse_cpus("1.5").unwrap(), 1500);
        assert_eq!(parse_cpus("0.25").unwrap(), 250);
        assert!(parse_cpus("0").is_err());
    }

    #[test]
    fn mounts_parse_with_options() {
        let m = Mount::parse("/src:/dst:ro").unwrap();
        assert_eq!(
            (m.source.as_str(), m.target.as_str(), m.readonly),
            ("/src", "/dst", true)
        );
        assert!(!Mount::parse("/src:/dst").unwrap().readonly);
        assert!(Mount::parse("/src").is_err());
        assert!(Mount::parse("/src:dst").is_err());
        assert!(Mount::parse("/src:/dst:rx").is_err());
    }

    #[test]
    fn ports_parse_like_docker() {
        let p = PortMapping::parse("127.0.0.1:8080:80/udp").unwrap();
        assert_eq!(
            (
                p.host_ip.as_deref(),
                p.host_port,
                p.container_port,
                p.protocol.as_str()
            ),
            (Some("127.0.0.1"), Some(8080), 80, "udp")
        );
        let p = PortMapping::parse("80").unwrap();
        assert_eq!(
            (p.host_port, p.container_port, p.protocol.as_str()),
            (None, 80, "tcp")
        );
        assert_eq!(PortMapping::parse("8080:80").unwrap().host_port, Some(8080));
        assert_eq!(PortMapping::parse("10.0.0.1::80").unwrap().host_port, None);
        for bad in ["", "0", "70000", "80/icmp", "x:80", "nope:1:80", "1:2:3:4"] {
            assert!(PortMapping::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_entries_parse_docker_syntax() {
        let entry = HostEntry::parse("db:10.0.0.5").unwrap();
        assert_eq!(
            (entry.name.as_str(), entry.ip.to_string().as_str()),
            ("db", "10.0.0.5")
        );
        let v6 = HostEntry::parse("v6:fd00::1").unwrap();
        assert_eq!(v6.ip.to_string(), "fd00::1");
        for bad in [
            "db",
            ":10.0.0.5",
            "db:nope",
            "bad name:10.0.0.1",
            "a\nb:10.0.0.1",
        ] {
            assert!(HostEntry::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn restart_policies_and_subnets() {
        for name in ["no", "always", "on-failure", "unless-stopped"] {
            assert_eq!(RestartPolicy::parse(name).unwrap().0.as_str(), name);
        }
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            (RestartPolicy::OnFailure, Some(3))
        );
        assert!(RestartPolicy::parse("on-failure:x").is_err());
        assert!(RestartPolicy::parse("always:3").is_err());
        let net = |subnet: &str| NetworkSpec {
            ipv4: "10.0.0.5".parse().unwrap(),
            subnet: Some(subnet.into()),
        };
        assert_eq!(net("10.0.0.0").cidr().unwrap().unwrap(), "10.0.0.0/24");
        assert_eq!(net("10.0.0.0/16").cidr().unwrap().unwrap(), "10.0.0.0/16");
        let on_its_network = NetworkSpec {
            ipv4: "10.0.0.5".parse().unwrap(),
            subnet: None,
        };
        assert_eq!(on_its_network.cidr().unwrap(), None);
        assert!(net("10.0.0.0/33").cidr().is_err());
        assert!(net("ten/8").cidr().is_err());
    }

    #[test]
    fn list_filter_matches_labels_and_state() {
        let mut info = ContainerInfo {
            id: "x".into(),
            name: "n".into(),
            image: "i".into(),
            state: ContainerState::Stopped,
            pid: None,
            exit_code: Some(0),
            created: Utc::now(),
            started: None,
            finished: None,
            labels: [("tier".to_string(), "web".to_string())].into(),
            backend: "native".into(),
            status_detail: None,
            ip_address: None,
            networks: Vec::new(),
            ports: Vec::new(),
            limits: None,
            restart_count: 0,
        };
        let mut filter = ListFilter::default();
        assert!(!filter.matches(&info));
        filter.all = true;
        assert!(filter.matches(&info));
        filter.labels.insert("tier".into(), "db".into());
        assert!(!filter.matches(&info));
        info.labels.insert("tier".into(), "db".into());
        assert!(filter.matches(&info));
    }

    #[test]
    fn ids_are_64_hex_digits() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, new_id());
    }
}

/// An image as any backend reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The backend's id for it (for OCI images, the config digest without `sha256:`).
    pub id: String,
    /// References that name it, normalised as the backend stores them.
    pub names: Vec<String>,
    /// Bytes on disk (unpacked where the backend unpacks), as the backend measures them.
    pub size: u64,
    pub created: Option<DateTime<Utc>>,
    /// The backend that holds it.
    pub backend: String,
    /// The platform and environment its config gives, where the backend reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The user its config runs as (`1002`, `www-data`, `1003:users`), where reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl ImageInfo {
    /// The first 12 hex digits, as `image ls` shows.
    pub fn short_id(&self) -> &str {
        let id = self.id.strip_prefix("sha256:").unwrap_or(&self.id);
        &id[..12.min(id.len())]
    }
}

/// One step of an image pull, for a progress display.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullEvent {
    /// The layer (short digest) this is about, if any.
    pub layer: Option<String>,
    /// What happens, e.g. `Downloading`, `Pull complete`.
    pub status: String,
    /// Bytes done and expected, when known.
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// Where a pull reports its progress.
pub trait PullProgress: Send {
    fn event(&mut self, event: &PullEvent);
}

/// A one-shot snapshot of a container's resource use; counters are totals since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    pub cpu_total_ns: u64,
    pub memory_usage_bytes: u64,
    pub memory_cache_bytes: u64,
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
    pub block_read_bytes: u64,
    pub block_write_bytes: u64,
    pub block_read_ops: u64,
    pub block_write_ops: u64,
}

/// What a path in a container's filesystem is (`berth cp` decides where a copy lands by it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    pub kind: PathKind,
    pub size: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// A symlink's target as it is written in the link.
    pub link_target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    File,
    Directory,
    Symlink,
    /// A device, fifo or socket.
    Other,
}
