//! What berth needs from an image in containerd's content store: the manifest for this
//! platform, the config (defaults for the process and the layers' diff ids) and the chain id of
//! the top layer, which names the unpacked snapshot a container's rootfs starts from.

use berth_backend_native::images::ImageConfig;
use serde::Deserialize;

/// An OCI or Docker image config, the parts berth reads.
#[derive(Debug, Default, Deserialize)]
pub struct OciConfig {
    #[serde(default)]
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub config: Option<ProcessDefaults>,
    pub rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProcessDefaults {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl OciConfig {
    /// The defaults a container inherits, in the form the spec builder takes.
    pub fn defaults(&self) -> ImageConfig {
        let d = self.config.as_ref();
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        ImageConfig {
            env: d.and_then(|d| d.env.clone()).unwrap_or_default(),
            entrypoint: d.and_then(|d| d.entrypoint.clone()).unwrap_or_default(),
            cmd: d.and_then(|d| d.cmd.clone()).unwrap_or_default(),
            working_dir: d.and_then(|d| non_empty(&d.working_dir)),
            user: d.and_then(|d| non_empty(&d.user)),
        }
    }
}

/// A manifest or an index: which one is told by `mediaType` or by which list is present.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

impl Manifest {
    pub fn is_index(&self) -> bool {
        !self.manifests.is_empty()
    }

    /// The index entry for this host (`linux`, GOARCH naming), else the only entry.
    pub fn for_this_platform(&self) -> Option<&Descriptor> {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        self.manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .or_else(|| (self.manifests.len() == 1).then(|| &self.manifests[0]))
    }
}

/// The chain id of the last layer: `chain(0) = diff(0)`,
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_defaults_come_from_the_config() {
        let config: OciConfig = serde_json::from_str(
            r#"{"created":"2024-01-01T00:00:00Z","config":{"Env":["A=1"],"Cmd":["sh"],
                "WorkingDir":"","User":"1000"},"rootfs":{"type":"layers","diff_ids":["sha256:x"]}}"#,
        )
        .unwrap();
        let defaults = config.defaults();
        assert_eq!(defaults.cmd, ["sh"]);
        assert_eq!(defaults.working_dir, None);
        assert_eq!(defaults.user.as_deref(), Some("1000"));
    }
}
