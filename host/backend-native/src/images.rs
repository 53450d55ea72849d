//! The native backend's image store: imported images and their content-addressed layers.
//!
//! Images arrive as `docker save` archives (classic or the OCI-style one docker 25+ writes), OCI
//! image layouts (a pull is staged as one), or plain root filesystem directories; `berth-oci`
//! reads the archive formats and names images by its one rule. Each layer is verified (blob digest where the archive names one, and always the diff id from the image
//! config), unpacked once under `state-dir/native/layers/<diff id>` and shared by every image
//! that lists it. An import extracts into a temporary directory, renames into place and writes
//! the image record last, all under the exclusive `images` lock, so a failed or concurrent import
//! never leaves half an image behind.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use berth_core::store::create_dir_all;
use berth_core::{
    Durability, Error, IoContext, LockGuard, LockMode, PullEvent, Result, Store, crash,
};
use berth_oci::ImageConfig;
use berth_oci::archive::{Scratch, Source, corrupt};
use berth_oci::layout::{LayerRef, Plan, plan};
use berth_oci::media::Compression;
use berth_oci::reference::{find, normalise};
use chrono::{DateTime, Utc};
use oci_spec::image::{ConfigBuilder, ImageConfigurationBuilder, RootFsBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layers::{self, HashingReader, UnpackError};

/// Store kind of image records.
pub(crate) const IMAGES: &str = "native-images";
/// The lock every image-store mutation (and every container create) takes.
const IMAGES_LOCK: &str = "all";

/// One imported image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// sha256 (hex) of the image config, as docker computes image ids.
    pub id: String,
    /// Normalised names (`docker.io/library/busybox:latest`; records written before berth-oci
    /// hold short ones, `busybox:latest`, which lookups still find); empty for an image whose
    /// names moved elsewhere.
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
    pub fn import_archive(
        &self,
        path: &Path,
        name: Option<&str>,
        report: &mut dyn FnMut(PullEvent),
    ) -> Result<ImageRecord> {
        let name = name.map(normalise).transpose()?;
        let _lock = self.lock(LockMode::Exclusive)?;
        self.clean_tmp();
        let source = Source::open(path, &self.tmp_dir())?;
        let plan = plan(&source)?;
        let name = match name.or(plan.name.as_deref().map(normalise).transpose()?) {
            Some(name) => name,
            None => {
                return Err(Error::invalid(
                    format!("image archive {}", path.display()),
                    "it records no image name",
                )
                .with_hint("give one: `berth image import FILE NAME`"));
            }
        };
        self.install(&source, plan, &name, report)
    }

    /// Imports a plain directory as a one-layer image.
    pub fn import_rootfs(&self, dir: &Path, name: &str) -> Result<ImageRecord> {
        let name = normalise(name)?;
        if !dir.is_dir() {
            return Err(Error::not_found(
                berth_core::Object::RootfsDirectory,
                dir.display().to_string(),
            )
            .with_hint("pass a directory holding the image's files (bin/, etc/, ...)"));
        }
        let _lock = self.lock(LockMode::Exclusive)?;
        self.clean_tmp();
        let scratch = Scratch(
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
        let oci = ImageConfigurationBuilder::default()
            .architecture(berth_core::go_arch())
            .os("linux")
            .config(
                ConfigBuilder::default()
                    .env(config.env.clone())
                    .cmd(config.cmd.clone())
                    .build()
                    .expect("every config field has a default"),
            )
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![format!("sha256:{digest}")])
                    .build()
                    .expect("every rootfs field has a default"),
            )
            .build()
            .expect("every image config field has a default");
        let config_bytes = serde_json::to_vec(&oci).expect("image configs serialise");
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
                compression: Some(Compression::Uncompressed),
                blob_digest: None,
            }],
            name: None,
        };
        // The scratch tar is a member of the tmp dir, read like a directory archive's file.
        let source = Source::open(&self.tmp_dir(), &self.tmp_dir())?;
        self.install(&source, plan, &name, &mut |_| {})
    }

    /// Unpacks missing layers and writes the record; undoes its own work on failure.
    fn install(
        &self,
        source: &Source,
        plan: Plan,
        name: &str,
        report: &mut dyn FnMut(PullEvent),
    ) -> Result<ImageRecord> {
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
                let layer_name = Some(berth_oci::digest::short(diff_id));
                if final_dir.is_dir() {
                    size += dir_size(&final_dir);
                    report(PullEvent {
                        layer: layer_name,
                        status: "Already exists".into(),
                        ..PullEvent::default()
                    });
                    continue;
                }
                let staging = self.tmp_dir().join(format!("layer-{diff_id}"));
                let _ = fs::remove_dir_all(&staging);
                create_dir_all(&staging)?;
                let total = source.size(&layer.path);
                let mut loading = |current| {
                    report(PullEvent {
                        layer: layer_name.clone(),
                        status: "Loading layer".into(),
                        current: Some(current),
                        total,
                    })
                };
                let outcome = extract(source, layer, diff_id, &staging, &mut loading);
                match outcome {
                    Ok(bytes) => size += bytes,
                    Err(e) => {
                        let _ = fs::remove_dir_all(&staging);
                        return Err(e);
                    }
                }
                crash::point("native.import.extracted");
                fs::rename(&staging, &final_dir)
                    .context(|| format!("moving layer {diff_id} into {}", final_dir.display()))?;
                added.push(final_dir);
                report(PullEvent {
                    layer: layer_name,
                    status: "Loaded".into(),
                    ..PullEvent::default()
                });
            }
            crash::point("native.import.layers-in");
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

    /// Finds an image by name (in [`find`]'s order: `busybox` is `docker.io/library/busybox:latest`),
    /// full id (optionally `sha256:`) or unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord> {
        let records = self.records()?;
        let not_found = || {
            Error::not_found(berth_core::Object::Image, reference).with_hint(
                "pull or import it: `berth image pull REF`, `berth image import FILE NAME`",
            )
        };
        let names: Vec<String> = records.iter().flat_map(|r| r.names.clone()).collect();
        if let Some(name) = find(reference, &names)
            && let Some(r) = records.iter().find(|r| r.names.contains(name))
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
    /// `kept` are layers something else (snapshots) still stands on.
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        kept: &BTreeSet<String>,
    ) -> Result<ImageRecord> {
        let _lock = self.lock(LockMode::Exclusive)?;
        let mut record = self.resolve(reference)?;
        let name = find(reference, &record.names).cloned();
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
        crash::point("native.image-rm.unrecorded");
        self.collect_layers(kept)?;
        Ok(record)
    }

    /// Deletes every layer directory no image lists (also the leftovers of a crashed import).
    fn collect_layers(&self, kept: &BTreeSet<String>) -> Result<()> {
        for name in self.unused_layers(kept)? {
            // Rename first so a half-deleted layer is never mistaken for a whole one.
            let doomed = self.tmp_dir().join(format!("gc-{name}"));
            let layer = self.layer_dir(&name);
            fs::rename(&layer, &doomed)
                .context(|| format!("removing layer {}", layer.display()))?;
            fs::remove_dir_all(&doomed).context(|| format!("removing {}", doomed.display()))?;
        }
        Ok(())
    }

    /// Layer directories that no image lists and `kept` does not name.
    fn unused_layers(&self, kept: &BTreeSet<String>) -> Result<Vec<String>> {
        let mut used: BTreeSet<String> =
            self.records()?.into_iter().flat_map(|r| r.layers).collect();
        used.extend(kept.iter().cloned());
        let dir = self.root.join("layers");
        let mut unused = Vec::new();
        for entry in fs::read_dir(&dir).context(|| format!("listing {}", dir.display()))? {
            let entry = entry.context(|| format!("listing {}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !used.contains(&name) {
                unused.push(name);
            }
        }
        Ok(unused)
    }

    /// What a killed import or image removal left: staging files and layers no image (and no
    /// snapshot, `kept`) stands on. Skipped while an import or removal holds the store. One
    /// line per thing removed (with `dry_run`, that would be).
    pub fn collect_garbage(&self, kept: &BTreeSet<String>, dry_run: bool) -> Result<Vec<String>> {
        let Some(_lock) = self
            .store
            .try_lock(IMAGES, IMAGES_LOCK, LockMode::Exclusive)?
        else {
            return Ok(Vec::new());
        };
        let mut done: Vec<String> = fs::read_dir(self.tmp_dir())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| format!("image staging {}", e.path().display()))
            .collect();
        let layers = self.unused_layers(kept)?;
        done.extend(
            layers
                .iter()
                .map(|l| format!("image layer {l} (no image uses it)")),
        );
        if !dry_run {
            self.clean_tmp();
            self.collect_layers(kept)?;
        }
        Ok(done)
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
/// A reader that reports how much has been read, for a layer's progress bar.
struct Counted<'a, R> {
    inner: R,
    read: u64,
    reported: u64,
    report: &'a mut dyn FnMut(u64),
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        // Every 256 KiB and at the end: a bar needs no more.
        if n == 0 || self.read - self.reported >= 256 * 1024 {
            self.reported = self.read;
            (self.report)(self.read);
        }
        Ok(n)
    }
}

fn extract(
    source: &Source,
    layer: &LayerRef,
    diff_id: &str,
    staging: &Path,
    loading: &mut dyn FnMut(u64),
) -> Result<u64> {
    let archive = source.origin();
    let layer_error =
        |message: String| corrupt(archive, format!("layer {}: {message}", layer.path));
    let counted = Counted {
        inner: source.read(&layer.path)?,
        read: 0,
        reported: 0,
        report: loading,
    };
    let mut blob = HashingReader::new(BufReader::new(counted));
    let head = blob
        .get_mut()
        .fill_buf()
        .map_err(|e| layer_error(format!("unreadable: {e}")))?
        .to_vec();
    let compression = layer
        .compression
        .unwrap_or_else(|| Compression::sniff(&head));
    let what = format!("layer {} of {}", layer.path, archive.display());
    let unpacked = layers::unpack(compression.decoder(&mut blob, &what)?, staging);
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
