//! rkt's stage0 rules for the apps of a pod (rkt v1.11.0 `stage0`, appc's `types`), kept as
//! pure functions so every backend and the CRI server apply them alike.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::types::{ContainerSpec, HostEntry, Limits, Mount, NetworkSpec, PortMapping};

/// What `berth pod create` asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct PodSpec {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub networks: Vec<String>,
    pub ports: Vec<PortMapping>,
    pub network: Option<NetworkSpec>,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Vec<HostEntry>,
    /// Pod-wide mounts every app gets, unless it mounts the same target itself (MergeMounts).
    pub mounts: Vec<Mount>,
    /// Limits of the pod's cgroup, which all its apps share.
    pub limits: Limits,
    /// One PID namespace for all its apps (Kubernetes' `shareProcessNamespace`).
    pub share_pid: bool,
    /// Kernel parameters set in the pod's own namespaces (`--sysctl`, a kubelet's sysctls):
    /// IPC ones and `net.*` only, never the host's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// A backend that claims pods; the first that does when not given.
    pub backend: Option<String>,
}

impl PodSpec {
    /// The pod as a container spec: what the network service plans from, and what name and
    /// backend policies are shown (image `pod`).
    pub fn as_container(&self) -> ContainerSpec {
        ContainerSpec {
            name: self.name.clone(),
            image: "pod".into(),
            labels: self.labels.clone(),
            hostname: self.hostname.clone(),
            networks: self.networks.clone(),
            ports: self.ports.clone(),
            network: self.network.clone(),
            dns: self.dns.clone(),
            dns_search: self.dns_search.clone(),
            dns_options: self.dns_options.clone(),
            extra_hosts: self.extra_hosts.clone(),
            mounts: self.mounts.clone(),
            limits: self.limits.clone(),
            ..ContainerSpec::default()
        }
    }
}

/// One app of a pod as policy sees it: its name in the pod and its container's spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodApp {
    pub name: String,
    pub spec: ContainerSpec,
}

/// appc's `ValidOSArch`, as rkt checks it at prepare: the arches each os may name.
pub const VALID_OS_ARCH: &[(&str, &[&str])] = &[(
    "linux",
    &[
        "amd64",
        "i386",
        "aarch64",
        "aarch64_be",
        "armv6l",
        "armv7l",
        "armv7b",
    ],
)];

/// An app's default name: the last path segment of its image's name (tag and digest left
/// out, as an appc image name carries neither), sanitised by appc's `SanitizeACName`: lower
/// case, every character outside `[a-z0-9-]` a dash, edge dashes dropped. What is left must
/// be a valid `ACName` (`[a-z0-9]+(-[a-z0-9]+)*`).
pub fn app_name_from_image(image: &str) -> Result<String> {
    let without_digest = image.split_once('@').map_or(image, |(name, _)| name);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let last = last.split_once(':').map_or(last, |(name, _)| name);
    let sanitised: String = last
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = sanitised.trim_matches('-').to_string();
    if !is_ac_name(&name) {
        return Err(Error::invalid(
            format!("app name {name:?} derived from image {image:?}"),
            "an app name is lower-case letters and digits joined by single dashes",
        )
        .with_hint("give the app a name of its own"));
    }
    Ok(name)
}

/// appc's `ValidACName`: `^[a-z0-9]+([-][a-z0-9]+)*$`.
pub fn is_ac_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Two apps of one pod may not share a name (rkt: "multiple apps with name ...").
pub fn check_unique_app_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(Error::invalid(
                format!("app name {name:?}"),
                "multiple apps of the pod have it",
            )
            .with_hint("give each app its own name"));
        }
    }
    Ok(())
}

/// appc's `IsValidOSArch` on an image's os and arch labels (OCI names are translated to
/// appc's first): no os is fine, an os outside the table is refused, and an arch is checked
/// only against the arches of its os.
pub fn check_os_arch(os: Option<&str>, arch: Option<&str>, variant: Option<&str>) -> Result<()> {
    let Some(os) = os else {
        return Ok(());
    };
    let Some((_, arches)) = VALID_OS_ARCH.iter().find(|(valid, _)| *valid == os) else {
        let oses: Vec<&str> = VALID_OS_ARCH.iter().map(|(os, _)| *os).collect();
        return Err(Error::invalid(
            format!("image os {os:?}"),
            format!("bad os {os:?} (must be one of: {})", oses.join(", ")),
        )
        .with_hint("use an image built for linux"));
    };
    let Some(arch) = arch else {
        return Ok(());
    };
    let appc = appc_arch(arch, variant);
    if !arches.contains(&appc.as_str()) {
        return Err(Error::invalid(
            format!("image arch {arch:?}"),
            format!(
                "bad arch {appc:?} for {os} (must be one of: {})",
                arches.join(", ")
            ),
        )
        .with_hint("use an image built for one of those"));
    }
    Ok(())
}

/// An OCI (Go) architecture name as appc writes it; appc's own names pass through.
fn appc_arch(arch: &str, variant: Option<&str>) -> String {
    match (arch, variant) {
        ("386", _) => "i386".into(),
        ("arm64", _) => "aarch64".into(),
        ("arm64be", _) => "aarch64_be".into(),
        ("arm", Some("v6")) => "armv6l".into(),
        ("arm", Some("v7") | None) => "armv7l".into(),
        ("armbe", Some("v7") | None) => "armv7b".into(),
        (other, _) => other.into(),
    }
}

/// rkt's `MergeMounts(global, app)`: the app's mounts, then the pod-wide ones, deduplicated
/// by exact target path, the first winning, so an app's mount overrides the pod's on the same
/// target.
pub fn merge_mounts(pod: &[Mount], app: &[Mount]) -> Vec<Mount> {
    let mut seen = HashSet::new();
    app.iter()
        .chain(pod)
        .filter(|mount| seen.insert(mount.target.clone()))
        .cloned()
        .collect()
}

/// Where an app's environment comes from, lowest precedence first.
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    /// The image's `Env`.
    pub image: Vec<(String, String)>,
    /// The caller's own environment (`--inherit-env`): fills only what nothing set.
    pub inherited: Vec<(String, String)>,
    /// `--env-file` lines: override the image and the inherited.
    pub from_file: Vec<(String, String)>,
    /// `-e`: override everything.
    pub explicit: Vec<(String, String)>,
}

impl EnvSources {
    /// rkt's precedence: image < inherited (no override) < env-file (override) < explicit
    /// (override).
    pub fn merge(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self.image.iter().cloned().collect();
        for (key, value) in &self.inherited {
            env.entry(key.clone()).or_insert_with(|| value.clone());
        }
        env.extend(self.from_file.iter().cloned());
        env.extend(self.explicit.iter().cloned());
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(source: &str, target: &str) -> Mount {
        Mount {
            source: source.into(),
            target: target.into(),
            readonly: false,
            owner: None,
        }
    }

    #[test]
    fn an_app_is_named_after_the_last_segment_of_its_image() {
        for (image, name) in [
            ("busybox", "busybox"),
            ("docker.io/library/nginx:1.25", "nginx"),
            ("localhost:5000/team/My_App:v2", "my-app"),
            ("quay.io/coreos/etcd@sha256:abcd", "etcd"),
            ("example.com/x/__web.server__", "web-server"),
        ] {
            assert_eq!(app_name_from_image(image).unwrap(), name, "{image}");
        }
        // What sanitising leaves may still not be an ACName: refused, not guessed.
        for image in ["example.com/___", "registry/a__b"] {
            let err = app_name_from_image(image).unwrap_err().to_string();
            assert!(err.contains("give the app a name"), "{image}: {err}");
        }
    }

    #[test]
    fn duplicate_app_names_are_an_error() {
        check_unique_app_names(["web", "db"]).unwrap();
        let err = check_unique_app_names(["web", "db", "web"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"web\"") && err.contains("multiple apps"),
            "{err}"
        );
    }

    #[test]
    fn os_and_arch_follow_appcs_table() {
        check_os_arch(None, Some("sparc"), None).unwrap();
        check_os_arch(Some("linux"), None, None).unwrap();
        for (arch, variant) in [
            ("amd64", None),
            ("386", None),
            ("arm64", None),
            ("arm", Some("v6")),
            ("arm", Some("v7")),
            ("aarch64", None),
        ] {
            check_os_arch(Some("linux"), Some(arch), variant).unwrap();
        }
        let os = check_os_arch(Some("windows"), Some("amd64"), None)
            .unwrap_err()
            .to_string();
        assert!(
            os.contains("bad os \"windows\" (must be one of: linux)"),
            "{os}"
        );
        let arch = check_os_arch(Some("linux"), Some("riscv64"), None)
            .unwrap_err()
            .to_string();
        assert!(
            arch.contains(
                "bad arch \"riscv64\" for linux (must be one of: amd64, i386, aarch64, \
                 aarch64_be, armv6l, armv7l, armv7b)"
            ),
            "{arch}"
        );
    }

    #[test]
    fn app_mounts_override_the_pods_by_exact_target_first_winning() {
        // rkt's derived case: app [{v1,/a}] + global [{g1,/a},{g2,/b}] -> [{v1,/a},{g2,/b}].
        let merged = merge_mounts(
            &[mount("g1", "/a"), mount("g2", "/b")],
            &[mount("v1", "/a")],
        );
        assert_eq!(merged, [mount("v1", "/a"), mount("g2", "/b")]);
        // Exact paths only: /a/ is not /a; and within one list the first wins too.
        let merged = merge_mounts(&[mount("g", "/a/")], &[mount("x", "/a"), mount("y", "/a")]);
        assert_eq!(merged, [mount("x", "/a"), mount("g", "/a/")]);
    }

    #[test]
    fn environment_precedence_is_image_inherited_file_explicit() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let sources = EnvSources {
            image: vec![pair("PATH", "/bin"), pair("A", "image"), pair("B", "image")],
            inherited: vec![pair("A", "inherited"), pair("HOME", "/root")],
            from_file: vec![pair("B", "file"), pair("C", "file")],
            explicit: vec![pair("C", "explicit")],
        };
        let env = sources.merge();
        assert_eq!(env["PATH"], "/bin");
        assert_eq!(env["A"], "image", "inherited does not override");
        assert_eq!(env["HOME"], "/root", "inherited fills what is unset");
        assert_eq!(env["B"], "file");
        assert_eq!(env["C"], "explicit");
        assert_eq!(env.len(), 5);
    }
}
