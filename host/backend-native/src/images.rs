//! The native backend's image store: imported images and their content-addressed layers.
//!
//! There is no registry client: images arrive as `docker save` archives (classic or the OCI-style
//! one docker 25+ writes), OCI image layouts, or plain root filesystem directories. Each layer is
//! verified (blob digest where the archive names one, and always the diff id from the image
//! config), unpacked once under `state-dir/native/layers/<diff id>` and shared by every image
//! that lists it. An import extracts into a temporary directory, renames into place and writes
//! the image record last, all under the exclusive `images` lock, so a failed or concurrent import
//! never leaves half an image behind.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use berth_core::store::create_dir_all;
use berth_core::{Durability, Error, IoContext, LockGuard, LockMode, Result, Store};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::archive::{Source, corrupt};
use crate::layers::{self, HashingReader, UnpackError};

/// Store kind of image records.
pub(crate) const IMAGES: &str = "native-images";
/// The lock every image-store mutation (and every container create) takes.
const IMAGES_LOCK: &str = "all";

/// Annotation naming an image in an OCI index (docker and containerd).
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What an image gives a container by default.
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
}

/// One imported image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// sha256 (hex) of the image config, as docker computes image ids.
    pub id: String,
    /// Normalised names (`busybox:latest`); empty for an image whose names moved elsewhere.
    pub names: Vec<String>,
    /// Diff ids (hex), base layer first.
    pub layers: Vec<String>,
    pub config: ImageConfig,
    /// When it was imported.
    pub created: DateTime<Utc>,
    /// Uncompressed size of all layers, in bytes.
    pub size: u64,
}

impl ImageRecord {
    /// The first 12 hex digits, as `image ls` shows.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
}

/// The image store under a [`Store`]'s state dir.
#[derive(Debug, Clone)]
pub struct ImageStore {
    store: Store,
    root: PathBuf,
}

/// Where a layer comes from inside an archive, and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRef {
    /// The member holding the layer.
    pub path: String,
    pub compression: Compression,
    /// Expected sha256 (hex) of the member as stored, when the archive names one.
    pub blob_digest: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    /// Unknown from metadata (docker archives): sniffed from the first bytes.
    Sniff,
}

/// Everything parsed from an archive before any layer is touched.
#[derive(Debug)]
pub struct Plan {
    pub config_bytes: Vec<u8>,
    pub config: ImageConfig,
    /// Hex, base layer first.
    pub diff_ids: Vec<String>,
    pub layers: Vec<LayerRef>,
    /// The name the archive records, if any.
    pub name: Option<String>,
}

impl ImageStore {
    pub fn open(store: &Store) -> Result<ImageStore> {
        let root = store.state_dir().join("native");
        for dir in ["layers", "tmp"] {
            create_dir_all(&root.join(dir))?;
        }
        Ok(ImageStore {
            store: store.clone(),
            root,
        })
    }

    /// Directory holding the unpacked layer with this diff id (hex).
    pub fn layer_dir(&self, diff_id: &str) -> PathBuf {
        self.root.join("layers").join(diff_id)
    }

    /// Where imports stage their work; empty whenever no import runs.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn lock(&self, mode: LockMode) -> Result<LockGuard> {
        self.store.lock(IMAGES, IMAGES_LOCK, mode)
    }

    /// Imports a `docker save` archive or an OCI layout (directory or tar, optionally gzipped).
    /// `name` overrides the name recorded in the archive.
    pub fn import_archive(&self, path: &Path, name: Option<&str>) -> Result<ImageRecord> {
        let name = name.map(normalise_name).transpose()?;
        let _lock = self.lock(LockMode::Exclusive)?;
        self.clean_tmp();
        let source = Source::open(path, &self.tmp_dir())?;
        let plan = plan(&source)?;
        let name = match name.or(plan.name.as_deref().map(normalise_name).transpose()?) {
            Some(name) => name,
            None => {
                return Err(Error::invalid(
                    format!("image archive {}", path.display()),
                    "it records no image name",
                )
                .with_hint("give one: `berth image import FILE NAME`"));
            }
        };
        self.install(&source, plan, &name)
    }

    /// Imports a plain directory as a one-layer image.
    pub fn import_rootfs(&self, dir: &Path, name: &str) -> Result<ImageRecord> {
        let name = normalise_name(name)?;
        if !dir.is_dir() {
            return Err(
                Error::not_found("root filesystem directory", dir.display().to_string())
                    .with_hint("pass a directory holding the image's files (bin/, etc/, ...)"),
            );
        }
        let _lock = self.lock(LockMode::Exclusive)?;
        self.clean_tmp();
        let scratch = crate::archive::Scratch(
            self.tmp_dir()
                .join(format!("rootfs-{}.tar", std::process::id())),
        );
        let file =
            fs::File::create(&scratch.0).context(|| format!("creating {}", scratch.0.display()))?;
        let mut hashing = HashingWriter::new(std::io::BufWriter::new(file));
        hashing = layers::tar_directory(dir, hashing)
            .context(|| format!("archiving {}", dir.display()))?;
        let (digest, writer) = hashing.finish();
        writer
            .into_inner()
            .map_err(|e| Error::io(format!("writing {}", scratch.0.display()), e.into_error()))?;
        let config = ImageConfig {
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cmd: vec!["/bin/sh".into()],
            ..ImageConfig::default()
        };
        let config_bytes = serde_json::to_vec(&serde_json::json!({
            "architecture": berth_core::go_arch(),
            "os": "linux",
            "config": {"Env": config.env, "Cmd": config.cmd},
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{digest}")]},
        }))
        .expect("json serialises");
        let plan = Plan {
            config_bytes,
            config,
            diff_ids: vec![digest],
            layers: vec![LayerRef {
                path: scratch
                    .0
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                compression: Compression::None,
                blob_digest: None,
            }],
            name: None,
        };
        // The scratch tar is a member of the tmp dir, read like a directory archive's file.
        let source = Source::open(&self.tmp_dir(), &self.tmp_dir())?;
        self.install(&source, plan, &name)
    }

    /// Unpacks missing layers and writes the record; undoes its own work on failure.
    fn install(&self, source: &Source, plan: Plan, name: &str) -> Result<ImageRecord> {
        let id = hex::encode(Sha256::digest(&plan.config_bytes));
        let mut added: Vec<PathBuf> = Vec::new();
        let result = (|| {
            let mut size = 0;
            let mut seen = BTreeSet::new();
            for (layer, diff_id) in plan.layers.iter().zip(&plan.diff_ids) {
                let final_dir = self.layer_dir(diff_id);
                if !seen.insert(diff_id.clone()) {
                    continue;
                }
                if final_dir.is_dir() {
                    size += dir_size(&final_dir);
                    continue;
                }
                let staging = self.tmp_dir().join(format!("layer-{diff_id}"));
                let _ = fs::remove_dir_all(&staging);
                create_dir_all(&staging)?;
                let outcome = extract(source, layer, diff_id, &staging);
                match outcome {
                    Ok(bytes) => size += bytes,
                    Err(e) => {
                        let _ = fs::remove_dir_all(&staging);
                        return Err(e);
                    }
                }
                fs::rename(&staging, &final_dir)
                    .context(|| format!("moving layer {diff_id} into {}", final_dir.display()))?;
                added.push(final_dir);
            }
            let mut records = self.records()?;
            let record = match records.iter().find(|r| r.id == id) {
                Some(existing) => {
                    let mut record = existing.clone();
                    if !record.names.iter().any(|n| n == name) {
                        record.names.push(name.to_string());
                    }
                    record
                }
                None => ImageRecord {
                    id: id.clone(),
                    names: vec![name.to_string()],
                    layers: plan.diff_ids.clone(),
                    config: plan.config.clone(),
                    created: Utc::now(),
                    size,
                },
            };
            // A name points at one image: move it off whichever image had it.
            for other in records.iter_mut().filter(|r| r.id != id) {
                if other.names.iter().any(|n| n == name) {
                    other.names.retain(|n| n != name);
                    self.write_record(other)?;
                }
            }
            self.write_record(&record)?;
            Ok(record)
        })();
        if result.is_err() {
            for dir in added {
                let _ = fs::remove_dir_all(dir);
            }
        }
        self.clean_tmp();
        result
    }

    fn write_record(&self, record: &ImageRecord) -> Result<()> {
        self.store
            .write(Durability::Persistent, IMAGES, &record.id, "image", record)
    }

    /// Every image, sorted by name (nameless ones last).
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut records = self.records()?;
        records.sort_by(|a, b| (a.names.is_empty(), &a.names).cmp(&(b.names.is_empty(), &b.names)));
        Ok(records)
    }

    fn records(&self) -> Result<Vec<ImageRecord>> {
        let mut records = Vec::new();
        for id in self.store.list(Durability::Persistent, IMAGES)? {
            if let Some(record) = self
                .store
                .read(Durability::Persistent, IMAGES, &id, "image")?
            {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Finds an image by name (`busybox` = `busybox:latest`), full id (optionally `sha256:`) or
    /// unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord> {
        let records = self.records()?;
        let not_found = || {
            Error::not_found("image", reference).with_hint(
                "pull or import it: `berth image pull REF`, `berth image import FILE NAME`",
            )
        };
        if let Ok(name) = normalise_name(reference)
            && let Some(r) = records.iter().find(|r| r.names.contains(&name))
        {
            return Ok(r.clone());
        }
        let id = reference.strip_prefix("sha256:").unwrap_or(reference);
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(not_found());
        }
        let mut matches = records.iter().filter(|r| r.id.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some(r), None) => Ok(r.clone()),
            (Some(_), Some(_)) => Err(Error::invalid(
                format!("image reference {reference:?}"),
                "matches more than one image id",
            )
            .with_hint("use more digits of the id, or the name")),
            _ => Err(not_found()),
        }
    }

    /// Removes an image (or, when `reference` is one of several names, just that name). Refused
    /// while a native container uses it, unless `force`. Layers go when no image uses them.
    pub fn remove(&self, reference: &str, force: bool) -> Result<ImageRecord> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut record = self.resolve(reference)?;
        let name = normalise_name(reference)
            .ok()
            .filter(|n| record.names.contains(n));
        if let Some(name) = &name
            && record.names.len() > 1
        {
            record.names.retain(|n| n != name);
            self.write_record(&record)?;
            return Ok(record);
        }
        let users = crate::records::containers_using_image(&self.store, &record.id)?;
        if !users.is_empty() && !force {
            let shown: Vec<&str> = users.iter().map(|id| &id[..12.min(id.len())]).collect();
            return Err(Error::conflict(
                format!("image {reference:?}"),
                format!("in use by container(s) {}", shown.join(", ")),
            )
            .with_hint(
                "remove those containers first (`berth rm`), or use `berth image rm --force`",
            ));
        }
        self.store.remove(IMAGES, &record.id)?;
        self.collect_layers()?;
        Ok(record)
    }

    /// Deletes every layer directory no image lists (also the leftovers of a crashed import).
    fn collect_layers(&self) -> Result<()> {
        let mut used: BTreeSet<String> =
            self.records()?.into_iter().flat_map(|r| r.layers).collect();
        // Snapshots standing on an image's layers keep them after the image goes.
        used.extend(crate::snapshots::image_layers_in_use(&self.store)?);
        let dir = self.root.join("layers");
        for entry in fs::read_dir(&dir).context(|| format!("listing {}", dir.display()))? {
            let entry = entry.context(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !used.contains(&name) {
                // Rename first so a half-deleted layer is never mistaken for a whole one.
                let doomed = self.tmp_dir().join(format!("gc-{name}"));
                fs::rename(entry.path(), &doomed)
                    .context(|| format!("removing layer {}", entry.path().display()))?;
                fs::remove_dir_all(&doomed).context(|| format!("removing {}", doomed.display()))?;
            }
        }
        Ok(())
    }

    /// Removes staging leftovers; only called under the exclusive lock, so none is in use.
    fn clean_tmp(&self) {
        if let Ok(entries) = fs::read_dir(self.tmp_dir()) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
    }
}

/// Unpacks one layer into `staging`, checking the blob digest and the diff id; returns its size.
fn extract(source: &Source, layer: &LayerRef, diff_id: &str, staging: &Path) -> Result<u64> {
    let archive = source.origin();
    let layer_error =
        |message: String| corrupt(archive, format!("layer {}: {message}", layer.path));
    let mut blob = HashingReader::new(BufReader::new(source.read(&layer.path)?));
    let head = blob
        .get_mut()
        .fill_buf()
        .map_err(|e| layer_error(format!("unreadable: {e}")))?
        .to_vec();
    let gzip = match layer.compression {
        Compression::Gzip => true,
        Compression::None => false,
        Compression::Sniff => {
            if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                return Err(zstd_error(archive, &layer.path));
            }
            head.starts_with(&[0x1f, 0x8b])
        }
    };
    let unpacked = if gzip {
        layers::unpack(flate2::read::MultiGzDecoder::new(&mut blob), staging)
    } else {
        layers::unpack(&mut blob, staging)
    };
    let (actual, size) = unpacked.map_err(|e| match e {
        UnpackError::Malformed(m) => layer_error(m),
        UnpackError::Io(what, source) => Error::io(format!("layer {}: {what}", layer.path), source),
    })?;
    let (blob_actual, _) = blob
        .finish()
        .map_err(|e| layer_error(format!("unreadable: {e}")))?;
    if let Some(expected) = &layer.blob_digest
        && &blob_actual != expected
    {
        return Err(layer_error(format!(
            "blob digest mismatch: expected sha256:{expected}, got sha256:{blob_actual}"
        )));
    }
    if actual != diff_id {
        return Err(layer_error(format!(
            "diff id mismatch: the image config says sha256:{diff_id}, the content is sha256:{actual}"
        )));
    }
    Ok(size)
}

fn zstd_error(archive: &Path, layer: &str) -> Error {
    Error::invalid(
        format!("layer {layer} of {}", archive.display()),
        "zstd-compressed layers are not supported",
    )
    .with_hint("re-export the image with gzip or uncompressed layers")
}

fn dir_size(dir: &Path) -> u64 {
    fn walk(dir: &Path, total: &mut u64) {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                if let Ok(meta) = entry.metadata() {
                    if meta.is_dir() {
                        walk(&entry.path(), total);
                    } else {
                        *total += meta.len();
                    }
                }
            }
        }
    }
    let mut total = 0;
    walk(dir, &mut total);
    total
}

// ---- archive formats ------------------------------------------------------------------------

/// One entry of a docker-archive `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// The parts of an image config (docker and OCI share it) berth uses.
#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RuntimeConfig>,
    rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RuntimeConfig {
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: Option<String>,
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciIndex {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    // A manifest, not an index, when these are present.
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Reads an archive's manifest (docker `manifest.json` first, as it carries the tags, else the
/// OCI `index.json`) and its image config.
/// Parses a docker-archive or OCI layout (checking what digests it names) without touching a
/// layer; other backends import from the same plan.
pub fn plan(source: &Source) -> Result<Plan> {
    let archive = source.origin();
    if source.exists("manifest.json") {
        let bytes = source.read_all("manifest.json")?;
        let manifests: Vec<DockerManifest> = serde_json::from_slice(&bytes)
            .map_err(|e| corrupt(archive, format!("manifest.json does not parse: {e}")))?;
        let manifest = manifests
            .into_iter()
            .next()
            .ok_or_else(|| corrupt(archive, "manifest.json lists no image"))?;
        let config_bytes = source.read_all(&manifest.config)?;
        if let Some(expected) = digest_in_path(&manifest.config) {
            check_digest(archive, &manifest.config, &expected, &config_bytes)?;
        }
        let (config, diff_ids) = parse_config(archive, &config_bytes)?;
        check_layer_count(archive, manifest.layers.len(), &diff_ids)?;
        let layers = manifest
            .layers
            .iter()
            .map(|path| LayerRef {
                path: path.clone(),
                compression: Compression::Sniff,
                blob_digest: digest_in_path(path),
            })
            .collect();
        let name = manifest.repo_tags.and_then(|tags| tags.into_iter().next());
        return Ok(Plan {
            config_bytes,
            config,
            diff_ids,
            layers,
            name,
        });
    }
    if !source.exists("index.json") {
        return Err(corrupt(
            archive,
            "neither manifest.json (docker save) nor index.json (OCI layout) is present",
        ));
    }
    let index: OciIndex = serde_json::from_slice(&source.read_all("index.json")?)
        .map_err(|e| corrupt(archive, format!("index.json does not parse: {e}")))?;
    let descriptor = pick_manifest(archive, &index.manifests)?;
    let name = descriptor
        .annotations
        .get(ANNOTATION_CONTAINERD_NAME)
        .or_else(|| descriptor.annotations.get(ANNOTATION_REF_NAME))
        .cloned();
    let mut manifest = read_blob_json::<OciIndex>(source, &descriptor.digest)?;
    // A nested index (multi-platform image): descend once more.
    let mut depth = 0;
    while manifest.config.is_none() {
        let is_index = manifest
            .media_type
            .as_deref()
            .is_some_and(|m| m == MT_OCI_INDEX || m == MT_DOCKER_LIST)
            || !manifest.manifests.is_empty();
        if !is_index || depth > 4 {
            return Err(corrupt(
                archive,
                format!("{} is neither a manifest nor an index", descriptor.digest),
            ));
        }
        let inner = pick_manifest(archive, &manifest.manifests)?;
        manifest = read_blob_json(source, &inner.digest)?;
        depth += 1;
    }
    let config_desc = manifest.config.expect("checked above");
    let config_bytes = read_blob(source, &config_desc.digest)?;
    let (config, diff_ids) = parse_config(archive, &config_bytes)?;
    check_layer_count(archive, manifest.layers.len(), &diff_ids)?;
    let layers = manifest
        .layers
        .iter()
        .map(|layer| {
            let (path, hex) = blob_path(archive, &layer.digest)?;
            let compression =
                layer_compression(archive, &layer.digest, layer.media_type.as_deref())?;
            Ok(LayerRef {
                path,
                compression,
                blob_digest: Some(hex),
            })
        })
        .collect::<Result<_>>()?;
    Ok(Plan {
        config_bytes,
        config,
        diff_ids,
        layers,
        name,
    })
}

/// The manifest for this platform: the only one, else the one matching linux/<arch>.
fn pick_manifest<'a>(archive: &Path, manifests: &'a [Descriptor]) -> Result<&'a Descriptor> {
    match manifests {
        [] => Err(corrupt(archive, "the index lists no manifest")),
        [one] => Ok(one),
        many => many
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == berth_core::go_arch())
            })
            .or_else(|| many.iter().find(|d| d.platform.is_none()))
            .ok_or_else(|| {
                Error::invalid(
                    format!("image archive {}", archive.display()),
                    format!("no manifest for linux/{}", berth_core::go_arch()),
                )
            }),
    }
}

fn layer_compression(
    archive: &Path,
    digest: &str,
    media_type: Option<&str>,
) -> Result<Compression> {
    let Some(media_type) = media_type else {
        return Ok(Compression::Sniff);
    };
    let base = media_type.replace(".nondistributable", "").replace(
        "vnd.oci.image.layer.nondistributable",
        "vnd.oci.image.layer",
    );
    match base.as_str() {
        "application/vnd.oci.image.layer.v1.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
        "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+zstd" => Err(zstd_error(archive, digest)),
        other => Err(Error::invalid(
            format!("layer {digest} of {}", archive.display()),
            format!("unsupported media type {other:?}"),
        )
        .with_hint("berth imports tar and tar+gzip layers")),
    }
}

/// `sha256:HEX` -> (`blobs/sha256/HEX`, HEX).
fn blob_path(archive: &Path, digest: &str) -> Result<(String, String)> {
    match digest.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok((format!("blobs/sha256/{hex}"), hex.to_ascii_lowercase()))
        }
        _ => Err(Error::invalid(
            format!("digest {digest:?} in {}", archive.display()),
            "only sha256 digests are supported",
        )),
    }
}

fn read_blob(source: &Source, digest: &str) -> Result<Vec<u8>> {
    let (path, hex) = blob_path(source.origin(), digest)?;
    let bytes = source.read_all(&path)?;
    check_digest(source.origin(), &path, &hex, &bytes)?;
    Ok(bytes)
}

fn read_blob_json<T: serde::de::DeserializeOwned>(source: &Source, digest: &str) -> Result<T> {
    let bytes = read_blob(source, digest)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| corrupt(source.origin(), format!("{digest} does not parse: {e}")))
}

fn check_digest(archive: &Path, member: &str, expected: &str, bytes: &[u8]) -> Result<()> {
    let actual = hex::encode(Sha256::digest(bytes));
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
    let is_hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(hex) = path.strip_prefix("blobs/sha256/")
        && is_hex(hex)
    {
        return Some(hex.to_ascii_lowercase());
    }
    path.strip_suffix(".json")
        .filter(|s| is_hex(s))
        .map(str::to_ascii_lowercase)
}

fn parse_config(archive: &Path, bytes: &[u8]) -> Result<(ImageConfig, Vec<String>)> {
    let file: ConfigFile = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(archive, format!("the image config does not parse: {e}")))?;
    let diff_ids = file
        .rootfs
        .diff_ids
        .iter()
        .map(|d| blob_path(archive, d).map(|(_, hex)| hex))
        .collect::<Result<Vec<_>>>()?;
    let runtime = file.config.unwrap_or_default();
    let config = ImageConfig {
        env: runtime.env.unwrap_or_default(),
        entrypoint: runtime.entrypoint.unwrap_or_default(),
        cmd: runtime.cmd.unwrap_or_default(),
        working_dir: runtime.working_dir.filter(|w| !w.is_empty()),
        user: runtime.user.filter(|u| !u.is_empty()),
    };
    Ok((config, diff_ids))
}

/// `busybox` -> `busybox:latest`; docker's default registry prefixes are dropped so names match
/// however they were written.
pub fn normalise_name(name: &str) -> Result<String> {
    let trimmed = name.trim();
    let bad = |reason: &str| {
        Error::invalid(format!("image name {name:?}"), reason)
            .with_hint("use NAME[:TAG], e.g. busybox:latest")
    };
    if trimmed.is_empty() {
        return Err(bad("empty"));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    let mut name = trimmed
        .strip_prefix("docker.io/library/")
        .or_else(|| trimmed.strip_prefix("index.docker.io/library/"))
        .or_else(|| trimmed.strip_prefix("docker.io/"))
        .unwrap_or(trimmed)
        .to_string();
    let last = name.rsplit('/').next().unwrap_or(&name);
    if last.is_empty() || last.starts_with(':') {
        return Err(bad("no repository name"));
    }
    if !last.contains(':') && !name.contains('@') {
        name.push_str(":latest");
    }
    Ok(name)
}

/// A writer that hashes what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: std::io::Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
        }
    }

    fn finish(self) -> (String, W) {
        (hex::encode(self.hasher.finalize()), self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Reads `/etc/passwd` and `/etc/group` from the image's layers (top first) to turn a user name
/// into ids.
pub(crate) fn read_layer_file(layer_dirs_top_first: &[PathBuf], rel: &str) -> Option<String> {
    for dir in layer_dirs_top_first {
        let path = dir.join(rel);
        if let Ok(meta) = fs::symlink_metadata(&path) {
            if meta.is_file() {
                let mut text = String::new();
                fs::File::open(&path)
                    .ok()?
                    .take(1 << 20)
                    .read_to_string(&mut text)
                    .ok()?;
                return Some(text);
            }
            return None;
        }
    }
    None
}

/// A manifest and its image config must agree on how many layers the image has.
fn check_layer_count(archive: &Path, listed: usize, diff_ids: &[String]) -> Result<()> {
    if listed == diff_ids.len() {
        return Ok(());
    }
    Err(corrupt(
        archive,
        format!(
            "the manifest lists {listed} layers but the image config has {} diff ids",
            diff_ids.len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_normalise() {
        assert_eq!(normalise_name("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalise_name("busybox:1.36").unwrap(), "busybox:1.36");
        assert_eq!(
            normalise_name("docker.io/library/alpine:3").unwrap(),
            "alpine:3"
        );
        assert_eq!(
            normalise_name("localhost:5000/app").unwrap(),
            "localhost:5000/app:latest"
        );
        assert!(normalise_name("").is_err());
        assert!(normalise_name("a b").is_err());
    }

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

    #[test]
    fn media_types_map_to_compression() {
        let p = Path::new("x");
        assert_eq!(
            layer_compression(p, "d", Some("application/vnd.oci.image.layer.v1.tar+gzip")).unwrap(),
            Compression::Gzip
        );
        assert_eq!(
            layer_compression(p, "d", Some("application/vnd.oci.image.layer.v1.tar")).unwrap(),
            Compression::None
        );
        let zstd = layer_compression(p, "d", Some("application/vnd.oci.image.layer.v1.tar+zstd"));
        assert!(zstd.unwrap_err().to_string().contains("zstd"));
        assert!(layer_compression(p, "d", Some("text/plain")).is_err());
    }

    #[test]
    fn configs_parse_with_defaults() {
        let hex = "b".repeat(64);
        let json = format!(
            r#"{{"config":{{"Env":["A=1"],"Cmd":["sh"],"WorkingDir":"","User":"1000"}},
               "rootfs":{{"type":"layers","diff_ids":["sha256:{hex}"]}}}}"#
        );
        let (config, diff_ids) = parse_config(Path::new("x"), json.as_bytes()).unwrap();
        assert_eq!(diff_ids, [hex]);
        assert_eq!(config.env, ["A=1"]);
        assert_eq!(config.cmd, ["sh"]);
        assert_eq!(config.working_dir, None);
        assert_eq!(config.user.as_deref(), Some("1000"));
    }

    #[test]
    fn picks_the_platform_manifest() {
        let list: Vec<Descriptor> = serde_json::from_str(&format!(
            r#"[{{"digest":"sha256:1","platform":{{"architecture":"s390x","os":"linux"}}}},
                {{"digest":"sha256:2","platform":{{"architecture":"{}","os":"linux"}}}}]"#,
            berth_core::go_arch()
        ))
        .unwrap();
        assert_eq!(
            pick_manifest(Path::new("x"), &list).unwrap().digest,
            "sha256:2"
        );
    }
}
