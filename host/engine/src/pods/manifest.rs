//! `pod.toml`, what `berth pod run|prepare --manifest` reads: the pod's own settings (those of
//! `berth pod create`), pod-wide mounts and environment, and its apps. Paths in it (env
//! files) are relative to the manifest's directory.
//!
//! ```toml
//! name = "web"
//! ports = ["8080:80"]
//! mounts = ["data:/data"]          # every app's, unless an app mounts the same target
//! inherit-env = true                # rkt's --inherit-env
//! env-file = ["pod.env"]
//!
//! [[app]]
//! image = "busybox:local"           # the app is named "busybox" unless `name` says otherwise
//! command = ["httpd", "-f", "-p", "80"]
//!
//! [[app]]
//! name = "probe"
//! image = "busybox:local"
//! env = { URL = "http://127.0.0.1/" }
//! stop-pod-on-exit = true           # when this app exits, the pod stops (the others too)
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use berth_core::{ContainerSpec, Error, HostEntry, Mount, PortMapping, Result};
use serde::Deserialize;

use super::{AppRequest, PodSpec};

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct Manifest {
    name: String,
    labels: BTreeMap<String, String>,
    hostname: Option<String>,
    backend: Option<String>,
    networks: Vec<String>,
    ports: Vec<String>,
    dns: Vec<String>,
    dns_search: Vec<String>,
    dns_options: Vec<String>,
    add_hosts: Vec<String>,
    mounts: Vec<String>,
    /// The pod cgroup's limits, as `--memory` and `--cpus` write them.
    memory: Option<String>,
    cpus: Option<String>,
    share_pid: bool,
    inherit_env: bool,
    env_file: Vec<String>,
    env: BTreeMap<String, String>,
    #[serde(rename = "app")]
    apps: Vec<App>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
struct App {
    name: Option<String>,
    image: String,
    command: Vec<String>,
    working_dir: Option<String>,
    env_file: Vec<String>,
    env: BTreeMap<String, String>,
    mounts: Vec<String>,
    labels: BTreeMap<String, String>,
    /// This app's exit (whatever its code) stops the whole pod.
    stop_pod_on_exit: bool,
}

/// What the command line adds to a manifest (it wins over the manifest's own settings).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub name: Option<String>,
    pub inherit_env: bool,
    pub env_files: Vec<std::path::PathBuf>,
    pub env: Vec<(String, String)>,
}

/// The pod and its apps a manifest file describes, with the environment of the calling
/// process for `inherit-env`.
pub fn read(
    path: &Path,
    overrides: &Overrides,
    environment: impl Fn() -> Vec<(String, String)>,
) -> Result<(PodSpec, Vec<AppRequest>)> {
    let what = format!("pod manifest {}", path.display());
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {what}"), e))?;
    let manifest: Manifest =
        toml::from_str(&text).map_err(|e| Error::invalid(&what, e.to_string()))?;
    let invalid = |field: &str, e: Error| Error::invalid(format!("{what}: {field}"), e.to_string());
    if manifest.apps.is_empty() {
        return Err(Error::invalid(&what, "it has no apps")
            .with_hint("add an [[app]] table with at least an image"));
    }
    let parsed = |field: &str, items: &[String], parse: fn(&str) -> Result<Mount>| {
        items
            .iter()
            .map(|m| parse(m).map_err(|e| invalid(field, e)))
            .collect::<Result<Vec<_>>>()
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut pod_file_env = Vec::new();
    for file in &manifest.env_file {
        pod_file_env.extend(read_env_file(&dir.join(file))?);
    }
    for file in &overrides.env_files {
        pod_file_env.extend(read_env_file(file)?);
    }
    let inherited = if manifest.inherit_env || overrides.inherit_env {
        environment()
    } else {
        Vec::new()
    };
    let spec = PodSpec {
        name: overrides.name.clone().unwrap_or(manifest.name),
        labels: manifest.labels,
        hostname: manifest.hostname,
        backend: manifest.backend,
        networks: manifest.networks,
        ports: manifest
            .ports
            .iter()
            .map(|p| PortMapping::parse(p).map_err(|e| invalid("ports", e)))
            .collect::<Result<_>>()?,
        dns: manifest.dns,
        dns_search: manifest.dns_search,
        dns_options: manifest.dns_options,
        extra_hosts: manifest
            .add_hosts
            .iter()
            .map(|h| HostEntry::parse(h).map_err(|e| invalid("add-hosts", e)))
            .collect::<Result<_>>()?,
        mounts: parsed("mounts", &manifest.mounts, Mount::parse)?,
        limits: berth_core::Limits {
            memory_bytes: manifest
                .memory
                .as_deref()
                .map(|m| berth_core::parse_size(m).map_err(|e| invalid("memory", e)))
                .transpose()?,
            cpu_millis: manifest
                .cpus
                .as_deref()
                .map(|c| berth_core::parse_cpus(c).map_err(|e| invalid("cpus", e)))
                .transpose()?,
            pids: None,
        },
        share_pid: manifest.share_pid,
        ..PodSpec::default()
    };
    let mut apps = Vec::new();
    for (i, app) in manifest.apps.into_iter().enumerate() {
        let field = format!("app {}", i + 1);
        if app.image.is_empty() {
            return Err(
                Error::invalid(format!("{what}: {field}"), "it names no image")
                    .with_hint("add image = \"NAME\" to the [[app]] table"),
            );
        }
        let mut from_file = pod_file_env.clone();
        for file in &app.env_file {
            from_file.extend(read_env_file(&dir.join(file))?);
        }
        let mut env = manifest.env.clone();
        env.extend(app.env);
        env.extend(overrides.env.iter().cloned());
        apps.push(AppRequest {
            name: app.name,
            spec: ContainerSpec {
                image: app.image,
                command: app.command,
                working_dir: app.working_dir,
                env,
                labels: app.labels,
                mounts: parsed(&format!("{field} mounts"), &app.mounts, Mount::parse)?,
                ..ContainerSpec::default()
            },
            inherited: inherited.clone(),
            from_file,
            stops_pod: app.stop_pod_on_exit,
        });
    }
    Ok((spec, apps))
}

/// `KEY=VALUE` lines; blank lines and `#` comments are skipped, as in docker's `--env-file`.
pub fn read_env_file(path: &Path) -> Result<Vec<(String, String)>> {
    let what = format!("env file {}", path.display());
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {what}"), e))?;
    let mut env = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = berth_core::parse_key_value(&format!("{what}, line {}", n + 1), line)?;
        env.push((key, value));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_manifest_gives_the_pod_and_its_apps_with_every_env_source() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "pod.env",
            "# pod-wide\nA=pod-file\n\nB=pod-file\n",
        );
        write(dir.path(), "app.env", "B=app-file\n");
        let path = write(
            dir.path(),
            "pod.toml",
            r#"
name = "web"
ports = ["8080:80"]
mounts = ["data:/data"]
inherit-env = true
env-file = ["pod.env"]
env = { E = "pod" }

[[app]]
image = "busybox:local"
command = ["httpd", "-f"]

[[app]]
name = "probe"
image = "busybox:local"
env-file = ["app.env"]
env = { E = "app" }
mounts = ["/srv:/data:ro"]
"#,
        );
        let overrides = Overrides {
            env: vec![("X".into(), "cli".into())],
            ..Overrides::default()
        };
        let (pod, apps) =
            read(&path, &overrides, || vec![("HOME".into(), "/root".into())]).unwrap();
        assert_eq!(pod.name, "web");
        assert_eq!(pod.ports.len(), 1);
        assert_eq!(pod.mounts[0].target, "/data");
        assert_eq!(apps.len(), 2);
        assert_eq!(apps[0].name, None);
        assert_eq!(apps[0].spec.command, ["httpd", "-f"]);
        assert_eq!(apps[0].inherited, [("HOME".into(), "/root".into())]);
        assert_eq!(apps[0].spec.env["E"], "pod");
        assert_eq!(apps[1].name.as_deref(), Some("probe"));
        assert_eq!(apps[1].spec.env["E"], "app");
        assert_eq!(apps[1].spec.env["X"], "cli");
        let b: Vec<&str> = apps[1]
            .from_file
            .iter()
            .filter(|(k, _)| k == "B")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(
            b,
            ["pod-file", "app-file"],
            "the app's file comes later and wins"
        );
        assert!(apps[1].spec.mounts[0].readonly);
    }

    #[test]
    fn bad_manifests_name_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        for (text, needle) in [
            ("name = \"x\"\n", "it has no apps"),
            (
                "nmae = \"x\"\n[[app]]\nimage = \"b\"\n",
                "unknown field `nmae`",
            ),
            ("[[app]]\ncommand = [\"x\"]\n", "app 1: it names no image"),
            ("ports = [\"nope\"]\n[[app]]\nimage = \"b\"\n", "ports"),
            (
                "[[app]]\nimage = \"b\"\nenv-file = [\"missing.env\"]\n",
                "missing.env",
            ),
        ] {
            let path = write(dir.path(), "pod.toml", text);
            let err = read(&path, &Overrides::default(), Vec::new)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
        let path = write(dir.path(), "bad.env", "A=1\nnot a pair\n");
        let err = read_env_file(&path).unwrap_err().to_string();
        assert!(err.contains("bad.env, line 2"), "{err}");
    }
}
