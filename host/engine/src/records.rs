//! berth's own container records, whatever backend runs the container.
//!
//! A record is written under the container's id in the state store. A create writes it first as
//! a *claim* (phase `creating`), holding the container's lock for as long as the create runs:
//! the name is taken before any plugin with side effects is asked, and a second create of the
//! same name is refused at once. The claim names its backend before the backend is asked to
//! create anything, so a claim left by a killed `berth` says what it may have left behind; the
//! next create of that name finds the claim's lock free, removes what it names and takes over.
//!
//! A removal marks the record `removing` before the backend is asked, so a removal that died
//! half-way is finished by the next `rm` or `berth gc` rather than leaving a record whose
//! container is gone. A record that does not parse stands for itself alone: it is listed as
//! `unreadable` under its id, and `rm -f` removes it; it never blocks other containers.
//!
//! Names are indexed (`state-dir/container-names/<sha256 of the name>` holds an id), so a
//! create checks its name and a reference resolves by name without reading every record. An
//! entry is a hint: it counts only while the record it names exists under that name. A claim
//! writes its entry before its record, so a record always has one: even unsynced (a `run --rm`)
//! the entry's rename is journaled no later than the record's. An entry that does not read as
//! an id, and a state dir from before the index (no `.complete` marker yet), fall back to
//! reading every record; the first claim under the names lock builds the index.

use berth_core::{
    ContainerBackend, ContainerSpec, Durability, Error, LockGuard, LockMode, RemoveOptions, Result,
    Store, Survives,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Store kind of berth's own container records.
pub(crate) const CONTAINERS: &str = "containers";
/// Lock taken while a name is checked and claimed, so two processes cannot take the same one.
pub(crate) const NAMES_LOCK: &str = "names";
/// The record's item in the container's store directory.
const ITEM: &str = "config";
/// The name index's directory under the state dir, and the marker its build leaves.
const NAME_INDEX: &str = "container-names";
const INDEX_COMPLETE: &str = ".complete";

/// Where a record is in its life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Name claimed; the backend may or may not have the container yet.
    Creating,
    /// The backend has the container.
    #[default]
    Created,
    /// Being removed: the backend may or may not still have the container.
    Removing,
    /// The record does not parse (never written: how an unreadable one is read).
    Unreadable,
}

impl Phase {
    fn is_created(&self) -> bool {
        *self == Phase::Created
    }
}

/// What berth remembers about a container, whatever backend runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// The backend that runs it; empty in a claim placement has not yet decided.
    pub backend: String,
    /// The spec after plugins patched it: what the backend was asked to run.
    pub spec: ContainerSpec,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Phase::is_created")]
    pub phase: Phase,
    /// `run --rm`: removed once it has exited, by `run` itself or, if that died, by gc.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto_remove: bool,
    /// Why an [`Phase::Unreadable`] record could not be read.
    #[serde(skip)]
    pub problem: Option<String>,
}

impl ContainerRecord {
    /// What stands for a record that does not parse: its id, and the error.
    fn unreadable(id: &str, error: &Error) -> ContainerRecord {
        ContainerRecord {
            id: id.to_string(),
            name: String::new(),
            backend: String::new(),
            spec: ContainerSpec::default(),
            created: DateTime::<Utc>::UNIX_EPOCH,
            phase: Phase::Unreadable,
            auto_remove: false,
            problem: Some(error.to_string()),
        }
    }
}

/// A name taken for a create in progress; the container's lock is held until it is dropped.
pub struct Claim {
    pub record: ContainerRecord,
    _lock: LockGuard,
}

/// The records in a [`Store`].
#[derive(Clone)]
pub struct Records {
    store: Store,
}

impl Records {
    pub fn new(store: Store) -> Records {
        Records { store }
    }

    /// Every record, claims and unreadable ones included.
    pub fn all(&self) -> Result<Vec<ContainerRecord>> {
        let ids = self.store.list(Durability::Persistent, CONTAINERS)?;
        let read = berth_core::store::read_parallel(&ids, |id| self.read(id));
        let mut records = Vec::new();
        for (id, read) in ids.iter().zip(read) {
            match read {
                Ok(Some(record)) => records.push(record),
                // A directory without a record is a removal's leftover.
                Ok(None) => {}
                Err(e) if e.kind() == berth_core::ErrorKind::Corrupt => {
                    records.push(ContainerRecord::unreadable(id, &e))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(records)
    }

    /// Containers a user sees (claims of creates in progress left out), newest first.
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        let mut records: Vec<_> = self
            .all()?
            .into_iter()
            .filter(|r| r.phase != Phase::Creating)
            .collect();
        records.sort_by_key(|r| std::cmp::Reverse(r.created));
        Ok(records)
    }

    /// The record as it is now (for a step that needs its lock first, then the truth).
    pub fn reread(&self, id: &str) -> Result<ContainerRecord> {
        self.read(id)?
            .ok_or_else(|| Error::not_found(berth_core::Object::Container, id))
    }

    /// Where the record is kept, for messages about it.
    pub fn path(&self, id: &str) -> std::path::PathBuf {
        self.store
            .record_path(Durability::Persistent, CONTAINERS, id, ITEM)
    }

    fn read(&self, id: &str) -> Result<Option<ContainerRecord>> {
        self.store
            .read(Durability::Persistent, CONTAINERS, id, ITEM)
    }

    fn write(&self, record: &ContainerRecord) -> Result<()> {
        self.store.write_surviving(
            survives(record),
            Durability::Persistent,
            CONTAINERS,
            &record.id,
            ITEM,
            record,
        )
    }

    /// Finds a container by exact id, exact name, or unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<ContainerRecord> {
        if let Some(record) = self.named(reference)? {
            return Ok(record);
        }
        let records = self.containers()?;
        find_unique(&records, reference, "container", |r| (&r.id, &r.name))
            .cloned()
            .map_err(|e| {
                e.unwrap_or_else(|| {
                    Error::not_found(berth_core::Object::Container, reference)
                        .with_hint("see `berth ps -a` for existing containers")
                })
            })
    }

    /// Takes `spec.name` for a new container, or fails with `AlreadyExists`. A claim whose
    /// create died (its lock is free) is not an owner: `abandon` clears what it left first.
    pub async fn claim<F: Future<Output = Result<()>>>(
        &self,
        spec: &ContainerSpec,
        auto_remove: bool,
        // Takes the record by value: a future borrowing it would not be Send for every
        // lifetime, and the CRI server runs creates on its worker threads.
        abandon: impl Fn(ContainerRecord) -> F,
    ) -> Result<Claim> {
        let _names = self
            .store
            .lock(CONTAINERS, NAMES_LOCK, LockMode::Exclusive)?;
        let holders = match self.index_complete() {
            true => self.indexed(&spec.name)?.into_iter().collect(),
            false => self.build_index()?,
        };
        for holder in holders.into_iter().filter(|r| r.name == spec.name) {
            // A create or a removal that died: nobody holds its lock.
            let stale = matches!(holder.phase, Phase::Creating | Phase::Removing)
                && self
                    .store
                    .try_lock(CONTAINERS, &holder.id, LockMode::Exclusive)?
                    .is_some();
            if !stale {
                return Err(Error::AlreadyExists {
                    kind: berth_core::Object::Container,
                    name: spec.name.clone(),
                    hint: "choose another --name, or remove the old one with `berth rm`".into(),
                });
            }
            tracing::info!(id = %holder.id, name = %holder.name, "clearing the claim of a create that did not finish");
            let id = holder.id.clone();
            abandon(holder).await?;
            self.store.remove(CONTAINERS, &id)?;
        }
        let id = berth_core::new_id();
        let lock = self.store.lock(CONTAINERS, &id, LockMode::Exclusive)?;
        let record = ContainerRecord {
            id,
            name: spec.name.clone(),
            backend: String::new(),
            spec: spec.clone(),
            created: Utc::now(),
            phase: Phase::Creating,
            auto_remove,
            problem: None,
        };
        self.enter_name(&record)?;
        self.write(&record)?;
        Ok(Claim {
            record,
            _lock: lock,
        })
    }

    /// Records, before the backend is asked, which backend will hold the container and what it
    /// will be asked to run.
    pub fn intend(&self, claim: &mut Claim, backend: &str, spec: &ContainerSpec) -> Result<()> {
        claim.record.backend = backend.to_string();
        claim.record.spec = spec.clone();
        self.write(&claim.record)
    }

    /// The backend has the container: the claim becomes its record.
    pub fn finish(&self, claim: &Claim) -> Result<ContainerRecord> {
        let mut record = claim.record.clone();
        record.phase = Phase::Created;
        record.created = Utc::now();
        self.write(&record)?;
        Ok(record)
    }

    /// Gives a claim's name back (the create failed and its effects are undone).
    pub fn release(&self, claim: Claim) -> Result<()> {
        self.store.remove(CONTAINERS, &claim.record.id)?;
        self.forget_name(&claim.record.name, &claim.record.id)
    }

    /// Takes the container's lock, for a removal.
    pub fn lock(&self, id: &str) -> Result<LockGuard> {
        self.store.lock(CONTAINERS, id, LockMode::Exclusive)
    }

    /// The container's lock if nobody holds it: `None` while a create or removal runs.
    pub fn try_lock(&self, id: &str) -> Result<Option<LockGuard>> {
        self.store.try_lock(CONTAINERS, id, LockMode::Exclusive)
    }

    /// Marks a removal as begun, before the backend is asked (an unreadable record is left as
    /// it is: there is nothing readable to mark).
    pub fn removing(&self, record: &ContainerRecord) -> Result<()> {
        if record.phase == Phase::Unreadable {
            return Ok(());
        }
        let mut removing = record.clone();
        removing.phase = Phase::Removing;
        self.write(&removing)
    }

    /// Removes `record` and its name's index entry (an unreadable record's name is unknown;
    /// its entry, if any, is stale and counts for nothing).
    pub fn remove(&self, record: &ContainerRecord) -> Result<()> {
        self.store.remove(CONTAINERS, &record.id)?;
        self.forget_name(&record.name, &record.id)
    }

    /// Drops `name`'s index entry if it still names `id`, after the record is gone (a kill in
    /// between leaves a stale entry, which counts for nothing); under the names lock, so a
    /// claim's new entry for the name is never the one dropped.
    fn forget_name(&self, name: &str, id: &str) -> Result<()> {
        let _names = self
            .store
            .lock(CONTAINERS, NAMES_LOCK, LockMode::Exclusive)?;
        let entry = self.name_entry(name);
        if std::fs::read_to_string(&entry).is_ok_and(|named| named.trim() == id) {
            std::fs::remove_file(&entry)
                .map_err(|e| Error::io(format!("removing {}", entry.display()), e))?;
        }
        Ok(())
    }

    fn name_entry(&self, name: &str) -> std::path::PathBuf {
        let key = berth_oci::digest::sha256_hex(name.as_bytes());
        self.store.state_dir().join(NAME_INDEX).join(key)
    }

    fn index_complete(&self) -> bool {
        let marker = self.store.state_dir().join(NAME_INDEX).join(INDEX_COMPLETE);
        marker.exists()
    }

    /// The container the index names for `name`, if its record exists under that name (one
    /// that does not parse has no name to match); `Err` only for an unreadable store.
    fn indexed(&self, name: &str) -> Result<Option<ContainerRecord>> {
        let Ok(id) = std::fs::read_to_string(self.name_entry(name)) else {
            return Ok(None);
        };
        if berth_core::store::check_id(CONTAINERS, id.trim()).is_err() {
            return Ok(None);
        }
        match self.read(id.trim()) {
            Ok(Some(record)) if record.name == name => Ok(Some(record)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == berth_core::ErrorKind::Corrupt => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `reference` as an exact id or an indexed name, when that settles it; `None` sends the
    /// caller to the full search (prefixes, and a state dir whose index is not built yet).
    fn named(&self, reference: &str) -> Result<Option<ContainerRecord>> {
        if berth_core::store::check_id(CONTAINERS, reference).is_ok()
            && let Some(record) = self.read(reference).ok().flatten()
            && record.phase != Phase::Creating
        {
            return Ok(Some(record));
        }
        if !self.index_complete() {
            return Ok(None);
        }
        Ok(self
            .indexed(reference)?
            .filter(|r| r.phase != Phase::Creating))
    }

    /// Written before the record it names, under the names lock (see the module's comment).
    fn enter_name(&self, record: &ContainerRecord) -> Result<()> {
        berth_core::store::atomic_write_surviving(
            &self.name_entry(&record.name),
            record.id.as_bytes(),
            0o640,
            survives(record),
        )
    }

    /// Enters every record's name (a state dir from before the index), under the names lock;
    /// returns every record, for the caller's own search.
    fn build_index(&self) -> Result<Vec<ContainerRecord>> {
        let records = self.all()?;
        for record in records.iter().filter(|r| r.phase != Phase::Unreadable) {
            if self.indexed(&record.name)?.is_none() {
                self.enter_name(record)?;
            }
        }
        berth_core::store::atomic_write(
            &self.store.state_dir().join(NAME_INDEX).join(INDEX_COMPLETE),
            b"",
            0o640,
        )?;
        Ok(records)
    }

    /// Rewrites a record's spec (an update its backend has applied), under the caller's lock.
    pub fn respec(&self, id: &str, spec: ContainerSpec) -> Result<()> {
        let mut record = self.reread(id)?;
        record.spec = spec;
        self.write(&record)
    }
}

/// What a dead create's claim may have left on its backend: the container, if it got that far.
/// The item whose id or name is `reference`, else the one whose id starts with it. `Err(None)`
/// when none matches (the caller names the kind of thing), `Err(Some(_))` when the prefix is
/// ambiguous.
pub(crate) fn find_unique<'a, T>(
    items: &'a [T],
    reference: &str,
    kind: &str,
    id_and_name: impl Fn(&T) -> (&str, &str),
) -> std::result::Result<&'a T, Option<Error>> {
    if let Some(item) = items.iter().find(|i| {
        let (id, name) = id_and_name(i);
        id == reference || name == reference
    }) {
        return Ok(item);
    }
    let mut prefixed = items
        .iter()
        .filter(|i| id_and_name(i).0.starts_with(reference));
    match (prefixed.next(), prefixed.next()) {
        (Some(item), None) if !reference.is_empty() => Ok(item),
        (Some(_), Some(_)) => Err(Some(
            Error::invalid(
                format!("{kind} reference {reference:?}"),
                format!("matches more than one {kind} id"),
            )
            .with_hint("use more characters of the id, or the name"),
        )),
        _ => Err(None),
    }
}

pub(crate) async fn remove_leftover(
    backend: Option<&dyn ContainerBackend>,
    record: &ContainerRecord,
) -> Result<()> {
    match backend {
        Some(backend) => match backend.remove(&record.id, RemoveOptions::forced()).await {
            Err(e) if e.kind() != berth_core::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        None => Ok(()),
    }
}

/// What a container's records must survive: a container removed at its exit has nothing a
/// reboot should keep (gc removes it whatever its records say), so they are not synced.
pub(crate) fn survives(record: &ContainerRecord) -> Survives {
    if record.auto_remove {
        Survives::ProcessKill
    } else {
        Survives::PowerLoss
    }
}
