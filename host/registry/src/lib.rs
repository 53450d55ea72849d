//! Pulling images from an OCI distribution registry (Docker Hub, ghcr.io, a local
//! `registry:2`), for the backends whose daemon cannot pull by itself: the manifest for this
//! platform, its config and its layers, each checked against its digest before a backend sees
//! it. Reached as its [`RegistryAccess`] says: over TLS (the platform's roots or a CA of its
//! own) or plain HTTP, anonymously or as the user `berth login` stored ([`credentials`]),
//! answering whichever challenge the registry makes ([`auth`]).
//!
//! The blocking HTTP client runs on a blocking thread; [`pull`] and [`login`] are the async
//! faces.

pub mod auth;
pub mod credentials;

use std::io::Read;
use std::time::Duration;

use auth::{Authenticator, Challenge};
use berth_core::{Error, PullEvent, PullProgress, RegistryAccess, Result, Transport};
use berth_oci::digest::short;
use berth_oci::image::{Blob, Document, Image};
use berth_oci::{Reference, media, platform};
use oci_spec::image::{Descriptor, MediaType};

pub use credentials::DockerConfig;

/// Pulls `reference` (normalised first) through `access`, reporting each layer's download to
/// `progress`.
pub async fn pull(
    reference: &str,
    access: &RegistryAccess,
    progress: &mut dyn PullProgress,
) -> Result<Image> {
    let reference = Reference::parse(reference)?;
    let access = access.clone();
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let fetch = tokio::task::spawn_blocking(move || {
        Session::new(&access)?.fetch(&reference, &mut |event| {
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

/// Checks that `access` is let in: `GET /v2/` answered 200, after its challenge if it makes
/// one (what `docker login` checks before it stores anything).
pub async fn login(access: &RegistryAccess) -> Result<()> {
    let access = access.clone();
    tokio::task::spawn_blocking(move || {
        let mut session = Session::new(&access)?;
        let url = format!("{}/v2/", session.base);
        session.get(&url, None).map(drop)
    })
    .await
    .map_err(|e| Error::backend_caused("registry", "log in to", "a registry", e))?
}

/// Requests to one registry, holding the `Authorization` that answered its challenge once it
/// has one.
struct Session {
    registry: String,
    base: String,
    agent: ureq::Agent,
    access: RegistryAccess,
    authorization: Option<String>,
    /// What a 404 names: the image being pulled, or the registry being logged in to.
    pulling: Option<String>,
}

impl Session {
    fn new(access: &RegistryAccess) -> Result<Session> {
        let registry = access.host();
        let (scheme, roots) = match &access.transport {
            Transport::Http => ("http", ureq::tls::RootCerts::PlatformVerifier),
            Transport::Https { ca: None } => ("https", ureq::tls::RootCerts::PlatformVerifier),
            Transport::Https { ca: Some(ca) } => ("https", trusted(registry, ca)?),
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .build()
            .into();
        Ok(Session {
            registry: registry.to_string(),
            base: format!("{scheme}://{}", berth_oci::reference::api_host(registry)),
            agent,
            access: access.clone(),
            authorization: None,
            pulling: None,
        })
    }

    fn fetch(
        &mut self,
        reference: &Reference,
        progress: &mut dyn FnMut(PullEvent),
    ) -> Result<Image> {
        self.pulling = Some(reference.name.clone());
        let repository = reference.repository.as_str();
        let mut manifest = self.manifest(repository, &reference.object)?;
        // An index (multi-platform image): the one manifest for this machine.
        let document = match parse_document(&manifest)? {
            Document::Index(index) => {
                let chosen = platform::select(index.manifests(), &reference.name)?;
                manifest = self.manifest(repository, chosen.digest().as_ref())?;
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
        let config = self.blob(repository, document.config(), &mut |_| {})?;
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
            layers.push(self.blob(repository, layer, &mut report)?);
            progress(PullEvent {
                layer: Some(short),
                status: "Download complete".into(),
                ..Default::default()
            });
        }
        Ok(Image {
            name: reference.name.clone(),
            manifest,
            config,
            layers,
        })
    }

    /// The manifest or index `object` (a tag or digest) names, checked when named by digest.
    fn manifest(&mut self, repository: &str, object: &str) -> Result<Blob> {
        let url = format!("{}/v2/{repository}/manifests/{object}", self.base);
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
    fn blob(
        &mut self,
        repository: &str,
        descriptor: &Descriptor,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Blob> {
        let url = format!(
            "{}/v2/{repository}/blobs/{}",
            self.base,
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

    /// `GET url`, answering the registry's challenge once.
    fn get(&mut self, url: &str, accept: Option<&str>) -> Result<ureq::http::Response<ureq::Body>> {
        let mut answered = false;
        loop {
            let mut request = self.agent.get(url);
            if let Some(accept) = accept {
                request = request.header("Accept", accept);
            }
            if let Some(authorization) = &self.authorization {
                request = request.header("Authorization", authorization);
            }
            let response = request
                .call()
                .map_err(|e| self.unavailable(e.to_string()))?;
            let status = response.status().as_u16();
            match status {
                200 => return Ok(response),
                401 if !answered => {
                    let header = response
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let challenge = Challenge::parse(header).ok_or_else(|| {
                        self.unavailable(format!(
                            "it wants authentication berth does not speak: {header:?}"
                        ))
                    })?;
                    self.authorization = Some(self.authenticator().answer(&challenge)?);
                    answered = true;
                }
                // Docker Hub answers 401 for a repository that does not exist, as for a
                // private one: without credentials both are "not found, or log in".
                401 | 403 | 404 if self.access.credentials.is_none() || status == 404 => {
                    return Err(self.not_found());
                }
                401 | 403 => {
                    let authenticator = self.authenticator();
                    return Err(authenticator
                        .refused(&format!("HTTP {status} for {url}"), authenticator.fix()));
                }
                status => return Err(self.unavailable(format!("HTTP {status} for {url}"))),
            }
        }
    }

    fn authenticator(&self) -> Authenticator<'_> {
        Authenticator {
            agent: &self.agent,
            registry: &self.registry,
            credentials: self.access.credentials.as_ref(),
        }
    }

    fn not_found(&self) -> Error {
        let Some(image) = &self.pulling else {
            return self.unavailable("it has no registry API at /v2/".into());
        };
        let hint = match self.access.credentials {
            None => format!(
                "{} does not serve it; check the name and tag. If it is private, log in \
                 first: `berth login {}`",
                self.registry, self.registry
            ),
            Some(_) => format!(
                "{} does not serve it; check the name and tag",
                self.registry
            ),
        };
        Error::NotFound {
            kind: berth_core::Object::Image,
            name: image.clone(),
            hint,
        }
    }

    fn unavailable(&self, reason: String) -> Error {
        Error::Unavailable {
            service: format!("registry {}", self.registry),
            endpoint: self.base.clone(),
            reason,
            hint: match self.access.transport {
                Transport::Http => format!(
                    "is the registry up and the name right? berth speaks plain HTTP to it; if \
                     it serves TLS, set `insecure = false` under [registries.\"{}\"] in \
                     berth.toml",
                    self.registry
                ),
                Transport::Https { .. } => format!(
                    "is the registry up and the name right? If a CA of your own signed its \
                     certificate, set `ca = \"/path/to/ca.pem\"` under [registries.\"{0}\"] \
                     in berth.toml; if it serves plain HTTP, `insecure = true` there",
                    self.registry
                ),
            },
        }
    }
}

/// The certificates of the PEM file `ca`, the only roots `registry` is verified against.
fn trusted(registry: &str, ca: &std::path::Path) -> Result<ureq::tls::RootCerts> {
    let invalid = |reason: String| {
        Error::invalid(
            format!("CA file {} for registry {registry}", ca.display()),
            reason,
        )
        .with_hint(format!(
            "fix `ca` under [registries.\"{registry}\"] in berth.toml"
        ))
    };
    let pem = std::fs::read(ca).map_err(|e| invalid(e.to_string()))?;
    let certificates: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(certificate),
            _ => None,
        })
        .collect();
    if certificates.is_empty() {
        return Err(invalid("it holds no PEM certificate".into()));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certificates))
}

fn parse_document(blob: &Blob) -> Result<Document> {
    Document::parse(&blob.bytes).map_err(|m| corrupt(&blob.digest, m))
}

fn corrupt(digest: &str, message: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "registry download".into(),
        path: digest.into(),
        message: message.into(),
        hint: "retry the pull; if it persists, the registry's copy is damaged".into(),
    }
}
