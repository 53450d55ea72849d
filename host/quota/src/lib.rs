//! Named volumes with disk quotas, from sysinner's hostlet: a project registry that gives each
//! volume a quota project id, the `/etc/projects` file xfs reads, and one driver per
//! `[quota].type` (xfs project quotas, btrfs qgroups, or plain directories).

pub mod driver;
pub mod projects;
pub mod registry;

use std::path::{Path, PathBuf};

use berth_core::config::{QuotaConfig, QuotaKind};
use berth_core::{Error, LockMode, Result, Store};
use serde::Serialize;

use driver::QuotaDriver;
use registry::Registry;

/// One volume as `berth volume ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub name: String,
    /// Its quota project id.
    pub id: u32,
    pub path: PathBuf,
    /// The size limit in bytes; `None` for an unlimited volume.
    pub limit: Option<u64>,
    pub used: u64,
    pub driver: &'static str,
}

pub struct Volumes {
    config: QuotaConfig,
    root: PathBuf,
    store: Store,
    driver: Box<dyn QuotaDriver>,
}

/// Docker's rule for volume names.
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 128
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("volume name {name:?}"),
            "use letters, digits, '_', '.' and '-', starting with a letter or digit",
        ))
    }
}

impl Volumes {
    pub fn open(config: &QuotaConfig, store: &Store) -> Volumes {
        Volumes {
            config: config.clone(),
            root: config
                .path
                .clone()
                .unwrap_or_else(|| store.state_dir().join("volumes")),
            store: store.clone(),
            driver: driver::driver(config),
        }
    }

    fn registry_path(&self) -> PathBuf {
        registry::registry_path(self.store.state_dir())
    }

    /// Runs `f` on the registry under its lock and saves it when `f` succeeds.
    fn update<T>(&self, f: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
        let _lock = self.store.lock("quota", "registry", LockMode::Exclusive)?;
        let path = self.registry_path();
        let mut registry = Registry::load(&path)?;
        let value = f(&mut registry)?;
        registry.save(&path)?;
        if self.config.kind == QuotaKind::Xfs {
            let projects: Vec<(u32, PathBuf)> = registry
                .items
                .iter()
                .map(|i| (i.id, self.root.join(&i.name)))
                .collect();
            let refs: Vec<(u32, &Path)> =
                projects.iter().map(|(id, p)| (*id, p.as_path())).collect();
            projects::sync(&self.config.projects_file, &refs)?;
        }
        Ok(value)
    }

    /// Where a create records, before making anything, that it is making volume `name`: a
    /// create killed before the registry names the volume leaves this, and the next create of
    /// that name (or gc) knows the directory is berth's half-made volume, not someone's data.
    fn intent_path(&self, name: &str) -> PathBuf {
        self.store
            .state_dir()
            .join("quota")
            .join("creating")
            .join(name)
    }

    /// Creates volume `name`, limited to `size` bytes when given.
    pub fn create(&self, name: &str, size: Option<u64>) -> Result<Volume> {
        check_name(name)?;
        berth_core::store::create_dir_all(&self.root)?;
        let dir = self.root.join(name);
        let intent = self.intent_path(name);
        let mount = driver::mount_point(&self.root).display().to_string();
        self.update(|registry| {
            let taken = || Error::AlreadyExists {
                kind: berth_core::Object::Volume,
                name: name.to_string(),
                hint: "choose another name, or remove it with `berth volume rm`".into(),
            };
            if registry.by_name(name).is_some() {
                return Err(taken());
            }
            if dir.exists() {
                if !intent.exists() {
                    return Err(taken()); // a directory berth did not make
                }
                self.driver.remove(&dir, 0)?; // a killed create's half-made volume
            }
            berth_core::store::atomic_write(&intent, b"", 0o640)?;
            let id = registry.fetch_or_create(&mount, name)?.id;
            // A driver cleans up after its own failed create; the registry is then not saved.
            self.driver.create(&dir, id, size)?;
            let item = registry.by_name_mut(name).expect("just created");
            item.soft = size.unwrap_or(0);
            item.hard = size.unwrap_or(0);
            berth_core::crash::point("quota.volume.made");
            Ok(())
        })?;
        let _ = std::fs::remove_file(&intent);
        self.get(name)
    }

    /// Finishes or undoes creates that died: a volume the registry names keeps its
    /// directory, one it does not loses it. One line per thing done (with `dry_run`, that
    /// would be done).
    pub fn collect_garbage(&self, dry_run: bool) -> Result<Vec<String>> {
        let dir = self.intent_path("x");
        let dir = dir.parent().expect("intents have a directory");
        let Ok(intents) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        let _lock = self.store.lock("quota", "registry", LockMode::Exclusive)?;
        let registry = Registry::load(&self.registry_path())?;
        let mut done = Vec::new();
        for intent in intents.flatten() {
            let name = intent.file_name().to_string_lossy().into_owned();
            if registry.by_name(&name).is_none() && check_name(&name).is_ok() {
                done.push(format!("volume {name}: the create that did not finish"));
                if !dry_run {
                    self.driver.remove(&self.root.join(&name), 0)?;
                }
            }
            if !dry_run {
                let _ = std::fs::remove_file(intent.path());
            }
        }
        Ok(done)
    }

    pub fn get(&self, name: &str) -> Result<Volume> {
        let registry = Registry::load(&self.registry_path())?;
        let item = registry.by_name(name).ok_or_else(|| {
            Error::not_found(berth_core::Object::Volume, name)
                .with_hint(format!("create it with `berth volume create {name}`"))
        })?;
        let path = self.root.join(&item.name);
        Ok(Volume {
            name: item.name.clone(),
            id: item.id,
            used: self.driver.usage(&path, item.id)?,
            path,
            limit: (item.hard > 0).then_some(item.hard),
            driver: self.driver.kind().as_str(),
        })
    }

    pub fn list(&self) -> Result<Vec<Volume>> {
        let registry = Registry::load(&self.registry_path())?;
        registry.items.iter().map(|i| self.get(&i.name)).collect()
    }

    /// The host directory of volume `name`, which must exist.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        let registry = Registry::load(&self.registry_path())?;
        match registry.by_name(name) {
            Some(item) => Ok(self.root.join(&item.name)),
            None => Err(Error::not_found(berth_core::Object::Volume, name)
                .with_hint(format!("create it with `berth volume create {name}`"))),
        }
    }

    /// Removes volume `name` and its data; the caller checks no container uses it.
    pub fn remove(&self, name: &str) -> Result<()> {
        self.update(|registry| {
            let item = registry.by_name(name).cloned().ok_or_else(|| {
                Error::not_found(berth_core::Object::Volume, name)
                    .with_hint("see `berth volume ls`")
            })?;
            self.driver.remove(&self.root.join(name), item.id)?;
            registry.remove(name);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_names_follow_docker() {
        for ok in ["data", "a", "db_1.x-y"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "-a", ".a", "a/b", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_volumes_round_trip_and_a_failed_create_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state"), dir.path().join("run")).unwrap();
        let volumes = Volumes::open(&QuotaConfig::default(), &store);
        let v = volumes.create("data", None).unwrap();
        assert_eq!((v.id, v.limit, v.used, v.driver), (100, None, 0, "none"));
        std::fs::write(v.path.join("f"), b"12345").unwrap();
        assert_eq!(volumes.get("data").unwrap().used, 5);
        assert_eq!(
            volumes.create("data", None).unwrap_err().kind(),
            berth_core::ErrorKind::AlreadyExists
        );
        assert_eq!(
            volumes.get("data").unwrap().used,
            5,
            "the refused create kept the data"
        );
        // A limit the driver cannot enforce: refused, and nothing is left of it.
        assert!(volumes.create("sized", Some(1 << 20)).is_err());
        assert!(!v.path.with_file_name("sized").exists());
        assert_eq!(volumes.list().unwrap().len(), 1);
        volumes.remove("data").unwrap();
        assert!(!v.path.exists());
        assert!(volumes.list().unwrap().is_empty());
        assert_eq!(
            volumes.remove("data").unwrap_err().kind(),
            berth_core::ErrorKind::NotFound
        );
    }
}
