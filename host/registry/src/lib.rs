//! Pulling images from an OCI distribution registry (Docker Hub, ghcr.io, a local
//! `registry:2`), for the backends whose daemon cannot pull by itself: the manifest for this
//! platform, its config and its layers, each checked against its digest before a backend sees
//! it. A registry that asks for a bearer token gets an anonymous one, as `docker pull` does for
//! public images.
//!
//! The blocking HTTP client runs on a blocking thread; [`pull`] is the async face.

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use berth_core::{Error, PullEvent, PullProgress, Result};
use berth_oci::digest::short;
use berth_oci::image::{Blob, Document, Image};
use berth_oci::{Reference, media, platform};
use oci_spec::image::{Descriptor, MediaType};
use serde::Deserialize;

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
    fetch
        .await
        .map_err(|e| Error::backend_caused("registry", "pull", "an image", e))?
}

/// One pull from one repository, holding its bearer token once it has one.
struct Session {
    reference: Reference,
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
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
        // An index (multi-platform image): the one manifest for this machine.
        let document = match parse_document(&manifest)? {
            Document::Index(index) => {
                let chosen = platform::select(index.manifests(), &self.reference.name)?;
                manifest = self.manifest(chosen.digest().as_ref())?;
                parse_document(&manifest)?
            }
            document => document,
        };
        let Document::Manifest(document) = document else {
            return Err(corrupt(
                &manifest.digest,
                "an index points at another index, not at a manifest",
            ));
        };
        let config = self.blob(document.config(), &mut |_| {})?;
        let mut layers = Vec::with_capacity(document.layers().len());
        for layer in document.layers() {
            let short = short(layer.digest().as_ref());
            let mut report = |current| {
                progress(PullEvent {
                    layer: Some(short.clone()),
                    status: "Downloading".into(),
                    current: Some(current),
                    total: Some(layer.size()),
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
        let response = self.get(&url, Some(&media::manifest_accept()))?;
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
        let blob = Blob::new(MediaType::from(media_type.as_str()), bytes);
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
            self.base,
            self.reference.repository,
            descriptor.digest()
        );
        let mut reader = self.get(&url, None)?.into_body().into_reader();
        let size = descriptor.size();
        let mut bytes = Vec::with_capacity(size.min(1 << 30) as usize);
        let mut chunk = vec![0; 1 << 20];
        loop {
            let n = reader
                .read(&mut chunk)
                .map_err(|e| Error::io(format!("downloading {url}"), e))?;
            if n == 0 {
                break;
            }
            bytes.extend_from_slice(&chunk[..n]);
            if bytes.len() as u64 > size {
                break;
            }
            progress(bytes.len() as u64);
        }
        let blob = Blob::new(descriptor.media_type().clone(), bytes);
        if blob.bytes.len() as u64 != size || blob.digest != descriptor.digest().as_ref() {
            return Err(corrupt(
                descriptor.digest().as_ref(),
                format!(
                    "the registry served {} bytes with digest {}, the manifest says {size} bytes",
                    blob.bytes.len(),
                    blob.digest,
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
                        kind: berth_core::Object::Image,
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
    Document::parse(&blob.bytes).map_err(|m| corrupt(&blob.digest, m))
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
}
