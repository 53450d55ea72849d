//! What a backend can honour, as data.
//!
//! Backends differ: Docker publishes ports and keeps restart policies, the embedded runtime
//! snapshots its overlay layers, Apple's runtime runs exec without stdin. Each backend declares
//! its [`Capabilities`]; the engine checks a spec or an operation against them in one place
//! before anything is created, and refuses a field the chosen backend cannot honour (never drops
//! it). Placement plugins see the same set as the `features` of each candidate, under the fixed
//! names [`Capability::as_str`] gives, so a selector can route by capability.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::types::{ContainerSpec, ExecIo, ExecSpec, RestartPolicy};

/// One thing a spec or an operation may need from a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `-p`: container ports published on the host.
    PublishPorts,
    /// `--dns`: the container's resolv.conf names these servers.
    Dns,
    /// `--restart` other than `no`.
    RestartPolicy,
    /// `--ip`/`--subnet`: a static address on a private network.
    StaticAddress,
    /// `owner = { uid, gid }` on a mount: the host directory is chowned before start.
    MountOwnership,
    /// `berth exec`.
    Exec,
    /// `exec -i`: the process reads this process's stdin.
    ExecStdin,
    /// `exec -e`: environment for the exec'd process.
    ExecEnv,
    /// `exec -w`: the exec'd process's working directory.
    ExecWorkdir,
    /// `berth stats`.
    Stats,
    /// `berth snapshot ...` and `rm --keep-snapshot`.
    Snapshots,
    /// `berth commit`: freezing a container's filesystem as a version.
    Commit,
    /// `berth rollback`: putting a container back on an earlier version.
    Rollback,
    /// `berth image pull`.
    ImagePull,
    /// `berth image import` of docker-archives and OCI layouts.
    ImageImport,
    /// `berth image import --rootfs`: a plain directory as a one-layer image.
    ImportRootfs,
    /// `--network NAME`: attachment to berth's networks (CNI, driven by the engine).
    Networks,
    /// The backend runs the container in a network namespace the host prepares and names by
    /// path, so the engine's networking (networks, ports, DNS, static addresses) reaches it.
    NetworkNamespace,
    /// `--pod`: the container joins a pod's IPC, UTS and network namespaces by path.
    Pods,
    /// `logs --tail/--since/--until/--timestamps`: output kept with the time it was written.
    LogFilters,
    /// Exec on the caller's streams, with a timeout (the CRI's ExecSync and streaming).
    ExecStreams,
    /// Output also written at a path in the CRI's log format (the kubelet's `log_path`).
    CriLogs,
    /// `berth update`: a running container's limits changed in place.
    UpdateLimits,
    /// Attaching to a running container's output, and its stdin kept open (`stdin-open`).
    Attach,
    /// A stdin kept open without a terminal (`run -i` without `-t`): containerd's shim gives
    /// a task with a logging binary stdin only on a terminal.
    StdinPipe,
    /// `-t`: a container or exec'd process on a terminal, resized by its client.
    Terminal,
    /// `berth cp`: files copied into and out of a container's filesystem.
    CopyFiles,
}

impl Capability {
    pub const ALL: [Capability; 27] = [
        Capability::PublishPorts,
        Capability::Dns,
        Capability::RestartPolicy,
        Capability::StaticAddress,
        Capability::MountOwnership,
        Capability::Exec,
        Capability::ExecStdin,
        Capability::ExecEnv,
        Capability::ExecWorkdir,
        Capability::Stats,
        Capability::Snapshots,
        Capability::Commit,
        Capability::Rollback,
        Capability::ImagePull,
        Capability::ImageImport,
        Capability::ImportRootfs,
        Capability::Networks,
        Capability::NetworkNamespace,
        Capability::Pods,
        Capability::LogFilters,
        Capability::ExecStreams,
        Capability::CriLogs,
        Capability::UpdateLimits,
        Capability::Attach,
        Capability::StdinPipe,
        Capability::Terminal,
        Capability::CopyFiles,
    ];

    /// The fixed name plugins and `backend ls` see; part of the plugin ABI, never renamed.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::PublishPorts => "publish-ports",
            Capability::Dns => "dns",
            Capability::RestartPolicy => "restart-policy",
            Capability::StaticAddress => "static-address",
            Capability::MountOwnership => "mount-ownership",
            Capability::Exec => "exec",
            Capability::ExecStdin => "exec-stdin",
            Capability::ExecEnv => "exec-env",
            Capability::ExecWorkdir => "exec-workdir",
            Capability::Stats => "stats",
            Capability::Snapshots => "snapshots",
            Capability::Commit => "commit",
            Capability::Rollback => "rollback",
            Capability::ImagePull => "image-pull",
            Capability::ImageImport => "image-import",
            Capability::ImportRootfs => "import-rootfs",
            Capability::Networks => "networks",
            Capability::NetworkNamespace => "network-namespace",
            Capability::Pods => "pods",
            Capability::LogFilters => "log-filters",
            Capability::ExecStreams => "exec-streams",
            Capability::CriLogs => "cri-logs",
            Capability::UpdateLimits => "update-limits",
            Capability::Attach => "attach",
            Capability::StdinPipe => "stdin-pipe",
            Capability::Terminal => "terminal",
            Capability::CopyFiles => "copy-files",
        }
    }

    /// How a user asks for it, for error messages.
    pub fn asked_by(self) -> &'static str {
        match self {
            Capability::PublishPorts => "published ports (-p)",
            Capability::Dns => "DNS servers (--dns)",
            Capability::RestartPolicy => "a restart policy (--restart)",
            Capability::StaticAddress => "a static address (--ip/--subnet)",
            Capability::MountOwnership => "mount ownership (owner in a spec file)",
            Capability::Exec => "exec",
            Capability::ExecStdin => "exec with stdin (-i)",
            Capability::ExecEnv => "exec with environment (-e)",
            Capability::ExecWorkdir => "exec with a working directory (-w)",
            Capability::Stats => "stats",
            Capability::Snapshots => "snapshots",
            Capability::Commit => "commit",
            Capability::Rollback => "rollback",
            Capability::ImagePull => "image pull",
            Capability::ImageImport => "image import",
            Capability::ImportRootfs => "image import --rootfs",
            Capability::Networks => "berth networks (--network NAME)",
            Capability::NetworkNamespace => "a network namespace prepared by the host",
            Capability::Pods => "pods (--pod)",
            Capability::LogFilters => "logs --tail, --since, --until or --timestamps",
            Capability::ExecStreams => "exec on the caller's streams or with a timeout (CRI)",
            Capability::CriLogs => "a CRI log path",
            Capability::UpdateLimits => "berth update",
            Capability::Attach => "attach, or a stdin kept open",
            Capability::StdinPipe => "a stdin kept open without a terminal (-i without -t)",
            Capability::Terminal => "a terminal (-t)",
            Capability::CopyFiles => "berth cp",
        }
    }

    fn bit(self) -> u32 {
        1 << self as u32
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities; small and `Copy`, so backends return it by value.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(u32);

impl Capabilities {
    pub const fn none() -> Capabilities {
        Capabilities(0)
    }

    /// What a backend that joins a host-prepared network namespace gets from the engine's
    /// networking: networks, published ports, DNS and static addresses.
    pub fn networked_by_host() -> Capabilities {
        Capabilities::of(&[
            Capability::NetworkNamespace,
            Capability::Networks,
            Capability::PublishPorts,
            Capability::Dns,
            Capability::StaticAddress,
        ])
    }

    /// Both sets.
    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }

    pub fn of(capabilities: &[Capability]) -> Capabilities {
        capabilities
            .iter()
            .fold(Capabilities::none(), |set, c| set.with(*c))
    }

    pub fn with(self, capability: Capability) -> Capabilities {
        Capabilities(self.0 | capability.bit())
    }

    pub fn without(self, capability: Capability) -> Capabilities {
        Capabilities(self.0 & !capability.bit())
    }

    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// The fixed names, in [`Capability::ALL`] order.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|c| c.as_str().to_string()).collect()
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for Capabilities {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter().map(Capability::as_str))
    }
}

/// What a spec needs beyond what every backend does (image, command, env, labels, plain
/// mounts, limits, hostname, working dir).
pub fn needed_by_spec(spec: &ContainerSpec) -> Capabilities {
    let needs = [
        (!spec.ports.is_empty(), Capability::PublishPorts),
        (
            !spec.dns.is_empty()
                || !spec.dns_search.is_empty()
                || !spec.dns_options.is_empty()
                || !spec.extra_hosts.is_empty(),
            Capability::Dns,
        ),
        (
            spec.networks
                .iter()
                .any(|n| n != crate::NETWORK_NONE && n != crate::NETWORK_HOST),
            Capability::Networks,
        ),
        (spec.restart != RestartPolicy::No, Capability::RestartPolicy),
        (spec.network.is_some(), Capability::StaticAddress),
        (spec.pod.is_some(), Capability::Pods),
        (
            spec.mounts.iter().any(|m| m.owner.is_some()),
            Capability::MountOwnership,
        ),
        (spec.log_path.is_some(), Capability::CriLogs),
        (spec.stdin_open, Capability::Attach),
        (spec.stdin_open && !spec.tty, Capability::StdinPipe),
        (spec.tty, Capability::Terminal),
    ];
    needs
        .iter()
        .filter(|(needed, _)| *needed)
        .fold(Capabilities::none(), |set, (_, c)| set.with(*c))
}

/// What an exec needs.
pub fn needed_by_exec(spec: &ExecSpec, io: &ExecIo) -> Capabilities {
    let streams = matches!(io, ExecIo::Streams(_)) || spec.timeout.is_some();
    let needs = [
        (true, Capability::Exec),
        (streams, Capability::ExecStreams),
        (spec.interactive, Capability::ExecStdin),
        (spec.tty, Capability::Terminal),
        (!spec.env.is_empty(), Capability::ExecEnv),
        (spec.working_dir.is_some(), Capability::ExecWorkdir),
    ];
    needs
        .iter()
        .filter(|(needed, _)| *needed)
        .fold(Capabilities::none(), |set, (_, c)| set.with(*c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Mount, Owner, PortMapping};

    #[test]
    fn sets_hold_what_they_are_given() {
        let set = Capabilities::of(&[Capability::Exec, Capability::Snapshots]);
        assert!(set.contains(Capability::Exec) && set.contains(Capability::Snapshots));
        assert!(!set.contains(Capability::Dns));
        assert!(!set.without(Capability::Exec).contains(Capability::Exec));
        assert_eq!(set.names(), ["exec", "snapshots"]);
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"["exec","snapshots"]"#
        );
    }

    #[test]
    fn names_are_unique_and_all_fit_the_set() {
        let mut names: Vec<_> = Capability::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Capability::ALL.len());
        assert!(Capability::ALL.len() <= 32);
        let all = Capabilities::of(&Capability::ALL);
        assert_eq!(all.iter().count(), Capability::ALL.len());
    }

    #[test]
    fn a_spec_needs_what_its_fields_ask_for() {
        let mut spec = ContainerSpec {
            image: "busybox".into(),
            ..ContainerSpec::default()
        };
        assert_eq!(needed_by_spec(&spec), Capabilities::none());
        spec.ports.push(PortMapping::parse("8080:80").unwrap());
        spec.dns.push("10.0.0.1".into());
        spec.restart = RestartPolicy::Always;
        spec.mounts.push(Mount {
            source: "/srv".into(),
            target: "/srv".into(),
            readonly: false,
            owner: Some(Owner { uid: 1, gid: 1 }),
        });
        let needs = needed_by_spec(&spec);
        for c in [
            Capability::PublishPorts,
            Capability::Dns,
            Capability::RestartPolicy,
            Capability::MountOwnership,
        ] {
            assert!(needs.contains(c), "{c}");
        }
        assert!(!needs.contains(Capability::StaticAddress));

        // `-i` alone needs a stdin pipe; with `-t` the terminal carries it.
        let piped = ContainerSpec {
            stdin_open: true,
            ..ContainerSpec::default()
        };
        assert_eq!(
            needed_by_spec(&piped),
            Capabilities::of(&[Capability::Attach, Capability::StdinPipe])
        );
        let on_terminal = ContainerSpec { tty: true, ..piped };
        assert_eq!(
            needed_by_spec(&on_terminal),
            Capabilities::of(&[Capability::Attach, Capability::Terminal])
        );

        let exec = ExecSpec {
            command: vec!["sh".into()],
            interactive: true,
            ..ExecSpec::default()
        };
        assert_eq!(
            needed_by_exec(&exec, &ExecIo::Inherit),
            Capabilities::of(&[Capability::Exec, Capability::ExecStdin])
        );
        let streams = ExecIo::Streams(crate::ExecStreams::output(Vec::new(), Vec::new()));
        assert!(needed_by_exec(&exec, &streams).contains(Capability::ExecStreams));
    }
}
