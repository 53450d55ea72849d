//! What the CRI knows of a sandbox or container that berth's records do not: the kubelet's
//! metadata and annotations, kept as one JSON label on the pod or container (so plugins see
//! them with the Kubernetes labels), and the berth names made from that metadata.
//!
//! A berth name is a DNS label (what the default name policy asks for): the kubelet's names,
//! lower-cased, with a hash of the whole metadata at the end, so two attempts or two
//! namespaces never share one.

use std::collections::{BTreeMap, HashMap};

use berth_core::Error;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The label holding a sandbox's [`SandboxMeta`]; only pods with it are the CRI's.
pub const SANDBOX_LABEL: &str = "berth.cri/sandbox";
/// The label holding a container's [`ContainerMeta`]; only containers with it are the CRI's.
pub const CONTAINER_LABEL: &str = "berth.cri/container";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SandboxMeta {
    pub name: String,
    pub uid: String,
    pub namespace: String,
    pub attempt: u32,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub log_directory: String,
    #[serde(default)]
    pub runtime_handler: String,
    /// The pod's PID namespace mode as asked (POD, CONTAINER), to report it back.
    #[serde(default)]
    pub pid_mode: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub sandbox: String,
    pub name: String,
    pub attempt: u32,
    /// The image as the kubelet named it.
    pub image: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub log_path: String,
}

/// The labels a berth object gets: the kubelet's own, and `meta` under `key`.
pub fn labels_with<T: Serialize>(
    kubelet: &HashMap<String, String>,
    key: &str,
    meta: &T,
) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = kubelet
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(
        key.into(),
        serde_json::to_string(meta).expect("CRI metadata serialises"),
    );
    labels
}

/// The metadata under `key`, or `None` for an object the CRI did not make.
pub fn read<T: for<'de> Deserialize<'de>>(
    labels: &BTreeMap<String, String>,
    key: &str,
) -> Option<T> {
    serde_json::from_str(labels.get(key)?).ok()
}

/// The kubelet's labels: berth's without the CRI's own.
pub fn kubelet_labels(labels: &BTreeMap<String, String>) -> HashMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !k.starts_with("berth.cri/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A DNS label of at most 63 bytes from `parts`, ending in a hash of `identity`.
pub fn dns_name(parts: &[&str], identity: &str) -> String {
    let hash = hex::encode(&Sha256::digest(identity.as_bytes())[..5]);
    let mut readable = String::new();
    for part in parts {
        for c in part.chars() {
            let c = c.to_ascii_lowercase();
            let c = if c.is_ascii_alphanumeric() { c } else { '-' };
            if c != '-' || !(readable.is_empty() || readable.ends_with('-')) {
                readable.push(c);
            }
        }
        if !readable.is_empty() && !readable.ends_with('-') {
            readable.push('-');
        }
    }
    readable.truncate(63 - hash.len());
    if !readable.is_empty() && !readable.ends_with('-') {
        readable.pop();
        readable.push('-');
    }
    format!("{readable}{hash}")
}

/// A pod's berth name from its metadata.
pub fn sandbox_name(meta: &SandboxMeta) -> String {
    let identity = format!(
        "{}\0{}\0{}\0{}",
        meta.name, meta.namespace, meta.uid, meta.attempt
    );
    dns_name(&[&meta.name, &meta.namespace], &identity)
}

/// A container's berth name (names are host-wide) and its app name in the pod.
pub fn container_names(meta: &ContainerMeta, pod_name: &str) -> (String, String) {
    let identity = format!("{}\0{}\0{}", meta.sandbox, meta.name, meta.attempt);
    let name = dns_name(&[&meta.name, pod_name], &identity);
    let app = dns_name(&[&meta.name], &identity);
    (name, app)
}

/// A required field the kubelet left out.
pub fn missing(field: &str) -> Error {
    Error::invalid(format!("CRI request field {field}"), "it is missing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_labels_come_back_without_berths_own() {
        let labels: HashMap<String, String> =
            [("io.kubernetes.pod.name".to_string(), "web".to_string())].into();
        let meta = ContainerMeta {
            name: "app".into(),
            ..ContainerMeta::default()
        };
        let kept = labels_with(&labels, CONTAINER_LABEL, &meta);
        assert_eq!(kubelet_labels(&kept), labels);
        assert_eq!(read::<ContainerMeta>(&kept, CONTAINER_LABEL), Some(meta));
        assert_eq!(read::<SandboxMeta>(&kept, SANDBOX_LABEL), None);
    }

    #[test]
    fn names_are_dns_labels_that_tell_attempts_and_namespaces_apart() {
        let meta = SandboxMeta {
            name: "Web_Server.v2".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            attempt: 0,
            ..SandboxMeta::default()
        };
        let name = sandbox_name(&meta);
        assert!(name.starts_with("web-server-v2-default-"), "{name}");
        berth_core::validate::container_name(&name).unwrap();
        let again = SandboxMeta {
            attempt: 1,
            ..meta.clone()
        };
        assert_ne!(sandbox_name(&again), name);
        let long = SandboxMeta {
            name: "x".repeat(200),
            ..meta
        };
        let name = sandbox_name(&long);
        assert!(name.len() <= 63, "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        );
        assert!(!name.contains("--"), "{name}");
    }
}
