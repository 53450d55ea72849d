//! `berth.toml`: strict, typed, with an embedded default.
//!
//! Every table denies unknown keys, so a typo is an error naming the file, the line and the key
//! instead of a silently ignored setting. Paths inside the file (plugin components) are resolved
//! relative to the file's directory.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::registry::{Transport, default_transport};

/// The configuration berth uses when no file is given.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Environment variable naming a config file when `--config` is absent.
pub const CONFIG_ENV: &str = "BERTH_CONFIG";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    #[serde(default)]
    pub host: HostConfig,
    /// Backends in file order; without a backend policy the first healthy one runs containers.
    #[serde(default)]
    pub backends: IndexMap<String, BackendConfig>,
    /// Plugins in file order, which is the order they are consulted in.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Named volumes and their disk quotas.
    #[serde(default)]
    pub quota: QuotaConfig,
    /// Read-only software packages (`run --pkg`).
    #[serde(default)]
    pub packages: PackagesConfig,
    /// Container networking through CNI plugins.
    #[serde(default)]
    pub network: NetworkConfig,
    /// How plugins are consulted as a whole.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// `berth cri serve`, the Kubernetes CRI server.
    #[serde(default)]
    pub cri: CriConfig,
    /// Where a container goes when the backend chosen for it cannot take it.
    #[serde(default)]
    pub placement: PlacementConfig,
    /// How each registry (keyed as references name it: `ghcr.io`, `127.0.0.1:5000`) is spoken
    /// to by the backends that pull by themselves; credentials come from `berth login`.
    #[serde(default)]
    pub registries: IndexMap<String, RegistryConfig>,
    /// Where the configuration came from (a path, or `<built-in>`); not read from the file.
    #[serde(skip)]
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostConfig {
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_run_dir")]
    pub run_dir: PathBuf,
}

impl HostConfig {
    /// Refuses a state-dir or run-dir berth cannot use (a regular file, a read-only
    /// filesystem) as a configuration error naming the key, before any command relies on it:
    /// a read-only run-dir would otherwise show running containers as dead. A directory that
    /// does not exist yet is judged by the nearest one that does, where berth would create it.
    /// `source` names the configuration file.
    pub fn check_dirs(&self, source: &str) -> Result<()> {
        for (key, dir) in [("state-dir", &self.state_dir), ("run-dir", &self.run_dir)] {
            let refuse = |why: String| Error::Config {
                path: source.to_string(),
                message: format!("[host].{key} = {:?} {why}", dir.display().to_string()),
            };
            let existing = dir
                .ancestors()
                .find(|a| a.exists())
                .unwrap_or(Path::new("/"));
            if !existing.is_dir() {
                return Err(refuse(format!(
                    "cannot be a directory: {} is a file; point it at a directory berth may own",
                    existing.display()
                )));
            }
            if let Err(e) = nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK) {
                return Err(refuse(format!(
                    "is not writable ({}: {e}): berth keeps its state there; remount it \
                     read-write or choose another directory",
                    existing.display()
                )));
            }
        }
        Ok(())
    }
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            state_dir: default_state_dir(),
            run_dir: default_run_dir(),
        }
    }
}

fn default_state_dir() -> PathBuf {
    "/var/lib/berth".into()
}

fn default_run_dir() -> PathBuf {
    "/run/berth".into()
}

/// One `[backends.<name>]` table; `type` picks the implementation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BackendConfig {
    Native(NativeBackendConfig),
    Docker(DockerBackendConfig),
    Containerd(ContainerdBackendConfig),
    Apple(AppleBackendConfig),
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Native(_) => "native",
            BackendConfig::Docker(_) => "docker",
            BackendConfig::Containerd(_) => "containerd",
            BackendConfig::Apple(_) => "apple",
        }
    }
}

/// `type = "apple"`: Apple's container runtime on macOS, through the Docker-compatible Engine
/// API that socktainer serves on a unix socket. No default socket: it lives in the user's home.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AppleBackendConfig {
    /// socktainer's endpoint: `unix:///Users/me/.socktainer/container.sock` (or a bare path).
    pub socket: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DockerBackendConfig {
    /// The Engine API endpoint: `unix:///path` (or a bare path).
    #[serde(default = "default_docker_socket")]
    pub socket: String,
}

impl Default for DockerBackendConfig {
    fn default() -> Self {
        DockerBackendConfig {
            socket: default_docker_socket(),
        }
    }
}

fn default_docker_socket() -> String {
    "unix:///var/run/docker.sock".into()
}

/// `type = "containerd"`: containerd over its gRPC socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ContainerdBackendConfig {
    #[serde(default = "default_containerd_socket")]
    pub socket: PathBuf,
    /// Every call runs in this containerd namespace, so berth's objects stay apart from others'.
    #[serde(default = "default_containerd_namespace")]
    pub namespace: String,
    #[serde(default = "default_containerd_runtime")]
    pub runtime: String,
    #[serde(default = "default_containerd_snapshotter")]
    pub snapshotter: String,
}

impl Default for ContainerdBackendConfig {
    fn default() -> Self {
        ContainerdBackendConfig {
            socket: default_containerd_socket(),
            namespace: default_containerd_namespace(),
            runtime: default_containerd_runtime(),
            snapshotter: default_containerd_snapshotter(),
        }
    }
}

fn default_containerd_socket() -> PathBuf {
    "/run/containerd/containerd.sock".into()
}

fn default_containerd_namespace() -> String {
    "berth".into()
}

fn default_containerd_runtime() -> String {
    "io.containerd.runc.v2".into()
}

fn default_containerd_snapshotter() -> String {
    "overlayfs".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NativeBackendConfig {
    /// cgroup path prefix under which each container gets `<prefix>/<id>`.
    #[serde(default = "default_cgroup_parent")]
    pub cgroup_parent: String,
}

impl Default for NativeBackendConfig {
    fn default() -> Self {
        NativeBackendConfig {
            cgroup_parent: default_cgroup_parent(),
        }
    }
}

fn default_cgroup_parent() -> String {
    "berth".into()
}

/// `[network]`: the CNI plugins berth drives and its default bridge network, which containers
/// without `--network` join (docker's `bridge`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NetworkConfig {
    /// Where CNI plugin binaries are looked up, in order.
    #[serde(default = "default_cni_bin_dirs")]
    pub cni_bin_dirs: Vec<PathBuf>,
    /// The default network's name; `none` gives containers loopback only unless they ask.
    #[serde(default = "default_network")]
    pub default: String,
    /// The default network's bridge interface (at most 15 bytes).
    #[serde(default = "default_bridge")]
    pub bridge: String,
    /// The default network's subnet.
    #[serde(default = "default_subnet")]
    pub subnet: String,
    /// Where `network create` without `--subnet` takes /24s from.
    #[serde(default = "default_subnet_pool")]
    pub subnet_pool: String,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            cni_bin_dirs: default_cni_bin_dirs(),
            default: default_network(),
            bridge: default_bridge(),
            subnet: default_subnet(),
            subnet_pool: default_subnet_pool(),
        }
    }
}

fn default_cni_bin_dirs() -> Vec<PathBuf> {
    vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()]
}

fn default_network() -> String {
    "berth".into()
}

fn default_bridge() -> String {
    "berth0".into()
}

// Apart from docker's 172.17.0.0/16 and podman's 10.88.0.0/16 and 10.89.x.0/24.
fn default_subnet() -> String {
    "10.91.0.0/16".into()
}

fn default_subnet_pool() -> String {
    "10.92.0.0/16".into()
}

/// `[quota]`: where named volumes live and what enforces their size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QuotaConfig {
    #[serde(rename = "type", default)]
    pub kind: QuotaKind,
    /// The directory volumes are created in (default `<state-dir>/volumes`); for btrfs it must
    /// be on a btrfs file system with quotas enabled, for xfs on one mounted with `prjquota`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// xfs: the `/etc/projects`-format file berth keeps its projects in.
    #[serde(default = "default_projects_file")]
    pub projects_file: PathBuf,
    /// xfs: the `xfs_quota` program.
    #[serde(default = "default_xfs_quota")]
    pub xfs_quota: PathBuf,
}

impl Default for QuotaConfig {
    fn default() -> Self {
        QuotaConfig {
            kind: QuotaKind::None,
            path: None,
            projects_file: default_projects_file(),
            xfs_quota: default_xfs_quota(),
        }
    }
}

fn default_projects_file() -> PathBuf {
    "/etc/projects".into()
}

fn default_xfs_quota() -> PathBuf {
    "xfs_quota".into()
}

/// `[cri]`: where `berth cri serve` listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CriConfig {
    /// Where `berth cri serve` listens: `unix:///PATH` (or a plain absolute path).
    #[serde(default = "default_cri_listen")]
    pub listen: String,
    /// Where its streaming server (exec) listens: `HOST:PORT`, port 0 for any free one. The
    /// kubelet reaches it on the node, so it stays on loopback by default.
    #[serde(default = "default_stream_address")]
    pub stream_address: String,
}

impl Default for CriConfig {
    fn default() -> Self {
        CriConfig {
            listen: default_cri_listen(),
            stream_address: default_stream_address(),
        }
    }
}

fn default_stream_address() -> String {
    "127.0.0.1:0".into()
}

fn default_cri_listen() -> String {
    "unix:///run/berth/cri.sock".into()
}

/// `[placement]`: the fallback chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PlacementConfig {
    /// Backends tried in this order when the one a backend policy (or the default) chose is
    /// unhealthy or unreachable at create; never after a policy's deny, and never in place of
    /// a backend the user asked for (`--backend`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
}

/// `[pipeline]`: what all plugins of one operation share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PipelineConfig {
    /// The plugin time one operation (a `run`: its name policy, placement and every hook) may
    /// spend in all; each call gets the smaller of its `timeout-ms` and what is left.
    #[serde(default = "default_budget_ms")]
    pub budget_ms: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            budget_ms: default_budget_ms(),
        }
    }
}

fn default_budget_ms() -> u64 {
    200
}

/// `[registries."HOST"]`: docker's `insecure-registries` and `certs.d/HOST/ca.crt`, in one
/// place.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RegistryConfig {
    /// A PEM file of the CA (or CAs) the registry's certificate is verified against, instead
    /// of the platform's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// Plain HTTP (`true`), or TLS for a loopback registry (`false`). Unset: plain HTTP for
    /// loopback registries, TLS for every other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// `HOST[:PORT]` that pulls of this registry's images go to instead (an air-gapped node's
    /// local copy, as containerd's registry mirrors): same repositories, and images keep this
    /// registry's names. The mirror is reached as its own `[registries]` entry says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
}

impl Config {
    /// Where pulls of `registry` go when a mirror stands in for it.
    pub fn registry_mirror(&self, registry: &str) -> Option<&str> {
        self.registries.get(registry)?.mirror.as_deref()
    }

    /// How `registry` is spoken to, by its `[registries]` entry or the default.
    pub fn registry_transport(&self, registry: &str) -> Transport {
        let Some(entry) = self.registries.get(registry) else {
            return default_transport(registry);
        };
        match (entry.insecure, &entry.ca) {
            (Some(true), _) => Transport::Http,
            (None, None) => default_transport(registry),
            (_, ca) => Transport::Https { ca: ca.clone() },
        }
    }
}

/// `[packages]`: where `run --pkg` finds packages and where containers see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackagesConfig {
    /// Where packages not installed yet come from: a directory or an `http(s)://` URL holding
    /// `<name>/<id>.ipk` (or `<id>.ipk`) files.
    #[serde(default)]
    pub repository: Option<PackageRepository>,
    /// Each package is mounted read-only at `<mount-prefix>/<name>`.
    #[serde(default = "default_package_prefix")]
    pub mount_prefix: String,
}

impl Default for PackagesConfig {
    fn default() -> Self {
        PackagesConfig {
            repository: None,
            mount_prefix: default_package_prefix(),
        }
    }
}

fn default_package_prefix() -> String {
    "/usr/berth".into()
}

/// `[packages].repository`: a local directory, or an HTTP(S) server with the same layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum PackageRepository {
    Dir(PathBuf),
    /// A base URL without a trailing '/'.
    Http(String),
}

impl From<String> for PackageRepository {
    fn from(text: String) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            PackageRepository::Http(text.trim_end_matches('/').to_string())
        } else {
            PackageRepository::Dir(text.into())
        }
    }
}

impl From<PackageRepository> for String {
    fn from(repository: PackageRepository) -> String {
        repository.to_string()
    }
}

impl std::fmt::Display for PackageRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackageRepository::Dir(dir) => write!(f, "{}", dir.display()),
            PackageRepository::Http(url) => f.write_str(url),
        }
    }
}

/// What enforces a volume's size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuotaKind {
    /// Plain directories: usage is measured, limits are refused.
    #[default]
    None,
    /// One subvolume per volume with a qgroup limit.
    Btrfs,
    /// XFS project quotas through `xfs_quota`.
    Xfs,
}

impl QuotaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::None => "none",
            QuotaKind::Btrfs => "btrfs",
            QuotaKind::Xfs => "xfs",
        }
    }
}

/// The roles a plugin can play, one WIT world each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginWorld {
    NamePolicy,
    BackendPolicy,
    LifecycleHooks,
    /// Told about pods' steps (new in `berth:plugin@0.4.0`).
    PodLifecycleHooks,
}

impl PluginWorld {
    pub const ALL: [PluginWorld; 4] = [
        PluginWorld::NamePolicy,
        PluginWorld::BackendPolicy,
        PluginWorld::LifecycleHooks,
        PluginWorld::PodLifecycleHooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PluginWorld::NamePolicy => "name-policy",
            PluginWorld::BackendPolicy => "backend-policy",
            PluginWorld::LifecycleHooks => "lifecycle-hooks",
            PluginWorld::PodLifecycleHooks => "pod-lifecycle-hooks",
        }
    }
}

/// What happens when a plugin traps, times out or runs out of memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Fail closed: the operation is refused.
    #[default]
    Deny,
    /// Fail open: the plugin is skipped for this decision.
    Allow,
}

/// Whether a plugin's verdicts take effect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginMode {
    #[default]
    Enforce,
    /// Denies and patches are recorded and shown, not applied: for rolling out a new policy.
    Monitor,
}

/// A host interface a plugin may be granted, beyond `log` and `config` which every plugin gets.
/// Each is the WIT interface of the same name (`berth:plugin/containers`, ...): a plugin that
/// imports one its entry does not grant is refused at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    /// Read-only view of existing containers.
    Containers,
    /// Named volumes with disk quotas: list, get, ensure, remove.
    Quotas,
    /// Installed `.ipk` packages: ensure, list.
    Packages,
    /// Backends' snapshots and container versions.
    Snapshots,
}

impl Grant {
    pub const ALL: [Grant; 4] = [
        Grant::Containers,
        Grant::Quotas,
        Grant::Packages,
        Grant::Snapshots,
    ];

    /// The name in `grants = [...]`, which is also the WIT interface's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::Containers => "containers",
            Grant::Quotas => "quotas",
            Grant::Packages => "packages",
            Grant::Snapshots => "snapshots",
        }
    }

    /// The grant whose WIT interface is called `interface`, if it is grantable.
    pub fn from_interface(interface: &str) -> Option<Grant> {
        Grant::ALL.into_iter().find(|g| g.as_str() == interface)
    }

    /// `containers, quotas, packages, snapshots`, for error messages.
    fn list() -> String {
        let names: Vec<_> = Grant::ALL.iter().map(|g| g.as_str()).collect();
        names.join(", ")
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PluginConfig {
    pub name: String,
    /// The component file; relative paths are relative to the config file.
    pub path: PathBuf,
    /// Pin: the component's sha256 must match or it is not loaded.
    #[serde(default)]
    pub sha256: Option<String>,
    pub worlds: Vec<PluginWorld>,
    #[serde(default)]
    pub grants: Vec<Grant>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// The largest component file berth reads for this plugin: a path that points at something
    /// huge (or endless, like a device) is refused before it is read.
    #[serde(default = "default_max_size_mb")]
    pub max_size_mb: u64,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default)]
    pub mode: PluginMode,
    /// The plugin's own settings, readable through the `config` interface.
    #[serde(default)]
    pub settings: IndexMap<String, toml::Value>,
}

fn default_timeout_ms() -> u64 {
    100
}

fn default_memory_mb() -> u64 {
    16
}

/// The default `max-size-mb` of a plugin: far above what a policy component builds to, well
/// under what a CLI should ever read into memory for one.
pub const DEFAULT_MAX_SIZE_MB: u64 = 64;

fn default_max_size_mb() -> u64 {
    DEFAULT_MAX_SIZE_MB
}

impl PluginConfig {
    /// A setting as the string the `config` interface hands to the plugin: strings verbatim,
    /// anything else in TOML notation.
    pub fn setting(&self, key: &str) -> Option<String> {
        self.settings.get(key).map(|value| match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

impl Config {
    /// The built-in configuration.
    pub fn builtin() -> Config {
        Config::parse(DEFAULT_CONFIG, "<built-in>", None).expect("the built-in config is valid")
    }

    /// Loads `--config PATH`, else `$BERTH_CONFIG`, else the built-in default.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let from_env = std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => Config::load_file(&path),
            None => Ok(Config::builtin()),
        }
    }

    /// The configuration read again from where this one came from (a server's reload).
    pub fn reread(&self) -> Result<Config> {
        if self.source == "<built-in>" {
            return Ok(Config::builtin());
        }
        Config::load_file(Path::new(&self.source))
    }

    pub fn load_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.display().to_string(),
            message: format!("cannot read the config file: {e} (check --config or ${CONFIG_ENV})"),
        })?;
        Config::parse(&text, &path.display().to_string(), path.parent())
    }

    /// Parses and validates config text; `source` names it in errors, `base_dir` anchors
    /// relative plugin paths.
    pub fn parse(text: &str, source: &str, base_dir: Option<&Path>) -> Result<Config> {
        let err = |message: String| Error::Config {
            path: source.to_string(),
            message,
        };
        let mut config: Config = toml::from_str(text)
            .map_err(|e| err(unknown_grant(text, &e).unwrap_or_else(|| e.to_string())))?;
        config.source = source.to_string();
        if config.backends.is_empty() {
            return Err(err(
                "no backends configured (add e.g. [backends.native] with type = \"native\")".into(),
            ));
        }
        for name in config.backends.keys() {
            check_name("backend", name).map_err(&err)?;
        }
        let mut chained = std::collections::HashSet::new();
        for name in &config.placement.fallback {
            if !config.backends.contains_key(name) {
                return Err(err(format!(
                    "[placement] fallback names backend {name:?}, which is not configured \
                     (add [backends.{name}], or take it out of the list)"
                )));
            }
            if !chained.insert(name) {
                return Err(err(format!(
                    "[placement] fallback names backend {name:?} twice"
                )));
            }
        }
        if config.pipeline.budget_ms == 0 {
            return Err(err("[pipeline] budget-ms must be greater than 0".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for plugin in &mut config.plugins {
            let at = format!("[[plugins]] name = {:?}", plugin.name);
            check_name("plugin", &plugin.name).map_err(&err)?;
            if !seen.insert(plugin.name.clone()) {
                return Err(err(format!("{at}: plugin names must be unique")));
            }
            if plugin.worlds.is_empty() {
                return Err(err(format!(
                    "{at}: `worlds` is empty (list one or more of name-policy, backend-policy, lifecycle-hooks)"
                )));
            }
            if let Some(pin) = &plugin.sha256 {
                let ok = pin.len() == 64 && pin.bytes().all(|b| b.is_ascii_hexdigit());
                if !ok {
                    return Err(err(format!(
                        "{at}: sha256 must be 64 hex digits, got {pin:?}"
                    )));
                }
            }
            if plugin.timeout_ms == 0 || plugin.memory_mb == 0 || plugin.max_size_mb == 0 {
                return Err(err(format!(
                    "{at}: timeout-ms, memory-mb and max-size-mb must be greater than 0"
                )));
            }
            if let Some(base) = base_dir
                && plugin.path.is_relative()
            {
                plugin.path = base.join(&plugin.path);
            }
        }
        for (registry, entry) in &mut config.registries {
            if entry.insecure == Some(true) && entry.ca.is_some() {
                return Err(err(format!(
                    "[registries.{registry:?}]: `insecure = true` (plain HTTP) and `ca` (TLS) \
                     contradict each other; keep one"
                )));
            }
            if let Some(mirror) = &entry.mirror {
                let host_only = !mirror.is_empty()
                    && !mirror.contains("://")
                    && !mirror.contains('/')
                    && !mirror.contains(char::is_whitespace);
                if !host_only {
                    return Err(err(format!(
                        "[registries.{registry:?}]: mirror {mirror:?} is not a host: give \
                         HOST or HOST:PORT (its transport is its own [registries] entry's)"
                    )));
                }
            }
            if let (Some(base), Some(ca)) = (base_dir, &mut entry.ca)
                && ca.is_relative()
            {
                *ca = base.join(&*ca);
            }
        }
        if let (Some(base), Some(PackageRepository::Dir(dir))) =
            (base_dir, &mut config.packages.repository)
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
        Ok(config)
    }

    /// Renders the configuration back to TOML (as `berth config show` prints it).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("config always serialises")
    }
}

/// The typed parse refuses an unknown grant by line and column only; this names the
/// `[[plugins]]` entry too. `None` when the parse failed for another reason.
fn unknown_grant(text: &str, error: &toml::de::Error) -> Option<String> {
    let table: toml::Table = text.parse().ok()?;
    let plugins = table.get("plugins")?.as_array()?;
    plugins.iter().find_map(|plugin| {
        let name = plugin.get("name").and_then(|n| n.as_str()).unwrap_or("");
        let grants = plugin.get("grants")?.as_array()?;
        let unknown = grants
            .iter()
            .find(|g| g.as_str().and_then(Grant::from_interface).is_none())?;
        let line = error
            .span()
            .map(|span| format!(" (line {})", text[..span.start].lines().count().max(1)))
            .unwrap_or_default();
        Some(format!(
            "[[plugins]] name = {name:?}: unknown grant {unknown}{line}; valid grants are {}",
            Grant::list()
        ))
    })
}

fn check_name(kind: &str, name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{kind} name {name:?} must be non-empty and use only letters, digits, '-' and '_'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_config_parses_to_one_native_backend_and_no_plugins() {
        let config = Config::builtin();
        assert_eq!(config.backends.len(), 1);
        assert_eq!(config.backends["native"].kind(), "native");
        assert!(config.plugins.is_empty());
        assert_eq!(config.host.state_dir, Path::new("/var/lib/berth"));
        assert_eq!(config.pipeline.budget_ms, 200);
    }

    #[test]
    fn a_fallback_chain_names_configured_backends_once() {
        let text = "[backends.native]\ntype = \"native\"\n[backends.docker]\ntype = \"docker\"\n\
                    [placement]\nfallback = [\"docker\", \"native\"]\n";
        let config = Config::parse(text, "b.toml", None).unwrap();
        assert_eq!(config.placement.fallback, ["docker", "native"]);
        let unknown = text.replace("\"docker\", \"native\"", "\"docker\", \"podman\"");
        let err = Config::parse(&unknown, "b.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"podman\", which is not configured"), "{err}");
        let twice = text.replace("\"docker\", \"native\"", "\"docker\", \"docker\"");
        let err = Config::parse(&twice, "b.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn the_pipeline_budget_is_set_and_checked() {
        let text = "[backends.native]\ntype = \"native\"\n[pipeline]\nbudget-ms = 50\n";
        let config = Config::parse(text, "b.toml", None).unwrap();
        assert_eq!(config.pipeline.budget_ms, 50);
        let zero = text.replace("50", "0");
        let err = Config::parse(&zero, "b.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("budget-ms must be greater than 0"), "{err}");
    }

    #[test]
    fn registries_choose_their_transport_and_resolve_their_ca() {
        let text = "[backends.native]\ntype = \"native\"\n\
                    [registries.\"127.0.0.1:5443\"]\nca = \"certs/ca.pem\"\n\
                    [registries.\"10.0.0.9:5000\"]\ninsecure = true\n\
                    [registries.\"localhost:5001\"]\ninsecure = false\n";
        let config =
            Config::parse(text, "/etc/berth/b.toml", Some(Path::new("/etc/berth"))).unwrap();
        assert_eq!(
            config.registry_transport("127.0.0.1:5443"),
            Transport::Https {
                ca: Some("/etc/berth/certs/ca.pem".into())
            }
        );
        assert_eq!(config.registry_transport("10.0.0.9:5000"), Transport::Http);
        assert_eq!(
            config.registry_transport("localhost:5001"),
            Transport::Https { ca: None }
        );
        assert_eq!(config.registry_transport("127.0.0.1:5000"), Transport::Http);
        assert_eq!(
            config.registry_transport("ghcr.io"),
            Transport::Https { ca: None }
        );
        let both = "[backends.native]\ntype = \"native\"\n\
                    [registries.\"r.example\"]\nca = \"ca.pem\"\ninsecure = true\n";
        let err = Config::parse(both, "b.toml", None).unwrap_err().to_string();
        assert!(err.contains("contradict"), "{err}");
    }

    #[test]
    fn a_mirror_is_a_host_that_stands_in_for_a_registry() {
        let text = "[backends.native]\ntype = \"native\"\n\
                    [registries.\"gcr.io\"]\nmirror = \"127.0.0.1:5000\"\n";
        let config = Config::parse(text, "b.toml", None).unwrap();
        assert_eq!(config.registry_mirror("gcr.io"), Some("127.0.0.1:5000"));
        assert_eq!(config.registry_mirror("docker.io"), None);
        for bad in ["http://127.0.0.1:5000", "127.0.0.1:5000/v2", ""] {
            let text = format!(
                "[backends.native]\ntype = \"native\"\n[registries.\"gcr.io\"]\nmirror = {bad:?}\n"
            );
            let err = Config::parse(&text, "b.toml", None)
                .unwrap_err()
                .to_string();
            assert!(err.contains("is not a host"), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_keys_name_the_file_the_line_and_the_key() {
        let text = "[host]\nstate-dir = \"/x\"\nstate-dri = \"/y\"\n[backends.native]\ntype = \"native\"\n";
        let err = Config::parse(text, "/etc/berth.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/etc/berth.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("state-dri"), "{err}");

        let text = "[backends.native]\ntype = \"native\"\nsocket = \"/x\"\n";
        let err = Config::parse(text, "b.toml", None).unwrap_err().to_string();
        assert!(err.contains("socket") && err.contains("line"), "{err}");

        let text = "[backends.native]\ntype = \"podman\"\n";
        let err = Config::parse(text, "b.toml", None).unwrap_err().to_string();
        assert!(err.contains("podman"), "{err}");
    }

    #[test]
    fn plugins_resolve_paths_and_validate() {
        let text = r#"
[backends.native]
type = "native"

[[plugins]]
name = "naming"
path = "plugins/naming.wasm"
worlds = ["name-policy"]
settings = { pattern = "^app-[a-f0-9]{8,16}-[0-9a-f]{4}$", max = 3 }
"#;
        let config = Config::parse(text, "x.toml", Some(Path::new("/etc/berth"))).unwrap();
        let plugin = &config.plugins[0];
        assert_eq!(plugin.path, Path::new("/etc/berth/plugins/naming.wasm"));
        assert_eq!(plugin.on_error, OnError::Deny);
        assert_eq!(plugin.mode, PluginMode::Enforce);
        assert_eq!(
            plugin.setting("pattern").unwrap(),
            "^app-[a-f0-9]{8,16}-[0-9a-f]{4}$"
        );
        assert_eq!(plugin.setting("max").unwrap(), "3");
        assert_eq!(plugin.max_size_mb, 64);
        let small = text.replace("worlds = [", "max-size-mb = 2\nworlds = [");
        let config = Config::parse(&small, "x.toml", None).unwrap();
        assert_eq!(config.plugins[0].max_size_mb, 2);
        let none = text.replace("worlds = [", "max-size-mb = 0\nworlds = [");
        let err = Config::parse(&none, "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("max-size-mb must be greater than 0"), "{err}");

        let bad_grant = text.replace(
            "worlds = [\"name-policy\"]",
            "worlds = [\"name-policy\"]\ngrants = [\"docker\"]",
        );
        let err = Config::parse(&bad_grant, "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "x.toml: [[plugins]] name = \"naming\": unknown grant \"docker\" (line 9); valid \
                 grants are containers, quotas, packages, snapshots"
            ),
            "{err}"
        );
        let granted = bad_grant.replace("\"docker\"", "\"quotas\", \"snapshots\"");
        let config = Config::parse(&granted, "x.toml", None).unwrap();
        assert_eq!(config.plugins[0].grants, [Grant::Quotas, Grant::Snapshots]);
        assert!(
            config
                .to_toml()
                .contains("grants = [\n    \"quotas\",\n    \"snapshots\",\n]"),
            "{}",
            config.to_toml()
        );

        let dup = format!(
            "{text}\n[[plugins]]\nname = \"naming\"\npath = \"a.wasm\"\nworlds = [\"name-policy\"]\n"
        );
        assert!(
            Config::parse(&dup, "x.toml", None)
                .unwrap_err()
                .to_string()
                .contains("unique")
        );
    }

    #[test]
    fn a_config_without_backends_is_refused() {
        let err = Config::parse("[host]\n", "x.toml", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no backends"), "{err}");
    }

    #[test]
    fn a_repository_is_a_directory_relative_to_the_file_or_a_url() {
        let parse = |repository: &str| {
            let text = format!(
                "[backends.native]\ntype = \"native\"\n[packages]\nrepository = \"{repository}\"\n"
            );
            Config::parse(&text, "x.toml", Some(Path::new("/etc/berth")))
                .unwrap()
                .packages
                .repository
                .unwrap()
        };
        assert_eq!(
            parse("ipk"),
            PackageRepository::Dir("/etc/berth/ipk".into())
        );
        assert_eq!(parse("/srv/ipk"), PackageRepository::Dir("/srv/ipk".into()));
        assert_eq!(
            parse("https://pkgs.example/ipk/"),
            PackageRepository::Http("https://pkgs.example/ipk".into())
        );
    }
}
