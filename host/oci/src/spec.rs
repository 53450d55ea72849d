//! Turning a [`ContainerSpec`] plus its image's defaults into an OCI runtime `config.json`.
//!
//! The generated spec starts from oci-spec's runc-like defaults (proc, dev, devpts, shm, mqueue,
//! sysfs and cgroup mounts; pid, network, ipc, uts, mount and cgroup namespaces; the default
//! capability set and masked paths), then applies the image (entrypoint, cmd, env, working dir,
//! user) and the spec (command, env, mounts, hostname, limits, network namespace: new with loopback
//! only, the host's, or one the engine prepared and attached to its networks).
//!
//! What differs between backends is passed in: the cgroup parent, where the image's user names
//! are looked up ([`ImageFiles`]) and whether swap can be limited.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_core::{ContainerSpec, Error, Limits, NetworkNamespace, Result, TerminalSize};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResources, Mount, MountBuilder, Process, Spec, UserBuilder,
};

use crate::config::ImageConfig;
use crate::user::{ImageFiles, resolve_user};

/// CFS period for CPU limits, in microseconds (docker's and runc's default).
pub const CPU_PERIOD_US: u64 = 100_000;
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Inputs that are not in the spec.
#[derive(Clone, Copy)]
pub struct SpecInput<'a> {
    pub id: &'a str,
    pub spec: &'a ContainerSpec,
    pub image: &'a ImageConfig,
    /// The container's cgroup is `/<cgroup_parent>/<id>` (`/<id>` when empty).
    pub cgroup_parent: &'a str,
    /// The image's root filesystem, where `/etc/passwd` and `/etc/group` are read for a user
    /// name.
    pub files: &'a dyn ImageFiles,
    /// Whether the memory+swap limit can be set (cgroup v1 without swap accounting cannot).
    pub swap_limit: bool,
}

/// The process arguments: the spec's entrypoint or the image's, then the spec's command or
/// (unless the spec replaced the entrypoint) the image's cmd.
pub fn process_args(spec: &ContainerSpec, image: &ImageConfig) -> Vec<String> {
    let entrypoint = spec.entrypoint.as_ref().unwrap_or(&image.entrypoint);
    let tail: &[String] = match (&spec.command, &spec.entrypoint) {
        (command, _) if !command.is_empty() => command,
        (_, Some(_)) => &[],
        (_, None) => &image.cmd,
    };
    entrypoint.iter().chain(tail).cloned().collect()
}

/// Image env overridden by spec env, image order first; PATH guaranteed.
pub fn process_env(spec: &ContainerSpec, image: &ImageConfig) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        if !values.contains_key(k) {
            order.push(k.to_string());
        }
        values.insert(k.to_string(), v.to_string());
    };
    if !image.env.iter().any(|e| e.starts_with("PATH=")) {
        set("PATH", &DEFAULT_PATH["PATH=".len()..]);
    }
    for entry in &image.env {
        let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
        set(k, v);
    }
    // What docker gives a terminal, so full-screen programs know how to draw.
    if spec.tty {
        set("TERM", "xterm");
    }
    for (k, v) in &spec.env {
        set(k, v);
    }
    order.iter().map(|k| format!("{k}={}", values[k])).collect()
}

/// `process.consoleSize` of a process on a terminal (`tty`) of `size`: runc sizes the terminal
/// before the process starts (containerd's shim resizes it only later).
fn console_size(tty: bool, size: Option<TerminalSize>) -> Option<oci_spec::runtime::Box> {
    let size = size.filter(|_| tty)?;
    oci_spec::runtime::BoxBuilder::default()
        .height(u64::from(size.rows))
        .width(u64::from(size.cols))
        .build()
        .ok()
}

/// An exec's process: the container's own (`base`: its user, capabilities, rlimits) running
/// `command`, with `env` on top of the container's and `cwd` when given; with `tty`, on a
/// terminal of `size` and with `TERM` as docker sets it.
pub fn exec_process<'a>(
    mut base: Process,
    command: &[String],
    env: impl IntoIterator<Item = (&'a String, &'a String)>,
    cwd: Option<&str>,
    tty: bool,
    size: Option<TerminalSize>,
) -> Process {
    base.set_args(Some(command.to_vec()));
    let mut merged: Vec<String> = base.env().clone().unwrap_or_default();
    for (key, value) in env {
        merged.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        merged.push(format!("{key}={value}"));
    }
    if tty && !merged.iter().any(|e| e.starts_with("TERM=")) {
        merged.push("TERM=xterm".into());
    }
    base.set_env(Some(merged));
    if let Some(dir) = cwd {
        base.set_cwd(dir.into());
    }
    base.set_terminal(Some(tty));
    base.set_console_size(console_size(tty, size));
    base
}

/// `linux.resources` from berth's limits.
pub fn resources(limits: &Limits, swap_limit: bool) -> Result<LinuxResources> {
    let build_err = |e: oci_spec::OciSpecError| Error::invalid("resource limits", e.to_string());
    let mut resources = LinuxResources::default();
    if let Some(bytes) = limits.memory_bytes {
        let limit = i64::try_from(bytes)
            .map_err(|_| Error::invalid(format!("memory limit {bytes}"), "too large"))?;
        let mut memory = LinuxMemoryBuilder::default().limit(limit);
        // No swap here: memory+swap = memory, so the limit is the limit.
        if swap_limit {
            memory = memory.swap(limit);
        }
        resources.set_memory(Some(memory.build().map_err(build_err)?));
    }
    if let Some(millis) = limits.cpu_millis {
        let quota = i64::try_from(millis.saturating_mul(CPU_PERIOD_US / 1000))
            .map_err(|_| Error::invalid(format!("cpu limit {millis}m"), "too large"))?;
        let cpu = LinuxCpuBuilder::default()
            .quota(quota)
            .period(CPU_PERIOD_US)
            .build()
            .map_err(build_err)?;
        resources.set_cpu(Some(cpu));
    }
    if let Some(pids) = limits.pids {
        let limit = i64::try_from(pids)
            .map_err(|_| Error::invalid(format!("pids limit {pids}"), "too large"))?;
        resources.set_pids(Some(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(build_err)?,
        ));
    }
    Ok(resources)
}

/// `spec`'s resources with `update`'s memory, CPU and pids limits in place of its own (what
/// a running container's update leaves for its next start).
pub fn merge_resources(spec: &mut Spec, update: &LinuxResources) {
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let mut resources = linux.resources().clone().unwrap_or_default();
    if update.memory().is_some() {
        resources.set_memory(*update.memory());
    }
    if update.cpu().is_some() {
        resources.set_cpu(update.cpu().clone());
    }
    if update.pids().is_some() {
        resources.set_pids(*update.pids());
    }
    linux.set_resources(Some(resources));
}

/// The full runtime spec for `config.json`.
pub fn build_spec(input: &SpecInput<'_>) -> Result<Spec> {
    let SpecInput {
        id,
        spec: cspec,
        image,
        ..
    } = input;
    let args = process_args(cspec, image);
    if args.is_empty() {
        return Err(Error::invalid(
            format!("container {id}"),
            "neither the command line nor the image gives a command to run",
        )
        .with_hint("pass a command after the image name"));
    }
    let cwd = cspec
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(Error::invalid(
            format!("working directory {cwd:?}"),
            "must be an absolute path",
        ));
    }
    let (uid, gid) = match &image.user {
        Some(user) => resolve_user(user, input.files)?,
        None => (0, 0),
    };

    let mut spec = Spec::default();
    // oci-spec's default root is read-only; a container's rootfs is writable, as on docker.
    if let Some(mut root) = spec.root().clone() {
        root.set_readonly(Some(false));
        spec.set_root(Some(root));
    }
    spec.set_hostname(Some(
        cspec
            .hostname
            .clone()
            .unwrap_or_else(|| id.chars().take(12).collect()),
    ));
    let mut process = spec.process().clone().expect("default spec has a process");
    process.set_args(Some(args));
    process.set_env(Some(process_env(cspec, image)));
    process.set_terminal(Some(cspec.tty));
    process.set_console_size(console_size(cspec.tty, cspec.console_size));
    process.set_cwd(PathBuf::from(cwd));
    process.set_user(
        UserBuilder::default()
            .uid(uid)
            .gid(gid)
            .build()
            .map_err(|e| Error::invalid("user", e.to_string()))?,
    );
    spec.set_process(Some(process));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for mount in &cspec.mounts {
        mounts.push(bind_mount(&mount.source, &mount.target, mount.readonly)?);
    }
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().expect("default spec has linux");
    linux.set_resources(Some(resources(&cspec.limits, input.swap_limit)?));
    let mut namespaces = network_namespace(
        linux.namespaces().clone().unwrap_or_default(),
        &cspec.network_namespace,
    );
    if let Some(pod) = &cspec.pod_join {
        let pid = pod.pid.as_ref().map(|p| (LinuxNamespaceType::Pid, p));
        for (kind, path) in [
            (LinuxNamespaceType::Ipc, &pod.ipc),
            (LinuxNamespaceType::Uts, &pod.uts),
        ]
        .into_iter()
        .chain(pid)
        {
            for namespace in namespaces.iter_mut().filter(|n| n.typ() == kind) {
                namespace.set_path(Some(path.clone()));
            }
        }
        // The pod's UTS namespace already has the pod's hostname.
        spec.set_hostname(None);
    }
    linux.set_namespaces(Some(namespaces));
    linux.set_cgroups_path(Some(cgroup_path(input.cgroup_parent, cspec, id)));
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// The container's cgroup below each hierarchy's root: `/<parent>/<id>`, or
/// `/<parent>/<pod cgroup>/<id>` for an app of a pod.
pub fn cgroup_path(parent: &str, spec: &ContainerSpec, id: &str) -> PathBuf {
    let mut path = PathBuf::from("/");
    path.push(parent.trim_matches('/'));
    if let Some(cgroup) = spec.pod_join.as_ref().and_then(|j| j.cgroup.as_ref()) {
        path.push(&cgroup.name);
    }
    path.push(id);
    path
}

/// The namespace list with the network namespace as the spec asks: new (loopback only),
/// the host's (none), or one the host prepared, joined by path.
fn network_namespace(
    mut namespaces: Vec<LinuxNamespace>,
    wanted: &NetworkNamespace,
) -> Vec<LinuxNamespace> {
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
    let path = match wanted {
        NetworkNamespace::Host => return namespaces,
        NetworkNamespace::Private => None,
        NetworkNamespace::Path(path) => Some(path.clone()),
    };
    let mut network = LinuxNamespace::default();
    network.set_typ(LinuxNamespaceType::Network);
    network.set_path(path);
    namespaces.push(network);
    namespaces
}

fn bind_mount(source: &str, target: &str, readonly: bool) -> Result<Mount> {
    let source_path = Path::new(source);
    if !source_path.is_absolute() {
        return Err(Error::invalid(
            format!("mount source {source:?}"),
            "must be an absolute host path",
        ));
    }
    if !source_path.exists() {
        return Err(Error::not_found(berth_core::Object::MountSource, source)
            .with_hint("create the host directory or file first"));
    }
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if readonly {
        options.push("ro".into());
    }
    MountBuilder::default()
        .destination(target)
        .typ("bind")
        .source(source)
        .options(options)
        .build()
        .map_err(|e| Error::invalid(format!("mount {source}:{target}"), e.to_string()))
}

/// Whether a memory+swap limit can be written on this host.
pub fn swap_limit_supported() -> bool {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // cgroup v2 only: memory.swap.max is there whenever the kernel has swap accounting,
        // and without swap devices there is nothing to limit.
        std::fs::read_to_string("/proc/swaps").is_ok_and(|s| s.lines().count() > 1)
    } else {
        Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::LayerDirs;
    use berth_core::Mount as BerthMount;

    fn image() -> ImageConfig {
        ImageConfig {
            env: vec!["PATH=/bin".into(), "A=image".into()],
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            working_dir: Some("/srv".into()),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn command_and_env_layer_over_the_image() {
        let mut spec = ContainerSpec::default();
        assert_eq!(process_args(&spec, &image()), ["/entry", "default"]);
        spec.command = vec!["x".into(), "y".into()];
        assert_eq!(process_args(&spec, &image()), ["/entry", "x", "y"]);
        spec.entrypoint = Some(vec!["/other".into()]);
        assert_eq!(process_args(&spec, &image()), ["/other", "x", "y"]);
        spec.command.clear();
        assert_eq!(
            process_args(&spec, &image()),
            ["/other"],
            "no image cmd after it"
        );
        spec.env.insert("A".into(), "spec".into());
        spec.env.insert("B".into(), "2".into());
        assert_eq!(process_env(&spec, &image()), ["PATH=/bin", "A=spec", "B=2"]);
        assert!(process_env(&spec, &ImageConfig::default())[0].starts_with("PATH=/usr/local"));
    }

    #[test]
    fn limits_map_to_resources() {
        let limits = Limits {
            cpu_millis: Some(1500),
            memory_bytes: Some(16 << 20),
            pids: Some(64),
        };
        let r = resources(&limits, true).unwrap();
        let memory = r.memory().unwrap();
        assert_eq!(memory.limit(), Some(16 << 20));
        assert_eq!(memory.swap(), Some(16 << 20));
        let cpu = r.cpu().clone().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
        assert_eq!(r.pids().unwrap().limit(), 64);
        assert_eq!(
            resources(&limits, false).unwrap().memory().unwrap().swap(),
            None
        );
        assert!(
            resources(&Limits::default(), true)
                .unwrap()
                .memory()
                .is_none()
        );
    }

    #[test]
    fn the_network_namespace_is_new_the_hosts_or_joined() {
        let kinds = |wanted: &NetworkNamespace| {
            network_namespace(
                Spec::default()
                    .linux()
                    .clone()
                    .unwrap()
                    .namespaces()
                    .clone()
                    .unwrap(),
                wanted,
            )
            .into_iter()
            .filter(|n| n.typ() == LinuxNamespaceType::Network)
            .map(|n| n.path().clone())
            .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&NetworkNamespace::Private), [None]);
        assert_eq!(kinds(&NetworkNamespace::Host), []);
        let joined = PathBuf::from("/run/berth/netns/abc");
        assert_eq!(
            kinds(&NetworkNamespace::Path(joined.clone())),
            [Some(joined)]
        );
    }

    #[test]
    fn an_app_of_a_pod_joins_its_ipc_and_uts_namespaces_and_keeps_its_hostname() {
        let spec = ContainerSpec {
            image: "busybox".into(),
            hostname: Some("ignored".into()),
            network_namespace: NetworkNamespace::Path("/run/netns/pod".into()),
            pod_join: Some(berth_core::PodJoin {
                ipc: "/run/pods/p/ns/ipc".into(),
                uts: "/run/pods/p/ns/uts".into(),
                pid: Some("/run/pods/p/ns/pid".into()),
                cgroup: Some(berth_core::PodCgroup {
                    name: "pod-p".into(),
                    limits: Default::default(),
                }),
            }),
            ..ContainerSpec::default()
        };
        let no_files = LayerDirs(Vec::new());
        let oci = build_spec(&SpecInput {
            id: "0123456789abcdef",
            spec: &spec,
            image: &image(),
            cgroup_parent: "",
            files: &no_files,
            swap_limit: false,
        })
        .unwrap();
        assert_eq!(oci.hostname(), &None);
        assert_eq!(
            oci.linux().as_ref().unwrap().cgroups_path().as_deref(),
            Some(Path::new("/pod-p/0123456789abcdef")),
            "its cgroup is under the pod's"
        );
        let namespaces = oci.linux().as_ref().unwrap().namespaces().clone().unwrap();
        let path = |kind| {
            namespaces
                .iter()
                .find(|n| n.typ() == kind)
                .and_then(|n| n.path().clone())
        };
        assert_eq!(
            path(LinuxNamespaceType::Ipc),
            Some("/run/pods/p/ns/ipc".into())
        );
        assert_eq!(
            path(LinuxNamespaceType::Uts),
            Some("/run/pods/p/ns/uts".into())
        );
        assert_eq!(
            path(LinuxNamespaceType::Pid),
            Some("/run/pods/p/ns/pid".into())
        );
        assert_eq!(
            path(LinuxNamespaceType::Network),
            Some("/run/netns/pod".into())
        );
        // Its own mount and pid namespaces.
        assert_eq!(path(LinuxNamespaceType::Mount), None);
        assert!(
            namespaces
                .iter()
                .any(|n| n.typ() == LinuxNamespaceType::Pid)
        );
    }

    #[test]
    fn spec_carries_hostname_mounts_cgroup_and_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ContainerSpec {
            image: "busybox".into(),
            mounts: vec![BerthMount {
                source: dir.path().display().to_string(),
                target: "/data".into(),
                readonly: true,
                owner: None,
            }],
            ..ContainerSpec::default()
        };
        let id = "0123456789abcdef";
        let image = image();
        let no_files = LayerDirs(Vec::new());
        let input = SpecInput {
            id,
            spec: &spec,
            image: &image,
            cgroup_parent: "berth",
            files: &no_files,
            swap_limit: false,
        };
        let oci = build_spec(&input).unwrap();
        assert_eq!(oci.hostname().as_deref(), Some("0123456789ab"));
        assert_eq!(oci.process().as_ref().unwrap().cwd(), Path::new("/srv"));
        let linux = oci.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/berth/0123456789abcdef"))
        );
        let data = oci
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == Path::new("/data"))
            .unwrap();
        assert!(data.options().as_ref().unwrap().contains(&"ro".to_string()));
        let mut bad = spec.clone();
        bad.mounts[0].source = "/does/not/exist".into();
        assert!(
            build_spec(&SpecInput {
                spec: &bad,
                ..input
            })
            .is_err()
        );
        // Without a parent the cgroup is the id's own.
        let root = build_spec(&SpecInput {
            cgroup_parent: "",
            ..input
        })
        .unwrap();
        assert_eq!(
            root.linux().as_ref().unwrap().cgroups_path().as_deref(),
            Some(Path::new("/0123456789abcdef"))
        );
    }

    #[test]
    fn the_process_runs_as_the_images_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "nobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        let files = LayerDirs(vec![dir.path().to_path_buf()]);
        let spec = ContainerSpec::default();
        let user_of = |user: Option<&str>| {
            let image = ImageConfig {
                user: user.map(String::from),
                ..image()
            };
            build_spec(&SpecInput {
                id: "c",
                spec: &spec,
                image: &image,
                cgroup_parent: "",
                files: &files,
                swap_limit: false,
            })
            .map(|oci| {
                let user = oci.process().as_ref().unwrap().user().clone();
                (user.uid(), user.gid())
            })
        };
        assert_eq!(user_of(None).unwrap(), (0, 0));
        assert_eq!(user_of(Some("nobody")).unwrap(), (65534, 65534));
        assert_eq!(user_of(Some("5:6")).unwrap(), (5, 6));
        let missing = user_of(Some("app")).unwrap_err();
        assert!(missing.to_string().contains("\"app\""), "{missing}");
    }
}
