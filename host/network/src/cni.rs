//! Speaking CNI (spec 1.0.0) to plugin binaries: one exec per plugin, its network
//! configuration on stdin, a result or a CNI error on stdout.
//!
//! A network is a conflist: ADD runs its plugins in order, each given the one before's result
//! as `prevResult`; DEL runs them in reverse with the ADD's result; CHECK in order with it.
//! Runtime arguments (`portMappings`, `ips`) reach only the plugins that declare the
//! capability, as libcni passes them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use berth_core::{Error, Result};
use serde_json::{Map, Value, json};
use tokio::io::AsyncWriteExt;

/// The CNI version berth's conflists declare (Debian's plugins speak 0.1.0-1.0.0).
pub const CNI_VERSION: &str = "1.0.0";

/// How long one plugin may take before berth gives up on it.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        }
    }
}

/// Where the interface goes.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
}

/// Runs plugins found in a list of directories (`CNI_PATH`).
#[derive(Debug, Clone)]
pub struct Runner {
    bin_dirs: Vec<PathBuf>,
}

impl Runner {
    pub fn new(bin_dirs: Vec<PathBuf>) -> Runner {
        Runner { bin_dirs }
    }

    /// The binary of plugin `kind`, from the first directory that has it.
    pub fn find(&self, kind: &str) -> Result<PathBuf> {
        let valid = !kind.is_empty() && !kind.contains('/') && kind != "." && kind != "..";
        let found = valid
            .then(|| {
                self.bin_dirs
                    .iter()
                    .map(|d| d.join(kind))
                    .find(|p| p.is_file())
            })
            .flatten();
        found.ok_or_else(|| {
            Error::not_found(berth_core::Object::Network, format!("CNI plugin {kind}")).with_hint(
                format!(
                    "looked in {}; install containernetworking-plugins or set [network].cni-bin-dirs",
                    self.dirs()
                ),
            )
        })
    }

    fn dirs(&self) -> String {
        self.bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// ADD: every plugin in order; the last plugin's result. On a failure the plugins that
    /// succeeded are DELeted again, so a failed ADD leaves nothing.
    pub async fn add(&self, list: &Value, target: Target<'_>, runtime: &Value) -> Result<Value> {
        let mut previous: Option<Value> = None;
        for (done, plugin) in plugins(list)?.iter().enumerate() {
            match self
                .invoke(
                    list,
                    plugin,
                    Command::Add,
                    target,
                    runtime,
                    previous.as_ref(),
                )
                .await
            {
                Ok(result) => previous = result.or(previous),
                Err(e) => {
                    let partial = json!({ "plugins": plugins(list)?[..=done] });
                    let partial = merge_header(list, partial);
                    if let Err(undo) = self.del(&partial, target, runtime, previous.as_ref()).await
                    {
                        tracing::warn!(error = %undo, "cannot undo a failed CNI ADD");
                    }
                    return Err(e);
                }
            }
        }
        Ok(previous.unwrap_or_else(|| json!({ "cniVersion": version(list) })))
    }

    /// DEL: every plugin in reverse, each given the ADD's result when it is known. Every
    /// plugin runs even when one fails (so a DEL frees what it can); the first failure is the
    /// error.
    pub async fn del(
        &self,
        list: &Value,
        target: Target<'_>,
        runtime: &Value,
        added: Option<&Value>,
    ) -> Result<()> {
        let mut first_error = None;
        for plugin in plugins(list)?.iter().rev() {
            if let Err(e) = self
                .invoke(list, plugin, Command::Del, target, runtime, added)
                .await
            {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// CHECK: every plugin in order against the ADD's result.
    pub async fn check(
        &self,
        list: &Value,
        target: Target<'_>,
        runtime: &Value,
        added: &Value,
    ) -> Result<()> {
        for plugin in plugins(list)? {
            self.invoke(list, plugin, Command::Check, target, runtime, Some(added))
                .await?;
        }
        Ok(())
    }

    async fn invoke(
        &self,
        list: &Value,
        plugin: &Value,
        command: Command,
        target: Target<'_>,
        runtime: &Value,
        previous: Option<&Value>,
    ) -> Result<Option<Value>> {
        let network = list["name"].as_str().unwrap_or_default().to_string();
        let kind = plugin["type"].as_str().unwrap_or_default().to_string();
        let failed = |message: String| Error::NetworkPlugin {
            network: network.clone(),
            plugin: kind.clone(),
            command: command.as_str(),
            container: target.container_id.to_string(),
            message,
        };
        let binary = self.find(&kind)?;
        let config = plugin_config(list, plugin, runtime, previous);
        let mut child = tokio::process::Command::new(&binary)
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", target.container_id)
            .env("CNI_NETNS", target.netns)
            .env("CNI_IFNAME", target.ifname)
            .env("CNI_ARGS", "IgnoreUnknown=1")
            .env("CNI_PATH", self.dirs())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot run {}: {e}", binary.display())))?;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(config.to_string().as_bytes())
            .await
            .map_err(|e| failed(format!("cannot write its configuration: {e}")))?;
        drop(stdin);
        let output = tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| failed(format!("no answer within {}s", PLUGIN_TIMEOUT.as_secs())))?
            .map_err(|e| failed(format!("cannot wait for it: {e}")))?;
        tracing::debug!(network, plugin = kind, command = command.as_str(), status = %output.status, "CNI plugin ran");
        if !output.status.success() {
            return Err(failed(error_message(&output.stdout, &output.stderr)));
        }
        if command != Command::Add || output.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&output.stdout)
            .map(Some)
            .map_err(|e| failed(format!("its result is not JSON: {e}")))
    }
}

/// The plugins of a conflist.
fn plugins(list: &Value) -> Result<&Vec<Value>> {
    list["plugins"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Error::invalid(
                format!(
                    "CNI network {:?}",
                    list["name"].as_str().unwrap_or_default()
                ),
                "its conflist has no plugins",
            )
        })
}

fn version(list: &Value) -> &str {
    list["cniVersion"].as_str().unwrap_or(CNI_VERSION)
}

/// `partial` with `list`'s name and version.
fn merge_header(list: &Value, mut partial: Value) -> Value {
    partial["name"] = list["name"].clone();
    partial["cniVersion"] = list["cniVersion"].clone();
    partial
}

/// One plugin's stdin: its own config, the list's name and version, the runtime arguments it
/// declares a capability for, and the previous result.
pub fn plugin_config(
    list: &Value,
    plugin: &Value,
    runtime: &Value,
    previous: Option<&Value>,
) -> Value {
    let mut config = plugin.as_object().cloned().unwrap_or_default();
    config.insert("name".into(), list["name"].clone());
    config.insert("cniVersion".into(), json!(version(list)));
    let mut runtime_config = Map::new();
    if let (Some(capabilities), Some(runtime)) =
        (plugin["capabilities"].as_object(), runtime.as_object())
    {
        for (key, value) in runtime {
            if capabilities.get(key) == Some(&Value::Bool(true)) {
                runtime_config.insert(key.clone(), value.clone());
            }
        }
    }
    config.remove("capabilities");
    if !runtime_config.is_empty() {
        config.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    if let Some(previous) = previous {
        config.insert("prevResult".into(), previous.clone());
    }
    Value::Object(config)
}

/// A CNI error (`{"code", "msg", "details"}`) as one line, else what the plugin printed.
fn error_message(stdout: &[u8], stderr: &[u8]) -> String {
    if let Ok(error) = serde_json::from_slice::<Value>(stdout)
        && let Some(msg) = error["msg"].as_str()
    {
        let details = error["details"].as_str().filter(|d| !d.is_empty());
        let text = match details {
            Some(details) => format!("{msg}: {details}"),
            None => msg.to_string(),
        };
        return berth_core::text::escaped(&text).into_owned();
    }
    let text = String::from_utf8_lossy(if stdout.is_empty() { stderr } else { stdout });
    berth_core::text::escaped(text.trim()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_gets_only_the_runtime_arguments_it_declares() {
        let list = json!({"cniVersion": "1.0.0", "name": "web", "plugins": []});
        let portmap = json!({"type": "portmap", "capabilities": {"portMappings": true}});
        let runtime = json!({"portMappings": [{"hostPort": 8080}], "ips": ["10.0.0.5/24"]});
        let prev = json!({"ips": []});
        let config = plugin_config(&list, &portmap, &runtime, Some(&prev));
        assert_eq!(
            config,
            json!({
                "type": "portmap", "name": "web", "cniVersion": "1.0.0",
                "runtimeConfig": {"portMappings": [{"hostPort": 8080}]},
                "prevResult": {"ips": []},
            })
        );
        let bridge = json!({"type": "bridge"});
        assert_eq!(
            plugin_config(&list, &bridge, &runtime, None),
            json!({"type": "bridge", "name": "web", "cniVersion": "1.0.0"})
        );
    }

    #[test]
    fn errors_are_the_plugins_own_words_escaped() {
        let stdout = br#"{"code": 11, "msg": "failed to allocate", "details": "range full"}"#;
        assert_eq!(error_message(stdout, b""), "failed to allocate: range full");
        assert_eq!(error_message(b"", b"boom\x1b[2J\n"), "boom\\x1b[2J");
    }

    #[test]
    fn plugins_are_found_by_name_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bridge"), "").unwrap();
        let runner = Runner::new(vec!["/nonexistent".into(), dir.path().into()]);
        assert_eq!(runner.find("bridge").unwrap(), dir.path().join("bridge"));
        assert!(runner.find("../bridge").is_err());
        let missing = runner.find("macvtap").unwrap_err().to_string();
        assert!(missing.contains("containernetworking-plugins"), "{missing}");
    }
}
