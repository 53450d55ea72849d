//! The project registry, with sysinner's allocation rules: which quota project id each volume
//! has. Stored as JSON in the state dir and, unlike upstream, written atomically.

use std::path::{Path, PathBuf};

use berth_core::{Error, Result, store};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Ids below this are left to the system.
pub const FIRST_ID: u32 = 100;
/// An offset at or past this starts again from [`FIRST_ID`].
pub const OFFSET_RESET: u32 = 100_000;
/// The last id the scan considers, inclusive.
pub const LAST_ID: u32 = 110_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaItem {
    pub id: u32,
    pub mnt: String,
    pub name: String,
    #[serde(default)]
    pub soft: u64,
    #[serde(default)]
    pub hard: u64,
    #[serde(default)]
    pub used: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<QuotaItem>,
    #[serde(default)]
    pub updated: Option<DateTime<Utc>>,
    #[serde(default)]
    pub id_offset: u32,
    #[serde(default)]
    pub mount_points: Vec<String>,
}

impl Registry {
    /// The registry at `path`, empty when the file does not exist yet.
    pub fn load(path: &Path) -> Result<Registry> {
        Ok(store::read_json(path, "quota registry")?.unwrap_or_default())
    }

    pub fn save(&mut self, path: &Path) -> Result<()> {
        self.updated = Some(Utc::now());
        store::write_json(path, self)
    }

    /// The item named `name`, created with the next free id when there is none. A mount of ""
    /// or "/" means "/opt"; an existing name is returned unchanged (offset untouched).
    pub fn fetch_or_create(&mut self, mnt: &str, name: &str) -> Result<&QuotaItem> {
        if let Some(index) = self.items.iter().position(|i| i.name == name) {
            return Ok(&self.items[index]);
        }
        let mnt = if mnt.is_empty() || mnt == "/" {
            "/opt"
        } else {
            mnt
        };
        if !(FIRST_ID..OFFSET_RESET).contains(&self.id_offset) {
            self.id_offset = FIRST_ID;
        }
        let taken: std::collections::HashSet<u32> = self.items.iter().map(|i| i.id).collect();
        let id = (self.id_offset..=LAST_ID)
            .find(|id| !taken.contains(id))
            .ok_or_else(|| {
                Error::conflict(
                    format!("quota project for {name}"),
                    format!("every id from {} to {LAST_ID} is taken", self.id_offset),
                )
                .with_hint("remove unused volumes with `berth volume rm`")
            })?;
        self.id_offset = id + 1;
        self.items.push(QuotaItem {
            id,
            mnt: mnt.to_string(),
            name: name.to_string(),
            soft: 0,
            hard: 0,
            used: 0,
        });
        Ok(self.items.last().expect("just pushed"))
    }

    /// Removes the item named `name`; whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.items.iter().position(|i| i.name == name) {
            Some(index) => {
                self.items.remove(index);
                true
            }
            None => false,
        }
    }

    pub fn by_name(&self, name: &str) -> Option<&QuotaItem> {
        self.items.iter().find(|i| i.name == name)
    }

    pub fn by_name_mut(&mut self, name: &str) -> Option<&mut QuotaItem> {
        self.items.iter_mut().find(|i| i.name == name)
    }

    pub fn by_id(&self, id: u32) -> Option<&QuotaItem> {
        self.items.iter().find(|i| i.id == id)
    }
}

/// `<state-dir>/quota/registry.json`.
pub fn registry_path(state_dir: &Path) -> PathBuf {
    state_dir.join("quota").join("registry.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(r: &Registry) -> Vec<u32> {
        r.items.iter().map(|i| i.id).collect()
    }

    #[test]
    fn empty_gives_100_then_101() {
        let mut r = Registry::default();
        assert_eq!(r.fetch_or_create("/data", "a").unwrap().id, 100);
        assert_eq!(r.fetch_or_create("/data", "b").unwrap().id, 101);
        assert_eq!(r.id_offset, 102);
    }

    #[test]
    fn a_removed_id_is_not_reused_before_the_offset_wraps() {
        let mut r = Registry::default();
        r.fetch_or_create("/data", "a").unwrap();
        r.fetch_or_create("/data", "b").unwrap();
        assert!(r.remove("a"));
        assert_eq!(r.fetch_or_create("/data", "c").unwrap().id, 102);
    }

    #[test]
    fn gaps_from_offset_zero() {
        let item = |id: u32| QuotaItem {
            id,
            mnt: "/data".into(),
            name: format!("v{id}"),
            soft: 0,
            hard: 0,
            used: 0,
        };
        let mut r = Registry {
            items: vec![item(100), item(101), item(103)],
            ..Registry::default()
        };
        assert_eq!(r.fetch_or_create("/data", "x").unwrap().id, 102);
        assert_eq!(r.fetch_or_create("/data", "y").unwrap().id, 104);
    }

    #[test]
    fn an_offset_past_the_reset_starts_again_and_reuses_the_lowest_gap() {
        let mut r = Registry::default();
        for name in ["a", "b", "c"] {
            r.fetch_or_create("/data", name).unwrap();
        }
        r.remove("a");
        r.id_offset = OFFSET_RESET;
        assert_eq!(r.fetch_or_create("/data", "d").unwrap().id, 100);
        assert_eq!(ids(&r), [101, 102, 100]);
    }

    #[test]
    fn an_existing_name_is_returned_unchanged_and_leaves_the_offset() {
        let mut r = Registry::default();
        let first = r.fetch_or_create("/data", "a").unwrap().clone();
        let offset = r.id_offset;
        assert_eq!(r.fetch_or_create("/elsewhere", "a").unwrap(), &first);
        assert_eq!(r.id_offset, offset);
    }

    #[test]
    fn the_root_mount_means_opt() {
        let mut r = Registry::default();
        assert_eq!(r.fetch_or_create("", "a").unwrap().mnt, "/opt");
        assert_eq!(r.fetch_or_create("/", "b").unwrap().mnt, "/opt");
    }

    #[test]
    fn no_free_id_is_a_clear_error() {
        let mut r = Registry {
            items: (FIRST_ID..=LAST_ID)
                .map(|id| QuotaItem {
                    id,
                    mnt: "/data".into(),
                    name: id.to_string(),
                    soft: 0,
                    hard: 0,
                    used: 0,
                })
                .collect(),
            ..Registry::default()
        };
        let e = r.fetch_or_create("/data", "one-more").unwrap_err();
        assert!(e.to_string().contains("110000"), "{e}");
    }

    #[test]
    fn saves_atomically_with_upstream_keys_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = registry_path(dir.path());
        let mut r = Registry::default();
        r.fetch_or_create("/data", "a").unwrap();
        r.save(&path).unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for key in ["items", "updated", "id_offset", "mount_points"] {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        assert_eq!(Registry::load(&path).unwrap().items, r.items);
    }
}
