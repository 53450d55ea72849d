//! Pulling images from an OCI distribution registry (Docker Hub, ghcr.io, a local
//! `registry:2`), for the backends whose daemon cannot pull by itself: the manifest for this
//! platform, its config and its layers, each checked against its digest before a backend sees
//! it. A registry that asks for a bearer token gets an anonymous one, as `docker pull` does for
//! public images.
//!
//! The blocking HTTP client runs on a blocking thread; [`pull`] is the async face.

pub mod reference;

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use berth_core::{Error, PullEvent, PullProgress, Result};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use reference::{Reference, normalise};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One content-addressed blob: a manifest, a config or a layer.
#[derive(Debug, Clone)]
pub struct Blob {
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: impl Into<String>, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.into(),
            digest: sha256_digest(&bytes),
            bytes,
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `chain(n) = sha256(chain(n-1) + " " + diff(n))`, as the OCI image spec defines it.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    let mut ids = diff_ids.iter();
    let mut chain = ids.next()?.clone();
    for diff in ids {
        chain = sha256_digest(format!("{chain} {diff}").as_bytes());
    }
    Some(chain)
}

/// An image as its registry serves it for this platform, every blob verified.
#[derive(Debug)]
pub struct Image {
    /// The normalised reference it was pulled as.
    pub name: String,
    /// The platform's manifest, byte for byte (so its digest is the registry's).
    pub manifest: Blob,
    pub config: Blob,
    /// Base layer first.
    pub layers: Vec<Blob>,
}

impl Image {
    /// The config's `rootfs.diff_ids`, base first.
    pub fn diff_ids(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Config {
            rootfs: RootFs,
        }
        #[derive(Deserialize)]
        struct RootFs {
            diff_ids: Vec<String>,
        }
        let config: Config = serde_json::from_slice(&self.config.bytes).map_err(|e| {
            corrupt(
                &self.config.digest,
                format!("the config does not parse: {e}"),
            )
        })?;
        if config.rootfs.diff_ids.len() != self.layers.len() {
            return Err(corrupt(
                &self.config.digest,
                format!(
                    "the config lists {} layers, the manifest {}",
                    config.rootfs.diff_ids.len(),
                    self.layers.len()
                ),
            ));
        }
        Ok(config.rootfs.diff_ids)
    }

    /// Writes the image as an OCI layout at `dir` (which must exist), named by
    /// `org.opencontainers.image.ref.name`, for a backend that imports layouts.
    pub fn write_oci_layout(&self, dir: &std::path::Path) -> Result<()> {
        let blobs = dir.join("blobs").join("sha256");
        berth_core::store::create_dir_all(&blobs)?;
        for blob in [&self.manifest, &self.config]
            .into_iter()
            .chain(&self.layers)
        {
            let hex = blob.digest.trim_start_matches("sha256:");
            write(&blobs.join(hex), &blob.bytes)?;
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{
                "mediaType": self.manifest.media_type,
                "digest": self.manifest.digest,
                "size": self.manifest.bytes.len(),
                "annotations": {"org.opencontainers.image.ref.name": self.name},
            }],
        });
        write(&dir.join("index.json"), index.to_string().as_bytes())?;
        write(
            &dir.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
    }
}

fn write(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Pulls `reference` (normalised first), reporting each layer's download to `progress`.
pub async fn pull(reference: &str, progress: &mut dyn PullProgress) -> Result<Image> {
    let reference = Reference::parse(reference)?;
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let fetch = tokio::task::spawn_blocking(move || {
        Session::new(reference).fetch(&mut |event| {
            let _ = events.send(event);
        })
    });
    while let Some(event) = received.recv().await {
        progress.event(&event);
    }
    fetch.await.map_err(|e| Error::Backend {
        backend: "registry".into(),
        operation: "pull",
        object: String::new(),
        message: format!("the pull thread failed: {e}"),
    })?
}

/// One pull from one repository, holding its bearer token once it has one.
struct Session {
    reference: Reference,
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// A manifest or an index: whichever fields the document has.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl Session {
    fn new(reference: Reference) -> Session {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                    .build(),
            )
            .build()
            .into();
        Session {
            base: reference.base_url(),
            reference,
            agent,
            token: None,
        }
    }

    fn fetch(&mut self, progress: &mut dyn FnMut(PullEvent)) -> Result<Image> {
        let object = self.reference.object.clone();
        let mut manifest = self.manifest(&object)?;
        let mut document = parse_document(&manifest)?;
        // An index (multi-platform image): the one manifest for linux on this machine.
        if document.config.is_none() {
            let wanted = berth_core::go_arch();
            let chosen = document
                .manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == wanted)
                })
                .ok_or_else(|| Error::NotFound {
                    kind: "image platform",
                    name: format!("linux/{wanted} in {}", self.reference.name),
                    hint: "the image is not built for this machine".into(),
                })?;
            manifest = self.manifest(&chosen.digest.clone())?;
            document = parse_document(&manifest)?;
        }
        let Some(config) = document.config else {
            return Err(corrupt(
                &manifest.digest,
                "it is neither a manifest nor an index",
            ));
        };
        let config = self.blob(&config, &mut |_| {})?;
        let mut layers = Vec::with_capacity(document.layers.len());
        for layer in &document.layers {
            let short = short(&layer.digest);
            let mut report = |current| {
                progress(PullEvent {
                    layer: Some(short.clone()),
                    status: "Downloading".into(),
                    current: Some(current),
                    total: Some(layer.size),
                })
            };
            layers.push(self.blob(layer, &mut report)?);
            progress(PullEvent {
                layer: Some(short),
                status: "Download complete".into(),
                ..Default::default()
            });
        }
        Ok(Image {
            name: self.reference.name.clone(),
            manifest,
            config,
            layers,
        })
    }

    /// The manifest or index `object` (a tag or digest) names, checked when named by digest.
    fn manifest(&mut self, object: &str) -> Result<Blob> {
        let url = format!(
            "{}/v2/{}/manifests/{object}",
            self.base, self.reference.repository
        );
        let accept = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ");
        let response = self.get(&url, Some(&accept))?;
        let media_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut bytes = Vec::new();
        response
            .into_body()
            .into_reader()
            .take(16 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("downloading {url}"), e))?;
        let blob = Blob::new(media_type, bytes);
        if object.starts_with("sha256:") && blob.digest != object {
            return Err(corrupt(
                object,
                format!("the registry served {}", blob.digest),
            ));
        }
        Ok(blob)
    }

    /// The blob `descriptor` names, read in 1 MiB steps and checked against size and digest.
    fn blob(&mut self, descriptor: &Descriptor, progress: &mut dyn FnMut(u64)) -> Result<Blob> {
        let url = format!(
            "{}/v2/{}/blobs/{}",
            self.base, self.reference.repository, descriptor.digest
        );
        let mut reader = self.get(&url, None)?.into_body().into_reader();
        let mut bytes = Vec::with_capacity(descriptor.size as usize);
        let mut chunk = vec![0; 1 << 20];
        loop {
            let n = reader
                .read(&mut chunk)
                .map_err(|e| Error::io(format!("downloading {url}"), e))?;
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
            if bytes.len() as u64 > descriptor.size {
                break;
            }
            progress(bytes.len() as u64);
        }
        let blob = Blob::new(descriptor.media_type.clone(), bytes);
        if blob.bytes.len() as u64 != descriptor.size || blob.digest != descriptor.digest {
            return Err(corrupt(
                &descriptor.digest,
                format!(
                    "the registry served {} bytes with digest {}, the manifest says {} bytes",
                    blob.bytes.len(),
                    blob.digest,
                    descriptor.size
                ),
            ));
        }
        Ok(blob)
    }

    /// `GET url`, answering one bearer challenge with an anonymous token.
    fn get(&mut self, url: &str, accept: Option<&str>) -> Result<ureq::http::Response<ureq::Body>> {
        for attempt in 0..2 {
            let mut request = self.agent.get(url);
            if let Some(accept) = accept {
                request = request.header("Accept", accept);
            }
            if let Some(token) = &self.token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            let response = request
                .call()
                .map_err(|e| self.unavailable(e.to_string()))?;
            match response.status().as_u16() {
                200 => return Ok(response),
                401 if attempt == 0 => {
                    let challenge = response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    self.token = Some(self.anonymous_token(&challenge)?);
                }
                // Docker Hub answers 401 for a repository that does not exist, as for a
                // private one; `docker pull` says both in one message, and so does berth.
                401 | 403 | 404 => {
                    return Err(Error::NotFound {
                        kind: "image",
                        name: self.reference.name.clone(),
                        hint: format!(
                            "{} does not serve it; check the name and tag. berth pulls \
                             anonymously, so a private repository is not found either",
                            self.reference.registry
                        ),
                    });
                }
                status => return Err(self.unavailable(format!("HTTP {status} for {url}"))),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Answers `Bearer realm="…",service="…",scope="…"` with an anonymous token.
    fn anonymous_token(&self, challenge: &str) -> Result<String> {
        let params = parse_challenge(challenge).ok_or_else(|| {
            self.unavailable(format!(
                "it wants authentication berth does not speak: {challenge:?}"
            ))
        })?;
        let realm = params.get("realm").cloned().unwrap_or_default();
        let mut request = self.agent.get(&realm);
        for key in ["service", "scope"] {
            if let Some(value) = params.get(key) {
                request = request.query(key, value);
            }
        }
        let response = request
            .call()
            .map_err(|e| self.unavailable(e.to_string()))?;
        if response.status() != 200 {
            return Err(self.unavailable(format!(
                "its token service {realm} answered HTTP {}",
                response.status()
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_reader(response.into_body().into_reader())
            .map_err(|e| self.unavailable(format!("its token does not parse: {e}")))?;
        token
            .token
            .or(token.access_token)
            .ok_or_else(|| self.unavailable(format!("the token service {realm} sent no token")))
    }

    fn unavailable(&self, reason: String) -> Error {
        Error::Unavailable {
            service: format!("registry {}", self.reference.registry),
            endpoint: self.base.clone(),
            reason,
            hint: "is the registry up and the name right?".into(),
        }
    }
}

fn parse_document(blob: &Blob) -> Result<Document> {
    serde_json::from_slice(&blob.bytes)
        .map_err(|e| corrupt(&blob.digest, format!("the manifest does not parse: {e}")))
}

/// `Bearer realm="https://auth",service="registry",scope="repository:x:pull"` as a map.
fn parse_challenge(challenge: &str) -> Option<HashMap<String, String>> {
    let rest = challenge.strip_prefix("Bearer ")?;
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while let Some((key, after)) = rest.split_once("=\"") {
        let (value, after) = after.split_once('"')?;
        params.insert(key.trim().to_string(), value.to_string());
        rest = after.trim_start_matches(',').trim();
    }
    params.contains_key("realm").then_some(params)
}

/// `sha256:0123456789ab…` -> `0123456789ab`, as docker shows layers.
fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

fn corrupt(digest: &str, message: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "registry download".into(),
        path: digest.into(),
        message: message.into(),
        hint: "retry the pull; if it persists, the registry's copy is damaged".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "sha256:aaaa".to_string();
        let b = "sha256:bbbb".to_string();
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(std::slice::from_ref(&a)).unwrap(), a);
        let expected = format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest("sha256:aaaa sha256:bbbb"))
        );
        assert_eq!(chain_id(&[a, b]).unwrap(), expected);
    }

    #[test]
    fn bearer_challenges_parse() {
        let params = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        )
        .unwrap();
        assert_eq!(params["realm"], "https://auth.docker.io/token");
        assert_eq!(params["service"], "registry.docker.io");
        assert_eq!(params["scope"], "repository:library/alpine:pull");
        assert!(parse_challenge(r#"Basic realm="x""#).is_none());
        assert!(parse_challenge("Bearer service=\"x\"").is_none());
    }

    #[test]
    fn a_pulled_image_writes_an_oci_layout_naming_it() {
        let layer = Blob::new("application/vnd.oci.image.layer.v1.tar", vec![0; 1024]);
        let config = Blob::new(
            OCI_CONFIG,
            br#"{"rootfs":{"type":"layers","diff_ids":["sha256:00"]}}"#.to_vec(),
        );
        let image = Image {
            name: "127.0.0.1:5000/x:1".into(),
            manifest: Blob::new(OCI_MANIFEST, b"{}".to_vec()),
            config,
            layers: vec![layer.clone()],
        };
        assert_eq!(image.diff_ids().unwrap(), ["sha256:00"]);
        let dir = tempfile::tempdir().unwrap();
        image.write_oci_layout(dir.path()).unwrap();
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
            "127.0.0.1:5000/x:1"
        );
        let hex = layer.digest.trim_start_matches("sha256:");
        assert_eq!(
            std::fs::read(dir.path().join("blobs/sha256").join(hex)).unwrap(),
            layer.bytes
        );
    }
}
