//! Snapshots as a core service: the filesystem layers a backend keeps (containerd's snapshotter,
//! the native overlay layers), named by key, each on an optional parent. A container's rootfs
//! is an *active* snapshot; committing one freezes it under a name other snapshots can start
//! from, which is how `berth commit` and `berth rollback` version a container.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Read-only, mounted on its parent.
    View,
    /// Writable: a container's rootfs, or work in progress.
    Active,
    /// Frozen under a name; parent of others.
    Committed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// The key (active, view) or name (committed).
    pub name: String,
    pub parent: Option<String>,
    pub kind: SnapshotKind,
    pub created: Option<DateTime<Utc>>,
}

/// One mount that makes a snapshot's filesystem, as `mount -t TYPE -o OPTIONS SOURCE DIR` would.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMount {
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// `name` and its ancestors, from `name` down to the base layer. A missing `name` is not
/// found; the line ends before an ancestor that is gone, and at the first repeat of a cycle.
pub fn lineage(name: &str, snapshots: &[SnapshotInfo]) -> Result<Vec<String>> {
    let parents: HashMap<&str, Option<&str>> = snapshots
        .iter()
        .map(|s| (s.name.as_str(), s.parent.as_deref()))
        .collect();
    if !parents.contains_key(name) {
        return Err(Error::not_found(crate::error::Object::Snapshot, name)
            .with_hint("see `berth snapshot ls`"));
    }
    let mut line = vec![name.to_string()];
    let mut at = name;
    while let Some(Some(parent)) = parents.get(at) {
        if !parents.contains_key(parent) || line.iter().any(|seen| seen == parent) {
            break;
        }
        line.push(parent.to_string());
        at = parent;
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(name: &str, parent: Option<&str>) -> SnapshotInfo {
        SnapshotInfo {
            name: name.into(),
            parent: parent.map(String::from),
            kind: SnapshotKind::Committed,
            created: None,
        }
    }

    #[test]
    fn lineage_walks_to_the_base_and_survives_gaps_and_cycles() {
        let chain = [
            snapshot("a", None),
            snapshot("b", Some("a")),
            snapshot("c", Some("b")),
            snapshot("d", Some("c")),
        ];
        assert_eq!(lineage("d", &chain).unwrap(), ["d", "c", "b", "a"]);
        assert_eq!(lineage("a", &chain).unwrap(), ["a"]);
        let e = lineage("x", &chain).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);

        // A parent that is gone ends the line before it.
        let orphan = [snapshot("b", Some("a"))];
        assert_eq!(lineage("b", &orphan).unwrap(), ["b"]);

        let cycle = [snapshot("p", Some("q")), snapshot("q", Some("p"))];
        assert_eq!(lineage("p", &cycle).unwrap(), ["p", "q"]);
    }
}
