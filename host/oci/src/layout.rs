//! Reading an image out of a `docker save` archive (classic, or the OCI-style one docker 25+
//! writes) or an OCI image layout, before any layer is touched: which member is the config,
//! which members are the layers and how they are compressed, and the name the archive records.
//!
//! Every digest the archive names is checked: the manifests and the config here, as they are
//! read; the layers by whoever reads them (a layer's blob digest and, once unpacked, its diff
//! id), with [`LayerRef`] saying what to expect.

use std::io::Read;
use std::path::Path;

use berth_core::{Error, Result};
use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use serde::Deserialize;

use crate::archive::{Source, corrupt};
use crate::config::{self, ImageConfig};
use crate::digest::{is_sha256_hex, sha256_hex, sha256_hex_of};
use crate::image::{Blob, Document, Image};
use crate::media::{Compression, layer_compression};
use crate::platform;

/// Annotation naming an image in an OCI index (docker and containerd write it).
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Nested indexes followed at most, against a loop of indexes.
const MAX_INDEX_DEPTH: usize = 4;

/// Where a layer comes from inside an archive, and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The member holding the layer.
    pub path: String,
    /// `None` when the archive does not say (docker's `manifest.json`): sniff the first bytes.
    pub compression: Option<Compression>,
    /// Expected sha256 (hex) of the member as stored, when the archive names one.
    pub blob_digest: Option<String>,
}

/// Everything parsed from an archive before any layer is touched.
#[derive(Debug)]
pub struct Plan {
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
    /// Hex, base layer first.
    pub diff_ids: Vec<String>,
    pub layers: Vec<LayerRef>,
    /// The name the archive records, if any (as recorded, not normalised).
    pub name: Option<String>,
}

/// One entry of a docker-archive `manifest.json` (Docker's own format, not OCI).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Parses a docker-archive (its `manifest.json` first, as it carries the tags) or an OCI layout
/// (`index.json`), checking the digests of what it reads, without touching a layer.
pub fn plan(source: &Source) -> Result<Plan> {
    let archive = source.origin();
    if source.exists("manifest.json") {
        return docker_plan(source);
    }
    if !source.exists("index.json") {
        return Err(corrupt(
            archive,
            "neither manifest.json (docker save) nor index.json (OCI layout) is present",
        ));
    }
    let mut document = Document::parse(&source.read_all("index.json")?)
        .map_err(|m| corrupt(archive, format!("index.json: {m}")))?;
    let mut name = None;
    let mut depth = 0;
    loop {
        let index = match document {
            Document::Manifest(manifest) => return oci_plan(source, &manifest, name),
            Document::Index(index) => index,
        };
        depth += 1;
        if depth > MAX_INDEX_DEPTH {
            return Err(corrupt(archive, "its indexes nest too deep (a loop?)"));
        }
        let entry = platform::select(index.manifests(), &archive.display().to_string())?;
        // The outermost index names the image.
        if name.is_none() {
            name = entry.annotations().as_ref().and_then(|a| {
                a.get(ANNOTATION_CONTAINERD_NAME)
                    .or_else(|| a.get(oci_spec::image::ANNOTATION_REF_NAME))
                    .cloned()
            });
        }
        document = Document::parse(&read_blob(source, entry)?)
            .map_err(|m| corrupt(archive, format!("{}: {m}", entry.digest())))?;
    }
}

fn docker_plan(source: &Source) -> Result<Plan> {
    let archive = source.origin();
    let manifests: Vec<DockerManifest> = serde_json::from_slice(&source.read_all("manifest.json")?)
        .map_err(|e| corrupt(archive, format!("manifest.json does not parse: {e}")))?;
    let manifest = manifests
        .into_iter()
        .next()
        .ok_or_else(|| corrupt(archive, "manifest.json lists no image"))?;
    let config_bytes = source.read_all(&manifest.config)?;
    if let Some(expected) = digest_in_path(&manifest.config) {
        check_digest(archive, &manifest.config, &expected, &config_bytes)?;
    }
    let layers = manifest
        .layers
        .iter()
        .map(|path| LayerRef {
            path: path.clone(),
            compression: None,
            blob_digest: digest_in_path(path),
        })
        .collect();
    let name = manifest.repo_tags.and_then(|tags| tags.into_iter().next());
    finish(archive, config_bytes, layers, name)
}

fn oci_plan(source: &Source, manifest: &ImageManifest, name: Option<String>) -> Result<Plan> {
    let archive = source.origin();
    let config_bytes = read_blob(source, manifest.config())?;
    let layers = manifest
        .layers()
        .iter()
        .map(|layer| {
            let what = format!("layer {} of {}", layer.digest(), archive.display());
            Ok(LayerRef {
                path: blob_path(archive, layer)?,
                compression: Some(layer_compression(layer.media_type(), &what)?),
                blob_digest: Some(layer.digest().digest().to_string()),
            })
        })
        .collect::<Result<_>>()?;
    finish(archive, config_bytes, layers, name)
}

/// Parses the config and checks that it and the manifest agree on the layers.
fn finish(
    archive: &Path,
    config_bytes: Vec<u8>,
    layers: Vec<LayerRef>,
    name: Option<String>,
) -> Result<Plan> {
    let parsed = config::parse(&config_bytes).map_err(|m| corrupt(archive, m))?;
    if parsed.diff_ids.len() != layers.len() {
        return Err(corrupt(
            archive,
            format!(
                "the manifest lists {} layers but the image config has {} diff ids",
                layers.len(),
                parsed.diff_ids.len()
            ),
        ));
    }
    let diff_ids = parsed
        .diff_ids
        .iter()
        .map(|d| {
            sha256_hex_of(d)
                .expect("config::parse checks diff ids")
                .to_string()
        })
        .collect();
    Ok(Plan {
        config_bytes,
        config: parsed.defaults,
        diff_ids,
        layers,
        name,
    })
}

impl Plan {
    /// The image as blobs, for a backend that stores blobs and unpacks them itself: each layer
    /// read whole and checked against the digest the archive names, typed by its compression
    /// (sniffed where the archive does not say), under an assembled OCI manifest. Diff ids are
    /// left to the unpacker, which sees the uncompressed stream.
    pub fn into_image(self, source: &Source, name: String) -> Result<Image> {
        let archive = source.origin();
        let mut layers = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let mut bytes = Vec::new();
            source
                .read(&layer.path)?
                .read_to_end(&mut bytes)
                .map_err(|e| {
                    Error::io(
                        format!("reading {} of {}", layer.path, archive.display()),
                        e,
                    )
                })?;
            if let Some(expected) = &layer.blob_digest {
                check_digest(archive, &layer.path, expected, &bytes)?;
            }
            let compression = layer
                .compression
                .unwrap_or_else(|| Compression::sniff(&bytes));
            layers.push(Blob::new(compression.layer_media_type(), bytes));
        }
        let config = Blob::new(MediaType::ImageConfig, self.config_bytes);
        Ok(Image::assemble(name, config, layers))
    }
}

/// `sha256:HEX` -> `blobs/sha256/HEX`.
fn blob_path(archive: &Path, descriptor: &Descriptor) -> Result<String> {
    match descriptor.as_digest_sha256() {
        Some(hex) => Ok(format!("blobs/sha256/{hex}")),
        None => Err(Error::invalid(
            format!("digest {} in {}", descriptor.digest(), archive.display()),
            "only sha256 digests are supported",
        )),
    }
}

/// A manifest or config the archive points at, checked against its descriptor.
fn read_blob(source: &Source, descriptor: &Descriptor) -> Result<Vec<u8>> {
    let path = blob_path(source.origin(), descriptor)?;
    let bytes = source.read_all(&path)?;
    let hex = descriptor.digest().digest();
    check_digest(source.origin(), &path, hex, &bytes)?;
    if bytes.len() as u64 != descriptor.size() {
        return Err(corrupt(
            source.origin(),
            format!(
                "{path} has {} bytes, its descriptor says {}",
                bytes.len(),
                descriptor.size()
            ),
        ));
    }
    Ok(bytes)
}

fn check_digest(archive: &Path, member: &str, expected: &str, bytes: &[u8]) -> Result<()> {
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(corrupt(
            archive,
            format!("{member}: digest mismatch (expected sha256:{expected}, got sha256:{actual})"),
        ))
    }
}

/// The sha256 a member's path promises: `blobs/sha256/HEX` or docker's `HEX.json`.
fn digest_in_path(path: &str) -> Option<String> {
    if let Some(hex) = path.strip_prefix("blobs/sha256/")
        && is_sha256_hex(hex)
    {
        return Some(hex.to_string());
    }
    path.strip_suffix(".json")
        .filter(|s| is_sha256_hex(s))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn digests_come_from_member_paths() {
        let hex = "a".repeat(64);
        assert_eq!(
            digest_in_path(&format!("blobs/sha256/{hex}")),
            Some(hex.clone())
        );
        assert_eq!(digest_in_path(&format!("{hex}.json")), Some(hex.clone()));
        assert_eq!(digest_in_path("abc/layer.tar"), None);
    }

    /// Writes `bytes` as a blob of the layout at `dir`; its descriptor.
    fn blob(dir: &Path, media_type: MediaType, bytes: &[u8]) -> Descriptor {
        let blob = Blob::new(media_type, bytes.to_vec());
        let blobs = dir.join("blobs/sha256");
        fs::create_dir_all(&blobs).unwrap();
        fs::write(blobs.join(blob.digest.trim_start_matches("sha256:")), bytes).unwrap();
        blob.descriptor()
    }

    fn config_bytes(diff_ids: &[String], user: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["sh"], "User": user},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    /// A layout whose index points at an index with a foreign and this platform's manifest.
    #[test]
    fn a_nested_index_resolves_to_this_platforms_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let layer = b"not really a tar".to_vec();
        let diff = crate::digest::sha256_digest(&layer);
        let layer_desc = blob(root, MediaType::ImageLayer, &layer);
        let manifest = |user: &str| {
            let config = blob(
                root,
                MediaType::ImageConfig,
                &config_bytes(std::slice::from_ref(&diff), user),
            );
            let manifest = oci_spec::image::ImageManifestBuilder::default()
                .schema_version(2u32)
                .config(config)
                .layers(vec![layer_desc.clone()])
                .build()
                .unwrap();
            blob(
                root,
                MediaType::ImageManifest,
                &serde_json::to_vec(&manifest).unwrap(),
            )
        };
        let mut ours = manifest("ours");
        ours.set_platform(Some(platform::host()));
        let mut foreign = manifest("foreign");
        foreign.set_platform(Some(
            oci_spec::image::PlatformBuilder::default()
                .os(oci_spec::image::Os::Linux)
                .architecture(oci_spec::image::Arch::s390x)
                .build()
                .unwrap(),
        ));
        let inner = oci_spec::image::ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(vec![foreign, ours])
            .build()
            .unwrap();
        let mut inner = blob(
            root,
            MediaType::ImageIndex,
            &serde_json::to_vec(&inner).unwrap(),
        );
        inner.set_annotations(Some(
            [(
                ANNOTATION_CONTAINERD_NAME.to_string(),
                "multi:1".to_string(),
            )]
            .into(),
        ));
        let outer = oci_spec::image::ImageIndexBuilder::default()
            .schema_version(2u32)
            .manifests(vec![inner])
            .build()
            .unwrap();
        fs::write(root.join("index.json"), serde_json::to_vec(&outer).unwrap()).unwrap();

        let source = Source::open(root, root).unwrap();
        let plan = plan(&source).unwrap();
        assert_eq!(plan.config.user.as_deref(), Some("ours"));
        assert_eq!(plan.name.as_deref(), Some("multi:1"));
        assert_eq!(plan.diff_ids, [diff.trim_start_matches("sha256:")]);
        assert_eq!(plan.layers[0].compression, Some(Compression::Uncompressed));
        assert_eq!(
            plan.layers[0].blob_digest.as_deref(),
            layer_desc.as_digest_sha256()
        );

        let image = plan
            .into_image(&source, "docker.io/library/multi:1".into())
            .unwrap();
        assert_eq!(image.layers[0].bytes, layer);
        assert_eq!(image.diff_ids().unwrap(), [diff]);

        // A damaged layer blob is caught when it is read.
        fs::write(
            root.join("blobs/sha256").join(layer_desc.digest().digest()),
            b"damaged",
        )
        .unwrap();
        let e = plan_of(root).into_image(&source, "x".into()).unwrap_err();
        assert!(e.to_string().contains("digest mismatch"), "{e}");
    }

    fn plan_of(root: &Path) -> Plan {
        plan(&Source::open(root, root).unwrap()).unwrap()
    }

    #[test]
    fn a_docker_archive_sniffs_its_layers_and_checks_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"tar").unwrap();
        let layer = gz.finish().unwrap();
        fs::create_dir(root.join("l0")).unwrap();
        fs::write(root.join("l0/layer.tar"), &layer).unwrap();
        let config = config_bytes(&[crate::digest::sha256_digest(b"tar")], "app");
        let config_name = format!("{}.json", sha256_hex(&config));
        fs::write(root.join(&config_name), &config).unwrap();
        let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["app:1"], "Layers": ["l0/layer.tar"]}]);
        fs::write(root.join("manifest.json"), manifest.to_string()).unwrap();

        let source = Source::open(root, root).unwrap();
        let plan = plan(&source).unwrap();
        assert_eq!(plan.name.as_deref(), Some("app:1"));
        assert_eq!(plan.layers[0].compression, None);
        let image = plan
            .into_image(&source, "docker.io/library/app:1".into())
            .unwrap();
        assert_eq!(image.layers[0].media_type, MediaType::ImageLayerGzip);

        // The config's name promises its digest.
        fs::write(root.join(&config_name), config_bytes(&[], "changed")).unwrap();
        let e = plan_of_err(root);
        assert!(e.contains("digest mismatch"), "{e}");
    }

    fn plan_of_err(root: &Path) -> String {
        plan(&Source::open(root, root).unwrap())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn neither_format_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let e = plan_of_err(dir.path());
        assert!(e.contains("neither manifest.json"), "{e}");
        fs::write(
            dir.path().join("index.json"),
            br#"{"schemaVersion":2,"manifests":[]}"#,
        )
        .unwrap();
        let e = plan_of_err(dir.path());
        assert!(e.contains("lists no manifest"), "{e}");
    }
}
