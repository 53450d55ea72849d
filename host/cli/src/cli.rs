//! The command line, as clap sees it. Flags follow docker's and podman's habits.

use std::path::PathBuf;

use berth_core::config::PluginWorld;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::exit::EXIT_CODES_HELP;

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "A container host whose policy lives in sandboxed WebAssembly plugins",
    after_help = EXIT_CODES_HELP.as_str()
)]
pub struct Cli {
    /// Configuration file (default: $BERTH_CONFIG, else the built-in config).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// Format of berth's own diagnostics on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Diagnostic verbosity (error, warn, info, debug, trace); also RUST_LOG.
    #[arg(long, global = true, default_value = "warn", value_name = "LEVEL")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and start a container; exits with the container's exit code.
    Run(RunArgs),
    /// Create a container without starting it; prints its id.
    Create(CreateArgs),
    /// Start created or stopped containers.
    Start {
        /// Stay attached to its output (and, with -i, feed it this stdin); exits with its exit
        /// code. One container only.
        #[arg(short, long)]
        attach: bool,
        /// With -a: this stdin into the container's (it was created with -i).
        #[arg(short, long, requires = "attach")]
        interactive: bool,
        /// With -a on a terminal: the keys that detach and leave it running.
        #[arg(long, value_name = "KEYS", default_value = crate::terminal::DEFAULT_DETACH_KEYS)]
        detach_keys: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers (SIGTERM, then SIGKILL after the timeout).
    Stop {
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        timeout: u64,
        /// Signal to send first.
        #[arg(short, long, default_value = "TERM")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Send a signal to running containers (default KILL).
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers.
    Rm {
        /// Kill and remove running containers.
        #[arg(short, long)]
        force: bool,
        /// Keep the container's filesystem as a snapshot: its snapshot key on containerd, a
        /// committed snapshot named by its id on native (see `berth snapshot ls`).
        #[arg(long)]
        keep_snapshot: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers.
    Ps {
        /// Show all containers, not only running ones.
        #[arg(short, long)]
        all: bool,
        /// Filter, e.g. label=tier=web (repeatable; all must match).
        #[arg(long, value_name = "FILTER")]
        filter: Vec<String>,
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show everything berth knows about containers, as JSON.
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Change running containers' limits in place, as `docker update` (kept for later starts).
    Update {
        /// Memory limit (e.g. 512m, 1g).
        #[arg(short, long)]
        memory: Option<String>,
        /// CPU limit, in cores (e.g. 1.5).
        #[arg(long)]
        cpus: Option<String>,
        /// The most processes the container may have.
        #[arg(long)]
        pids_limit: Option<u64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show a one-shot snapshot of containers' resource use.
    Stats {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Print a container's output.
    Logs {
        /// Keep printing until the container exits.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines ("all": every line).
        #[arg(short = 'n', long, value_name = "N", default_value = "all")]
        tail: String,
        /// Only output since this time (RFC 3339, or a duration ago such as 10m).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only output until this time (RFC 3339, or a duration ago such as 10m).
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Prefix each line with when it was written.
        #[arg(short, long)]
        timestamps: bool,
        container: String,
    },
    /// Attach this terminal's stdin, stdout and stderr to a running container (its output from
    /// now on; stdin when it was created with -i). Ends when it exits, with its exit code.
    Attach {
        /// Do not send this stdin to the container.
        #[arg(long)]
        no_stdin: bool,
        /// On a terminal: the keys that detach and leave it running.
        #[arg(long, value_name = "KEYS", default_value = crate::terminal::DEFAULT_DETACH_KEYS)]
        detach_keys: String,
        container: String,
    },
    /// Run a command in a running container; exits with its exit code.
    Exec {
        /// Keep stdin open: the process reads this one's (without it, an empty stdin).
        #[arg(short, long)]
        interactive: bool,
        /// Give the process a terminal (this one, in raw mode, when it is a terminal).
        #[arg(short, long)]
        tty: bool,
        /// Environment variables (KEY=VALUE).
        #[arg(short, long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Working directory inside the container.
        #[arg(short, long)]
        workdir: Option<String>,
        container: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Copy files between a container and the host: `cp CONTAINER:SRC DEST` or
    /// `cp SRC CONTAINER:DEST`, where a copy lands as with docker cp. `-` as DEST writes a tar
    /// to stdout; `-` as SRC reads one from stdin into a directory.
    Cp {
        /// Keep the source's owners (uid and gid); without it a copy belongs to the receiving
        /// side's root (into a container) or to you (out of one). A tar from - keeps its own.
        #[arg(short, long)]
        archive: bool,
        /// Follow a symlink SRC ends in.
        #[arg(short = 'L', long)]
        follow_link: bool,
        #[arg(value_name = "SRC")]
        source: String,
        #[arg(value_name = "DEST")]
        dest: String,
    },
    /// Manage a backend's images.
    Image(ImageArgs),
    /// Log in to a registry: checks the user and password with it, then keeps them where
    /// docker does (~/.docker/config.json or its credential helper); pulls from it then go as
    /// this user.
    Login {
        /// The registry, as image names spell it (`ghcr.io`, `127.0.0.1:5000`); Docker Hub by
        /// default.
        #[arg(default_value = "docker.io")]
        server: String,
        #[arg(short, long)]
        username: Option<String>,
        /// The password or access token (prefer --password-stdin: this one shows in `ps`).
        #[arg(short, long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Log out from a registry: forget the credentials kept for it.
    Logout {
        #[arg(default_value = "docker.io")]
        server: String,
    },
    /// Manage a backend's snapshots (filesystem layers).
    Snapshot(SnapshotArgs),
    /// Save a container's filesystem as a new version and carry on from it (restarts it if it
    /// ran); prints the version.
    Commit {
        container: String,
        /// The version's name (default <id>-v<nanoseconds>).
        name: Option<String>,
    },
    /// Put a container back on an earlier version from `berth commit` (restarts it if it ran).
    Rollback { container: String, version: String },
    /// Build, install and list read-only software packages (.ipk).
    #[command(subcommand)]
    Pkg(PkgCommand),
    /// Manage named volumes and their disk quotas.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage container networks (CNI bridge networks).
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Manage pods: apps that share network, IPC and hostname.
    #[command(subcommand)]
    Pod(PodCommand),
    /// Serve Kubernetes' CRI (a kubelet's, crictl's or critest's runtime endpoint).
    #[command(subcommand)]
    Cri(CriCommand),
    /// Inspect configured backends.
    #[command(subcommand)]
    Backend(BackendCommand),
    /// Validate or show configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect, check and try plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Show the plugin decision log.
    Events {
        /// Keep printing new decisions as they happen.
        #[arg(short, long)]
        follow: bool,
    },
    /// Finish or undo what killed berth processes left (half-made or half-removed
    /// containers, `run --rm` containers that have exited, stray mounts, cgroups, staging
    /// and temp files); with --exited, also remove containers that exited a while ago.
    Gc {
        /// List what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove exited containers (kept by default, as docker keeps them).
        #[arg(long)]
        exited: bool,
        /// With --exited: only those that exited longer ago than this (30s, 10m, 2h, 1d).
        #[arg(long, value_name = "DURATION", default_value = "0s")]
        grace: String,
        /// Run at boot: start what the restart policies say should run (`always`, even if
        /// stopped; `unless-stopped` unless stopped; `on-failure` after a failure).
        #[arg(long)]
        restart: bool,
    },
    /// Keeps one container's restart policy (started by berth itself).
    #[command(name = "__restart-watch", hide = true)]
    RestartWatch {
        id: String,
        #[arg(long)]
        boot: bool,
    },
}

impl Command {
    /// The worlds of the plugins the command consults (or shows): none for most.
    pub fn consulted_worlds(&self) -> &'static [PluginWorld] {
        const HOOKS: &[PluginWorld] =
            &[PluginWorld::LifecycleHooks, PluginWorld::PodLifecycleHooks];
        match self {
            Command::Run(_)
            | Command::Create(_)
            | Command::Plugin(PluginCommand::Ls | PluginCommand::Call { .. })
            | Command::Cri(_) => &PluginWorld::ALL,
            Command::Start { .. }
            | Command::Stop { .. }
            | Command::Rm { .. }
            | Command::Gc { .. }
            | Command::RestartWatch { .. } => HOOKS,
            _ => &[],
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CriCommand {
    /// Serve the CRI runtime and image services on a unix socket until SIGTERM or SIGINT,
    /// which let the calls in flight finish.
    Serve {
        /// Where to listen (`unix:///PATH`); `[cri] listen` in berth.toml by default.
        #[arg(long, value_name = "ADDRESS")]
        listen: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Read the container spec from a TOML file; flags override its fields.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// Container name (default: generated by the name policy, else berth-<random>).
    #[arg(long)]
    pub name: Option<String>,
    /// Environment variables (KEY=VALUE, repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Labels (KEY=VALUE, repeatable).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Bind mount HOST:CONTAINER[:ro], or VOLUME:CONTAINER[:ro] for a named volume (repeatable).
    #[arg(short, long = "volume", value_name = "SRC:DST[:ro]")]
    pub volume: Vec<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// CPU limit in cores (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Maximum number of processes.
    #[arg(long)]
    pub pids_limit: Option<u64>,
    /// Backend to run on (the backend policy may refuse it).
    #[arg(long)]
    pub backend: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Hostname inside the container.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Mount package NAME@VERSION read-only at <mount-prefix>/NAME (repeatable).
    #[arg(long = "pkg", value_name = "NAME@VERSION")]
    pub pkg: Vec<String>,
    #[command(flatten)]
    pub net: NetworkArgs,
    /// Restart policy: no, always, on-failure[:N], unless-stopped (docker's; see
    /// `berth gc --restart` for boot).
    #[arg(long)]
    pub restart: Option<String>,
    /// Static IPv4 address on the container's (first) network; on docker, on the private
    /// network --subnet gives.
    #[arg(long)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// With --ip: the subnet (CIDR; a bare address means /24); on berth networks it must be
    /// the network's.
    #[arg(long, requires = "ip")]
    pub subnet: Option<String>,
    /// Join pod POD (name or id) as one of its apps: its network, IPC and hostname.
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
    /// Keep the container's stdin open: `run` feeds it this one's, `berth attach` its own.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the container a terminal; `run` and `attach` put this one in raw mode.
    #[arg(short, long)]
    pub tty: bool,
    /// Image (required unless the spec file names one).
    pub image: Option<String>,
    /// Command and arguments (default: the image's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// The networking flags of `create`, `run` and `pod create`.
#[derive(Debug, Args)]
pub struct NetworkArgs {
    /// Publish a port: [HOST_IP:][HOST_PORT:]PORT[/PROTO] (repeatable).
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// DNS server (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domain (repeatable).
    #[arg(long = "dns-search", value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// resolv.conf option, e.g. ndots:2 (repeatable).
    #[arg(long = "dns-option", value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// An /etc/hosts entry, NAME:IP (repeatable).
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// `none`, `host`, or a network to attach to (repeatable; default: [network].default).
    #[arg(long = "network", visible_alias = "net", value_name = "NETWORK")]
    pub network: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// With -t: the keys that detach and leave the container running.
    #[arg(long, value_name = "KEYS", default_value = crate::terminal::DEFAULT_DETACH_KEYS)]
    pub detach_keys: String,
    #[command(flatten)]
    pub create: CreateArgs,
}

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// The backend whose images to manage (default: the first configured backend).
    #[arg(long, global = true)]
    pub backend: Option<String>,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// The backend whose snapshots to manage (default: the first configured backend).
    #[arg(long, global = true)]
    pub backend: Option<String>,
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// List snapshots with their kind and parent.
    #[command(alias = "list")]
    Ls,
    /// Create active snapshot KEY, on committed PARENT if given; prints its mounts.
    Prepare { key: String, parent: Option<String> },
    /// Freeze active snapshot KEY as committed snapshot NAME.
    Commit { name: String, key: String },
    /// Show the mounts that make snapshot KEY.
    Mounts { key: String },
    /// Mount snapshot KEY at a new temporary directory and print it; `unmount` undoes it.
    Mount { key: String },
    /// Unmount a directory from `berth snapshot mount` and remove it.
    Unmount { dir: std::path::PathBuf },
    /// Snapshot KEY and its ancestors, down to the base layer.
    Lineage { key: String },
    /// Remove snapshots.
    Rm {
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Fetch an image from its registry: a bar per layer on a terminal, a line per step off
    /// one.
    Pull {
        /// No progress, only the result.
        #[arg(short, long)]
        quiet: bool,
        reference: String,
    },
    /// Import a docker-archive (`docker save`) or OCI layout (directory or tar), or a plain
    /// directory with --rootfs.
    Import {
        /// Treat SOURCE as a root filesystem directory.
        #[arg(long)]
        rootfs: bool,
        /// No progress, only the result.
        #[arg(short, long)]
        quiet: bool,
        /// Archive, OCI layout, or (with --rootfs) directory.
        source: PathBuf,
        /// Image name (default: the name recorded in the archive).
        name: Option<String>,
    },
    /// List images.
    #[command(alias = "list")]
    Ls,
    /// Show what the backend knows about images, as JSON.
    Inspect {
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove images (refused while a container uses one, unless forced).
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        images: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PkgCommand {
    /// Pack a directory into NAME_VERSION_OS_ARCH.ipk.
    Build {
        dir: PathBuf,
        #[arg(long)]
        name: String,
        /// A semantic version, e.g. 1.0.0.
        #[arg(long)]
        version: String,
        /// xz, gzip or none.
        #[arg(long, default_value = "xz")]
        compression: String,
        /// Output file (default: <id>.ipk in the current directory).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Also write OUTPUT.crc32, the per-chunk checksums an HTTP repository publishes.
        #[arg(long)]
        chunk_sums: bool,
    },
    /// Install a package file, or NAME@VERSION from [packages].repository.
    Install { package: String },
    /// Show a package file's header (verifying its data block).
    Inspect { file: PathBuf },
    /// List installed packages.
    #[command(alias = "list")]
    Ls,
    /// Remove installed packages (NAME@VERSION).
    Rm {
        #[arg(required = true)]
        packages: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume, limited to --size by the configured quota driver.
    Create {
        name: String,
        /// Size limit, e.g. 10M or 1G (needs [quota].type = "btrfs" or "xfs").
        #[arg(long)]
        size: Option<String>,
    },
    /// List volumes with their limit and usage.
    #[command(alias = "list")]
    Ls,
    /// Remove volumes and their data (refused while a container uses one).
    Rm {
        #[arg(required = true)]
        volumes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network with its own interface and subnet.
    Create {
        name: String,
        /// The subnet (default: the next free /24 of [network].subnet-pool).
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
        /// The bridge's address (default: the subnet's first host address).
        #[arg(long, value_name = "IP")]
        gateway: Option<std::net::Ipv4Addr>,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls,
    /// Show networks, with their attached containers, as JSON.
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks and their bridges (refused while a container is attached).
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct PodCreateArgs {
    /// Pod name (default: pod-<random>).
    #[arg(long)]
    pub name: Option<String>,
    /// Labels (KEY=VALUE, repeatable).
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// The pod's hostname (default: its name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// A backend that runs pods (default: the first that does).
    #[arg(long)]
    pub backend: Option<String>,
    /// Memory limit of the pod's cgroup, shared by its apps (e.g. 512m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// CPU limit of the pod's cgroup, in cores (e.g. 1.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// One PID namespace for all the pod's apps: each sees the others' processes.
    #[arg(long)]
    pub share_pid: bool,
    /// A kernel parameter of the pod's own namespaces, KEY=VALUE (IPC ones and net.*).
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    #[command(flatten)]
    pub net: NetworkArgs,
}

/// `pod run` and `pod prepare`: a manifest and what the command line adds to it.
#[derive(Debug, Args)]
pub struct PodManifestArgs {
    /// The pod's manifest (TOML: the pod's settings and its [[app]] tables).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Pod name (default: the manifest's, else pod-<random>).
    #[arg(long)]
    pub name: Option<String>,
    /// Give every app this process's environment where nothing else sets a variable.
    #[arg(long)]
    pub inherit_env: bool,
    /// Environment for every app from a file of KEY=VALUE lines (repeatable).
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Environment variables for every app (KEY=VALUE, repeatable; win over everything).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum PodCommand {
    /// Create a pod and start its infra process; prints its id.
    Create(Box<PodCreateArgs>),
    /// Create a pod from a manifest and start it with all its apps; prints its id.
    Run(PodManifestArgs),
    /// Check a manifest and record the pod and its apps without starting them; prints its id.
    Prepare(PodManifestArgs),
    /// Start prepared or stopped pods: infra process, network, then every app.
    Start {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop pods: every app (SIGTERM, then SIGKILL after the timeout), then the infra process.
    Stop {
        /// Kill the apps at once, without the grace period.
        #[arg(short, long)]
        force: bool,
        /// Seconds to wait for each app before killing it.
        #[arg(short = 't', long = "time", default_value_t = 10)]
        time: u64,
        /// Only a pod still running on this infra process (`PID:START`): what an app's
        /// watcher asks when a `stop-pod-on-exit` app ends.
        #[arg(long, value_name = "PID:START", hide = true)]
        if_infra: Option<String>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Run a command in an app of a running pod (default /bin/sh).
    Enter {
        /// The app (needed when the pod has more than one).
        #[arg(long)]
        app: Option<String>,
        /// Keep stdin open: the command reads this one's.
        #[arg(short, long)]
        interactive: bool,
        pod: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// List pods.
    #[command(alias = "list", visible_alias = "ps")]
    Ls {
        /// Print only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show pods, with their apps, as JSON.
    Inspect {
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove pods: their apps, infra process, namespaces and networks.
    Rm {
        /// Remove running apps too.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop pods whose infra process died, and remove pods that exited longer ago than the
    /// grace period.
    Gc {
        /// How long an exited pod is kept (30s, 10m, 2h, 1d).
        #[arg(long, value_name = "DURATION", default_value = "30m")]
        grace_period: String,
        /// List what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Ping every configured backend and show what it reports.
    #[command(alias = "list")]
    Ls,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file without running anything.
    Check {
        /// File to check (default: the one berth would use).
        file: Option<PathBuf>,
    },
    /// Print the configuration berth would use.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List configured plugins, their worlds, grants and cache state.
    #[command(alias = "list")]
    Ls,
    /// Show which worlds a component implements, what it imports, and whether config would load it.
    Check { file: PathBuf },
    /// Make one decision with one plugin and print it.
    Call {
        /// Plugin name from the configuration.
        name: String,
        /// validate-name, generate-name, select-backend, a hook (pre-create, post-start, ...) or
        /// a pod hook (pod-pre-create, ...).
        hook: String,
        /// Container spec (TOML) given to the plugin; a pod spec for a pod hook.
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
    },
    /// Make the running `berth cri serve` load berth.toml's plugins again (SIGHUP); if the new
    /// set fails to load, the old one keeps serving and this exits non-zero.
    Reload,
}
