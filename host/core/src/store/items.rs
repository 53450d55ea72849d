//! Kata's item layer over the store: objects in a hierarchy (a lone container, a pod, an app
//! under its pod), records by kind routed to the root their lifetime needs, raw items a backend
//! keeps beside its records, and locks handed out as tokens.
//!
//! Routing is kata's: an object's configuration survives a reboot, its runtime items (state,
//! network, mounts, devices, process) live in the volatile root, so after a reboot they are
//! simply absent and the object reads as "not running", not as corrupt.

use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Durability, LockGuard, LockMode, Store, check_id, read_json, write_json};
use crate::error::{Error, Result};

/// One object of the store's hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRef<'a> {
    /// A container that belongs to no pod.
    Container(&'a str),
    Pod(&'a str),
    /// An app (a container) of a pod; its items live under the pod's.
    App {
        pod: &'a str,
        app: &'a str,
    },
}

impl ObjectRef<'_> {
    /// The object's directory below either root: `containers/ID`, `pods/ID`,
    /// `pods/POD/apps/APP`.
    fn relative(&self) -> Result<PathBuf> {
        Ok(match *self {
            ObjectRef::Container(id) => {
                check_id("container", id)?;
                PathBuf::from("containers").join(id)
            }
            ObjectRef::Pod(id) => {
                check_id("pod", id)?;
                PathBuf::from("pods").join(id)
            }
            ObjectRef::App { pod, app } => {
                check_id("pod", pod)?;
                check_id("app", app)?;
                PathBuf::from("pods").join(pod).join("apps").join(app)
            }
        })
    }
}

/// What a record holds, which decides where it lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item {
    /// What the user asked for: survives a reboot.
    Config,
    State,
    Network,
    Mounts,
    Devices,
    Process,
}

impl Item {
    pub const ALL: [Item; 6] = [
        Item::Config,
        Item::State,
        Item::Network,
        Item::Mounts,
        Item::Devices,
        Item::Process,
    ];

    pub fn durability(self) -> Durability {
        match self {
            Item::Config => Durability::Persistent,
            _ => Durability::Volatile,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Item::Config => "config",
            Item::State => "state",
            Item::Network => "network",
            Item::Mounts => "mounts",
            Item::Devices => "devices",
            Item::Process => "process",
        }
    }
}

/// Proof of a lock taken with [`Store::lock_object`]; [`Store::unlock`] gives it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockToken(String);

impl std::fmt::Display for LockToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The locks this process holds by token (shared by every clone of a [`Store`]).
pub(super) type HeldLocks = Arc<Mutex<HashMap<String, LockGuard>>>;

impl Store {
    fn object_path(&self, durability: Durability, object: &ObjectRef) -> Result<PathBuf> {
        Ok(self.root(durability).join(object.relative()?))
    }

    /// Where `item` of `object` lives: `config.json` under the state dir, the others under
    /// the run dir.
    pub fn item_path(&self, object: &ObjectRef, item: Item) -> Result<PathBuf> {
        Ok(self
            .object_path(item.durability(), object)?
            .join(format!("{}.json", item.name())))
    }

    /// Writes `item` of `object` atomically.
    pub fn store_item<T: Serialize>(
        &self,
        object: &ObjectRef,
        item: Item,
        value: &T,
    ) -> Result<()> {
        write_json(&self.item_path(object, item)?, value)
    }

    /// Reads `item` of `object`; `None` when it was never written or did not survive a reboot.
    pub fn load_item<T: DeserializeOwned>(
        &self,
        object: &ObjectRef,
        item: Item,
    ) -> Result<Option<T>> {
        read_json(
            &self.item_path(object, item)?,
            &format!("{} record", item.name()),
        )
    }

    /// Removes `item` of `object`; one that is not there is already removed.
    pub fn remove_item(&self, object: &ObjectRef, item: Item) -> Result<()> {
        let path = self.item_path(object, item)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }

    pub fn item_exists(&self, object: &ObjectRef, item: Item) -> Result<bool> {
        Ok(self.item_path(object, item)?.is_file())
    }

    /// Where raw item `name` of `object` lives (an opaque file a backend keeps beside its
    /// records, persistent); an empty name gets a fresh one, as kata's `Raw("")` does.
    pub fn raw_path(&self, object: &ObjectRef, name: &str) -> Result<PathBuf> {
        let name = if name.is_empty() {
            format!("raw-{}", &crate::new_id()[..16])
        } else {
            check_id("raw item", name)?;
            name.to_string()
        };
        Ok(self
            .object_path(Durability::Persistent, object)?
            .join("raw")
            .join(name))
    }

    /// Writes raw item `name` of `object` atomically; its path.
    pub fn write_raw(&self, object: &ObjectRef, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let path = self.raw_path(object, name)?;
        super::atomic_write(&path, bytes, 0o640)?;
        Ok(path)
    }

    pub fn read_raw(&self, object: &ObjectRef, name: &str) -> Result<Option<Vec<u8>>> {
        let path = self.raw_path(object, name)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
        }
    }

    /// Removes every item of `object` in both roots, raw items and (for a pod) its apps too.
    pub fn delete_all(&self, object: &ObjectRef) -> Result<()> {
        for durability in [Durability::Persistent, Durability::Volatile] {
            super::remove_dir(&self.object_path(durability, object)?)?;
        }
        Ok(())
    }

    /// The apps recorded under `pod`, sorted.
    pub fn apps(&self, pod: &str) -> Result<Vec<String>> {
        let pod = self.object_path(Durability::Persistent, &ObjectRef::Pod(pod))?;
        super::subdirectory_names(&pod.join("apps"))
    }

    fn object_lock_path(&self, object: &ObjectRef) -> Result<PathBuf> {
        // Not `with_extension`: ids may contain dots.
        let relative = object.relative()?;
        Ok(self
            .run_dir
            .join("locks")
            .join(format!("{}.lock", relative.display())))
    }

    /// Locks `object` across processes, blocking until it is free; the lock is held until
    /// [`Store::unlock`] is given the token (or the process ends).
    pub fn lock_object(&self, object: &ObjectRef, mode: LockMode) -> Result<LockToken> {
        let guard = super::lock_file(&self.object_lock_path(object)?, mode)?;
        Ok(self.hold(guard))
    }

    /// Like [`Store::lock_object`] but `None` at once when another holder conflicts.
    pub fn try_lock_object(&self, object: &ObjectRef, mode: LockMode) -> Result<Option<LockToken>> {
        let guard = super::try_lock_file(&self.object_lock_path(object)?, mode)?;
        Ok(guard.map(|guard| self.hold(guard)))
    }

    fn hold(&self, guard: LockGuard) -> LockToken {
        let token = crate::new_id()[..32].to_string();
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(token.clone(), guard);
        LockToken(token)
    }

    /// Releases the lock `token` stands for; a token this store did not hand out (or already
    /// took back) is an error, as in kata.
    pub fn unlock(&self, token: &LockToken) -> Result<()> {
        let released = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&token.0);
        match released {
            Some(_guard) => Ok(()),
            None => Err(Error::invalid(
                "unlock",
                format!("no lock for token {}", token.0),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::store;
    use std::collections::BTreeMap;

    const POD: ObjectRef = ObjectRef::Pod("web");
    const APP: ObjectRef = ObjectRef::App {
        pod: "web",
        app: "nginx",
    };

    #[test]
    fn state_is_stored_as_exactly_its_json_in_the_volatile_root() {
        let (_dir, store) = store();
        let state: BTreeMap<&str, &str> = [("Field1", "value1"), ("Field2", "value2")].into();
        store.store_item(&POD, Item::State, &state).unwrap();
        let path = store.item_path(&POD, Item::State).unwrap();
        assert_eq!(path, store.run_dir().join("pods/web/state.json"));
        let on_disk: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            on_disk,
            serde_json::json!({"Field1": "value1", "Field2": "value2"})
        );
    }

    #[test]
    fn config_survives_a_reboot_and_runtime_items_read_as_absent() {
        let (_dir, store) = store();
        for item in Item::ALL {
            store.store_item(&APP, item, &item.name()).unwrap();
        }
        assert_eq!(
            store.item_path(&APP, Item::Config).unwrap(),
            store.state_dir().join("pods/web/apps/nginx/config.json")
        );
        // A reboot: the run dir is a fresh tmpfs.
        fs::remove_dir_all(store.run_dir()).unwrap();
        fs::create_dir_all(store.run_dir()).unwrap();
        let config: Option<String> = store.load_item(&APP, Item::Config).unwrap();
        assert_eq!(config.as_deref(), Some("config"));
        for item in Item::ALL.into_iter().filter(|i| *i != Item::Config) {
            assert!(!store.item_exists(&APP, item).unwrap(), "{item:?}");
            assert_eq!(store.load_item::<String>(&APP, item).unwrap(), None);
        }
        assert_eq!(store.apps("web").unwrap(), ["nginx"]);
    }

    #[test]
    fn raw_items_live_under_the_object_and_an_empty_name_gets_a_fresh_one() {
        let (_dir, store) = store();
        let path = store.write_raw(&POD, "roah", b"opaque").unwrap();
        assert_eq!(path, store.state_dir().join("pods/web/raw/roah"));
        assert_eq!(
            store.read_raw(&POD, "roah").unwrap().as_deref(),
            Some(&b"opaque"[..])
        );
        assert_eq!(store.read_raw(&POD, "missing").unwrap(), None);
        let fresh = store.raw_path(&POD, "").unwrap();
        let name = fresh.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("raw-"), "{name}");
        assert_ne!(fresh, store.raw_path(&POD, "").unwrap());
        assert!(store.raw_path(&POD, "../escape").is_err());
    }

    #[test]
    fn delete_all_removes_a_pod_its_apps_and_raw_items_in_both_roots() {
        let (_dir, store) = store();
        store.store_item(&POD, Item::Config, &1).unwrap();
        store.store_item(&POD, Item::State, &1).unwrap();
        store.store_item(&APP, Item::Process, &1).unwrap();
        store.write_raw(&APP, "bundle", b"x").unwrap();
        let lone = ObjectRef::Container("lone");
        store.store_item(&lone, Item::Config, &1).unwrap();
        store.delete_all(&POD).unwrap();
        assert!(!store.state_dir().join("pods/web").exists());
        assert!(!store.run_dir().join("pods/web").exists());
        assert!(store.apps("web").unwrap().is_empty());
        assert!(store.item_exists(&lone, Item::Config).unwrap());
        store.delete_all(&POD).unwrap();
    }

    #[test]
    fn two_shared_locks_coexist_and_a_second_unlock_fails() {
        let (_dir, store) = store();
        let first = store.lock_object(&POD, LockMode::Shared).unwrap();
        let second = store.lock_object(&POD, LockMode::Shared).unwrap();
        assert!(
            store
                .try_lock_object(&POD, LockMode::Exclusive)
                .unwrap()
                .is_none()
        );
        store.unlock(&first).unwrap();
        store.unlock(&second).unwrap();
        let err = store.unlock(&second).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid unlock: no lock for token {second}")
        );
    }

    #[test]
    fn exclusive_locks_exclude_until_unlocked_and_tokens_are_per_lock() {
        let (_dir, store) = store();
        let token = store.lock_object(&APP, LockMode::Exclusive).unwrap();
        let other = store.clone();
        assert!(
            other
                .try_lock_object(&APP, LockMode::Shared)
                .unwrap()
                .is_none()
        );
        // The pod and its app are separate objects with separate locks.
        let pod = store.lock_object(&POD, LockMode::Exclusive).unwrap();
        other.unlock(&token).unwrap();
        let again = store.lock_object(&APP, LockMode::Exclusive).unwrap();
        assert_ne!(again, token);
        store.unlock(&again).unwrap();
        assert!(store.unlock(&again).is_err());
        store.unlock(&pod).unwrap();
        assert!(store.unlock(&LockToken("made-up".into())).is_err());
    }

    #[test]
    fn empty_or_climbing_ids_are_refused() {
        let (_dir, store) = store();
        for object in [
            ObjectRef::Pod(""),
            ObjectRef::Container(".."),
            ObjectRef::App {
                pod: "web",
                app: "a/b",
            },
        ] {
            assert!(
                store.store_item(&object, Item::Config, &1).is_err(),
                "{object:?}"
            );
            assert!(store.lock_object(&object, LockMode::Shared).is_err());
        }
    }
}
