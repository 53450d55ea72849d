//! An image's config blob (`oci_spec::image::ImageConfiguration`, which Docker's config also
//! parses as): the defaults a container inherits and the diff ids of its layers.

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

use crate::digest::sha256_hex_of;

/// What an image gives a container by default. Native image records store it, so its serde
/// form stays as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// The platform the image says it was built for (absent in records from before berth
    /// kept it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl From<&ImageConfiguration> for ImageConfig {
    fn from(config: &ImageConfiguration) -> ImageConfig {
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let platform = ImageConfig {
            os: Some(config.os().to_string()).filter(|s| !s.is_empty()),
            architecture: Some(config.architecture().to_string()).filter(|s| !s.is_empty()),
            variant: non_empty(config.variant()),
            ..ImageConfig::default()
        };
        let Some(c) = config.config() else {
            return platform;
        };
        ImageConfig {
            env: c.env().clone().unwrap_or_default(),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            working_dir: non_empty(c.working_dir()),
            user: non_empty(c.user()),
            ..platform
        }
    }
}

/// An image config, parsed and checked.
#[derive(Debug, Clone)]
pub struct ParsedConfig {
    pub oci: ImageConfiguration,
    pub defaults: ImageConfig,
    /// `sha256:` diff ids, base layer first.
    pub diff_ids: Vec<String>,
}

/// Parses a config blob; the error is the reason, for the caller to name the blob.
pub fn parse(bytes: &[u8]) -> Result<ParsedConfig, String> {
    let oci: ImageConfiguration = serde_json::from_slice(bytes)
        .map_err(|e| format!("the image config does not parse: {e}"))?;
    let diff_ids = oci.rootfs().diff_ids().clone();
    if let Some(bad) = diff_ids.iter().find(|d| sha256_hex_of(d).is_none()) {
        return Err(format!(
            "the image config lists diff id {bad:?}; berth reads sha256 digests only"
        ));
    }
    Ok(ParsedConfig {
        defaults: ImageConfig::from(&oci),
        diff_ids,
        oci,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_parse_with_defaults() {
        let hex = "b".repeat(64);
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
               "config":{{"Env":["A=1"],"Cmd":["sh"],"WorkingDir":"","User":"1000",
                          "ExposedPorts":{{"80/tcp":{{}}}},"Labels":null}},
               "rootfs":{{"type":"layers","diff_ids":["sha256:{hex}"]}},
               "docker_version":"25.0.0","container_config":{{}}}}"#
        );
        let parsed = parse(json.as_bytes()).unwrap();
        assert_eq!(parsed.diff_ids, [format!("sha256:{hex}")]);
        let d = &parsed.defaults;
        assert_eq!(d.env, ["A=1"]);
        assert_eq!(d.cmd, ["sh"]);
        assert!(d.entrypoint.is_empty());
        assert_eq!(d.working_dir, None);
        assert_eq!(d.user.as_deref(), Some("1000"));
        assert_eq!(
            parsed.oci.created().as_deref(),
            Some("2024-01-01T00:00:00Z")
        );

        assert_eq!(d.os.as_deref(), Some("linux"));

        // No `config` at all: nothing inherited but the platform.
        let bare = format!(
            r#"{{"architecture":"arm","variant":"v7","os":"linux","rootfs":{{"type":"layers","diff_ids":["sha256:{hex}"]}}}}"#
        );
        assert_eq!(
            parse(bare.as_bytes()).unwrap().defaults,
            ImageConfig {
                os: Some("linux".into()),
                architecture: Some("arm".into()),
                variant: Some("v7".into()),
                ..ImageConfig::default()
            }
        );
    }

    #[test]
    fn broken_configs_say_why() {
        assert!(parse(b"{").unwrap_err().contains("does not parse"));
        let sha1 = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha1:00"]}}"#;
        assert!(parse(sha1.as_bytes()).unwrap_err().contains("sha1:00"));
    }
}
