//! Snapshots on the native backend's overlay layers, in containerd's model: a committed
//! snapshot is a read-only layer on an optional parent, an active one a writable upper dir on a
//! committed parent.
//!
//! Image layers show as committed snapshots named by their chain id (the name containerd gives
//! them), so work can start from an image. berth's own snapshots live in
//! `<state-dir>/native/snapshots/<key>/` as `meta.json`, `fs/` (the layer, or the upper dir of
//! an active one) and `work/` (overlayfs's, active only). Each records the image layers under it,
//! so removing the image keeps them.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use berth_core::store::{create_dir_all, read_json, write_json};
use berth_core::{
    Error, IoContext, LockGuard, LockMode, Result, SnapshotInfo, SnapshotKind, SnapshotMount,
    Store, crash, snapshot,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::images::ImageStore;

const LOCK_KIND: &str = "native-snapshots";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    kind: SnapshotKind,
    parent: Option<String>,
    created: DateTime<Utc>,
    /// Diff ids (hex) of the image layers at the bottom of its line, kept while it exists.
    #[serde(default)]
    image_layers: Vec<String>,
}

/// A snapshot and where its own layer is.
struct Entry {
    info: SnapshotInfo,
    fs: PathBuf,
    image_layers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
    store: Store,
    images: ImageStore,
}

/// `<state-dir>/native/snapshots`.
fn root_of(store: &Store) -> PathBuf {
    store.state_dir().join("native").join("snapshots")
}

/// Image layers (diff ids) berth's snapshots stand on, which image removal must keep.
pub fn image_layers_in_use(store: &Store) -> Result<BTreeSet<String>> {
    let mut used = BTreeSet::new();
    let root = root_of(store);
    let Ok(entries) = fs::read_dir(&root) else {
        return Ok(used);
    };
    for entry in entries.flatten() {
        if let Some(meta) = read_json::<Meta>(&entry.path().join("meta.json"), "snapshot record")? {
            used.extend(meta.image_layers);
        }
    }
    Ok(used)
}

impl SnapshotStore {
    pub fn open(store: &Store, images: &ImageStore) -> SnapshotStore {
        SnapshotStore {
            root: root_of(store),
            store: store.clone(),
            images: images.clone(),
        }
    }

    fn lock(&self) -> Result<LockGuard> {
        self.store.lock(LOCK_KIND, "all", LockMode::Exclusive)
    }

    /// Every snapshot: image layers by chain id, then berth's own.
    pub fn list(&self) -> Result<Vec<SnapshotInfo>> {
        Ok(self.entries()?.into_iter().map(|e| e.info).collect())
    }

    fn entries(&self) -> Result<Vec<Entry>> {
        let mut entries: Vec<Entry> = Vec::new();
        for image in self.images.list()? {
            self.push_image_layers(&mut entries, &image.layers, image.created);
        }
        let Ok(dirs) = fs::read_dir(&self.root) else {
            return Ok(entries);
        };
        let mut own = Vec::new();
        for dir in dirs.flatten() {
            let name = dir.file_name().to_string_lossy().into_owned();
            // Staging dirs of a prepare or commit in flight start with '.'.
            if name.starts_with('.') {
                continue;
            }
            if let Some(meta) = read_json::<Meta>(&dir.path().join("meta.json"), "snapshot record")?
            {
                // Layers of a removed image, which this snapshot keeps.
                self.push_image_layers(&mut entries, &meta.image_layers, meta.created);
                own.push(Entry {
                    info: SnapshotInfo {
                        name,
                        parent: meta.parent,
                        kind: meta.kind,
                        created: Some(meta.created),
                    },
                    fs: dir.path().join("fs"),
                    image_layers: meta.image_layers,
                });
            }
        }
        own.sort_by(|a, b| a.info.name.cmp(&b.info.name));
        entries.extend(own);
        Ok(entries)
    }

    /// Image layers `layers` (diff ids, base first) as committed snapshots by chain id.
    fn push_image_layers(
        &self,
        entries: &mut Vec<Entry>,
        layers: &[String],
        created: DateTime<Utc>,
    ) {
        let mut diff_ids = Vec::new();
        let mut parent = None;
        for layer in layers {
            diff_ids.push(format!("sha256:{layer}"));
            let chain = berth_oci::digest::chain_id(&diff_ids).expect("one layer at least");
            if !entries.iter().any(|e| e.info.name == chain) {
                entries.push(Entry {
                    info: SnapshotInfo {
                        name: chain.clone(),
                        parent: parent.clone(),
                        kind: SnapshotKind::Committed,
                        created: Some(created),
                    },
                    fs: self.images.layer_dir(layer),
                    image_layers: layers[..diff_ids.len()].to_vec(),
                });
            }
            parent = Some(chain);
        }
    }

    fn find<'a>(entries: &'a [Entry], key: &str) -> Result<&'a Entry> {
        entries.iter().find(|e| e.info.name == key).ok_or_else(|| {
            Error::not_found(berth_core::Object::Snapshot, key).with_hint("see `berth snapshot ls`")
        })
    }

    /// The layers of committed `name` and its ancestors, top first.
    fn layers(entries: &[Entry], name: &str) -> Result<Vec<PathBuf>> {
        let infos: Vec<SnapshotInfo> = entries.iter().map(|e| e.info.clone()).collect();
        let line = snapshot::lineage(name, &infos)?;
        let base = Self::find(entries, line.last().expect("lineage starts at name"))?;
        if let Some(missing) = &base.info.parent {
            return Err(Error::Corrupt {
                what: "snapshot".into(),
                path: base.fs.clone(),
                message: format!("its parent {missing} is gone (or the line loops)"),
                hint: "remove the snapshots built on it".into(),
            });
        }
        line.iter()
            .map(|n| Self::find(entries, n).map(|e| e.fs.clone()))
            .collect()
    }

    /// Where the layer of snapshot `key` lives, if `key` exists: its `fs` directory.
    pub fn layer_of(&self, key: &str) -> Result<Option<PathBuf>> {
        let entries = self.entries()?;
        Ok(entries
            .into_iter()
            .find(|e| e.info.name == key)
            .map(|e| e.fs))
    }

    /// Every staging directory (`.KEY.PID`) of a create in flight or one that died.
    pub fn staging_dirs(&self) -> Vec<PathBuf> {
        fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|d| d.file_name().to_string_lossy().starts_with('.'))
            .map(|d| d.path())
            .collect()
    }

    /// Layers moved in by a `create` of `key` that died before renaming its staging
    /// directory into place: `(staging dir, its fs)`.
    pub fn staged(&self, key: &str) -> Vec<(PathBuf, PathBuf)> {
        let prefix = format!(".{key}.");
        fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|d| d.file_name().to_string_lossy().starts_with(&prefix))
            .map(|d| (d.path(), d.path().join("fs")))
            .filter(|(_, fs)| fs.is_dir())
            .collect()
    }

    /// The overlay lower dirs for a container on committed `name`, top first.
    pub fn lower_dirs(&self, name: &str) -> Result<Vec<PathBuf>> {
        let entries = self.entries()?;
        let entry = Self::find(&entries, name)?;
        if entry.info.kind != SnapshotKind::Committed {
            return Err(not_committed(name));
        }
        Self::layers(&entries, name)
    }

    /// A new active snapshot `key` on committed `parent`; its mounts.
    pub fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<SnapshotMount>> {
        check_key(key)?;
        let _images = self.images.lock(LockMode::Shared)?;
        let _lock = self.lock()?;
        let entries = self.entries()?;
        let image_layers = match parent {
            Some(parent) => {
                let entry = Self::find(&entries, parent)?;
                if entry.info.kind != SnapshotKind::Committed {
                    return Err(not_committed(parent));
                }
                Self::layers(&entries, parent)?;
                entry.image_layers.clone()
            }
            None => Vec::new(),
        };
        let meta = Meta {
            kind: SnapshotKind::Active,
            parent: parent.map(String::from),
            created: Utc::now(),
            image_layers,
        };
        self.create(&entries, key, &meta, None)?;
        self.mounts(key)
    }

    /// Makes snapshot `key` from `meta`, its layer `moved_in` (renamed) or empty; atomically, by
    /// renaming a staged directory into place.
    fn create(
        &self,
        entries: &[Entry],
        key: &str,
        meta: &Meta,
        moved_in: Option<&Path>,
    ) -> Result<()> {
        if entries.iter().any(|e| e.info.name == key) {
            return Err(Error::AlreadyExists {
                kind: berth_core::Object::Snapshot,
                name: key.to_string(),
                hint: "choose another key, or remove it first".into(),
            });
        }
        let staged = self.root.join(format!(".{key}.{}", std::process::id()));
        let _ = fs::remove_dir_all(&staged);
        create_dir_all(&staged)?;
        let made = (|| {
            match moved_in {
                Some(dir) => fs::rename(dir, staged.join("fs"))
                    .context(|| format!("moving {} into a snapshot", dir.display()))?,
                None => create_dir_all(&staged.join("fs"))?,
            }
            if meta.kind == SnapshotKind::Active {
                create_dir_all(&staged.join("work"))?;
            }
            write_json(&staged.join("meta.json"), meta)?;
            crash::point("native.snapshot.staged");
            fs::rename(&staged, self.root.join(key)).context(|| format!("creating snapshot {key}"))
        })();
        if made.is_err() {
            // A moved-in layer goes back where it came from.
            if let Some(dir) = moved_in {
                let _ = fs::rename(staged.join("fs"), dir);
            }
            let _ = fs::remove_dir_all(&staged);
        }
        made
    }

    /// Freezes active `key` as committed `name`; `key` is gone after.
    pub fn commit(&self, name: &str, key: &str) -> Result<()> {
        check_key(name)?;
        let _lock = self.lock()?;
        let entries = self.entries()?;
        let entry = Self::find(&entries, key)?;
        if entry.info.kind != SnapshotKind::Active {
            return Err(Error::invalid(
                format!("snapshot {key}"),
                "only an active snapshot can be committed",
            )
            .with_hint("prepare one on it first"));
        }
        let mut meta: Meta = read_json(&self.root.join(key).join("meta.json"), "snapshot record")?
            .ok_or_else(|| Error::not_found(berth_core::Object::Snapshot, key))?;
        meta.kind = SnapshotKind::Committed;
        meta.created = Utc::now();
        self.create(&entries, name, &meta, Some(&entry.fs))?;
        remove_dir(&self.root.join(key))
    }

    /// Moves `upper` (a stopped container's upper dir) in as committed `name` on `parent`.
    pub fn commit_dir(&self, name: &str, parent: &str, upper: &Path) -> Result<()> {
        check_key(name)?;
        let _images = self.images.lock(LockMode::Shared)?;
        let _lock = self.lock()?;
        let entries = self.entries()?;
        let parent_entry = Self::find(&entries, parent)?;
        let meta = Meta {
            kind: SnapshotKind::Committed,
            parent: Some(parent.to_string()),
            created: Utc::now(),
            image_layers: parent_entry.image_layers.clone(),
        };
        self.create(&entries, name, &meta, Some(upper))
    }

    /// The mounts that make `key`'s filesystem: an overlay on its parents (writable when
    /// active), or a bind mount of a lone layer.
    pub fn mounts(&self, key: &str) -> Result<Vec<SnapshotMount>> {
        let entries = self.entries()?;
        let entry = Self::find(&entries, key)?;
        let bind = |dir: &Path, mode: &str| SnapshotMount {
            kind: "bind".into(),
            source: dir.display().to_string(),
            options: vec!["rbind".into(), mode.into()],
        };
        let lower = |dirs: &[PathBuf]| {
            let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!("lowerdir={}", dirs.join(":"))
        };
        Ok(vec![match entry.info.kind {
            SnapshotKind::Active => match &entry.info.parent {
                None => bind(&entry.fs, "rw"),
                Some(parent) => SnapshotMount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    options: vec![
                        format!("workdir={}", self.root.join(key).join("work").display()),
                        format!("upperdir={}", entry.fs.display()),
                        lower(&Self::layers(&entries, parent)?),
                    ],
                },
            },
            _ => match Self::layers(&entries, key)?.as_slice() {
                [only] => bind(only, "ro"),
                layers => SnapshotMount {
                    kind: "overlay".into(),
                    source: "overlay".into(),
                    options: vec![lower(layers)],
                },
            },
        }])
    }

    /// Removes `key`: not one with children, not an image's layer, not one a container stands
    /// on (`used_by` names the container using a layer dir, if any).
    pub fn remove(
        &self,
        key: &str,
        used_by: impl Fn(&Path) -> Result<Option<String>>,
    ) -> Result<()> {
        let _lock = self.lock()?;
        let entries = self.entries()?;
        let entry = Self::find(&entries, key)?;
        if let Some(child) = entries
            .iter()
            .find(|e| e.info.parent.as_deref() == Some(key))
        {
            return Err(Error::conflict(
                format!("snapshot {key}"),
                format!("snapshot {} is built on it", child.info.name),
            )
            .with_hint("remove its children first (`berth snapshot ls` shows parents)"));
        }
        if !entry.fs.starts_with(&self.root) {
            return Err(
                Error::conflict(format!("snapshot {key}"), "it is a layer of an image")
                    .with_hint("it goes with the image: `berth image rm`"),
            );
        }
        if let Some(container) = used_by(&entry.fs)? {
            return Err(Error::conflict(
                format!("snapshot {key}"),
                format!("container {container} runs on it"),
            )
            .with_hint("remove the container first"));
        }
        remove_dir(&self.root.join(key))
    }
}

/// Keys name directories: letters, digits, `_`, `-`, `.`, not starting with `.`.
fn check_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && !key.starts_with('.')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("snapshot key {key:?}"),
            "use letters, digits, '_', '-' and '.', not starting with '.'",
        ))
    }
}

fn not_committed(name: &str) -> Error {
    Error::invalid(
        format!("snapshot {name}"),
        "it is active; only committed snapshots can be built on",
    )
    .with_hint(format!(
        "commit it first: `berth snapshot commit NAME {name}`"
    ))
}

/// Removes a snapshot directory, renaming it out of the listing first.
fn remove_dir(dir: &Path) -> Result<()> {
    let doomed = dir.with_file_name(format!(
        ".rm-{}",
        dir.file_name().unwrap_or_default().to_string_lossy()
    ));
    fs::rename(dir, &doomed).context(|| format!("removing {}", dir.display()))?;
    fs::remove_dir_all(&doomed).context(|| format!("removing {}", doomed.display()))
}
