//! The host's own records, modelled on kata-containers' virtcontainers store.
//!
//! Persistent records (specs, images, exit codes) live under `state-dir` and survive a reboot;
//! volatile records (locks, supervisor state) live under `run-dir`, a tmpfs. Unlike upstream,
//! every write is atomic (temp file, rename), durable unless its caller says a power loss may
//! lose it (see [`Survives`]), and every object has a file lock that two `berth` processes take
//! before touching it. A record that does not parse
//! is an error naming its path: never a panic, never silently skipped.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, IoContext, Result};

mod items;
pub use items::{Item, LockToken, ObjectRef};

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Under `state-dir`: survives reboots.
    Persistent,
    /// Under `run-dir`: runtime facts that are meaningless after a reboot.
    Volatile,
}

/// What a write must survive. Every write is atomic (temp file, rename): a process killed at any
/// instant leaves the old content or the new, since the page cache outlives the process. Only a
/// power loss (or a kernel crash) can undo a write that was not synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Survives {
    /// A power loss too: the file and then its directory are fsynced before the write returns.
    /// What a user made (containers, images, volumes, packages, snapshots) and the intent
    /// records of operations with effects outside the store.
    PowerLoss,
    /// A killed process only: no fsync, which costs 0.3 ms to several ms per write on a disk
    /// that discards freed blocks at each journal commit. For facts a reboot makes moot: a
    /// container's running and exited phases (after a reboot nothing runs, and gc finds what
    /// the supervisor left), and every record of a container removed at its exit (gc removes
    /// it after a reboot whatever the records say). A power loss may leave the old content, the
    /// new, or an empty file, which reads as corrupt: listed with its error, removed by `rm -f`.
    ProcessKill,
}

/// Shared (readers) or exclusive (writers) lock on one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// Held lock; released when dropped (or when the process dies, which flock guarantees).
#[derive(Debug)]
pub struct LockGuard {
    _flock: Flock<File>,
    path: PathBuf,
}

impl LockGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes a lock on `path` (created if missing), blocking until it is free.
pub fn lock_file(path: &Path, mode: LockMode) -> Result<LockGuard> {
    lock_file_inner(path, mode, true).map(|guard| guard.expect("blocking lock returns a guard"))
}

/// Like [`lock_file`] but returns `None` at once when another holder conflicts.
pub fn try_lock_file(path: &Path, mode: LockMode) -> Result<Option<LockGuard>> {
    lock_file_inner(path, mode, false)
}

/// Locks the file at `path`. A lock file may be unlinked by [`Store::remove_stale_locks`]
/// while another process waits on it; so a lock counts only if the file locked is still the
/// one at `path`, and otherwise is taken again on the new file.
fn lock_file_inner(path: &Path, mode: LockMode, block: bool) -> Result<Option<LockGuard>> {
    loop {
        let Some(guard) = lock_once(path, mode, block)? else {
            return Ok(None);
        };
        use std::os::unix::fs::MetadataExt;
        let locked = guard._flock.metadata().ok().map(|m| (m.dev(), m.ino()));
        let at_path = fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
        if locked.is_some() && locked == at_path {
            return Ok(Some(guard));
        }
    }
}

fn lock_once(path: &Path, mode: LockMode, block: bool) -> Result<Option<LockGuard>> {
    let open = |create: bool| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
    };
    // Most lock files exist already: their directory is made only for the first.
    let file = match open(false) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                create_dir_all(parent)?;
            }
            open(true)
        }
        other => other,
    }
    .context(|| format!("opening lock file {}", path.display()))?;
    let arg = match (mode, block) {
        (LockMode::Shared, true) => FlockArg::LockShared,
        (LockMode::Exclusive, true) => FlockArg::LockExclusive,
        (LockMode::Shared, false) => FlockArg::LockSharedNonblock,
        (LockMode::Exclusive, false) => FlockArg::LockExclusiveNonblock,
    };
    let mut file = file;
    loop {
        match Flock::lock(file, arg) {
            Ok(flock) => {
                return Ok(Some(LockGuard {
                    _flock: flock,
                    path: path.to_path_buf(),
                }));
            }
            // A signal interrupted a blocking wait: wait again.
            Err((f, nix::errno::Errno::EINTR)) => file = f,
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => {
                return Err(Error::io(
                    format!("locking {}", path.display()),
                    std::io::Error::from(errno),
                ));
            }
        }
    }
}

/// `read` of each of `items`, in order, on up to as many threads as the machine has cores: for
/// listings whose per-item work is a few small reads, where the system calls are the cost.
/// Below a few dozen items a thread costs more than it saves.
pub fn read_parallel<T: Sync, R: Send>(items: &[T], read: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const PER_THREAD: usize = 64;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(items.len() / PER_THREAD).max(1);
    if threads == 1 {
        return items.iter().map(read).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let read = &read;
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(read).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// Creates a directory and its parents with mode 0750 (the store's root mode upstream).
pub fn create_dir_all(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(path)
        .context(|| format!("creating directory {}", path.display()))
}

/// Replaces `path` with `bytes` so that readers see the old or the new content, never a mix,
/// and the new content survives a power loss once this returns.
pub fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    atomic_write_surviving(path, bytes, mode, Survives::PowerLoss)
}

/// [`atomic_write`], synced only when `survives` asks for it.
pub fn atomic_write_surviving(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    survives: Survives,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Unique per process and call, so concurrent writers never share a temp file.
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{sequence}",
        std::process::id()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes)
            .context(|| format!("writing {}", tmp.display()))?;
        if survives == Survives::ProcessKill {
            return fs::rename(&tmp, path).context(|| format!("renaming into {}", path.display()));
        }
        file.sync_all()
            .context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path).context(|| format!("renaming into {}", path.display()))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .context(|| format!("syncing directory {}", dir.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads and parses a JSON file; `Ok(None)` when it does not exist, an error naming the path
/// when it does not parse.
pub fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    // Records are small: a page-sized buffer first, grown if need be, saves `fs::read`'s stat
    // of each (a listing reads thousands).
    let read = || -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(4096);
        std::io::Read::read_to_end(
            &mut std::io::Read::take(fs::File::open(path)?, u64::MAX),
            &mut bytes,
        )?;
        Ok(bytes)
    };
    let bytes = match read() {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            what: what.to_string(),
            path: path.to_path_buf(),
            message: e.to_string(),
            hint: "inspect or remove the file; berth will not guess its content".into(),
        })
}

/// Serialises `value` as pretty JSON and writes it atomically and durably.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_json_surviving(path, value, Survives::PowerLoss)
}

/// [`write_json`], synced only when `survives` asks for it.
pub fn write_json_surviving<T: Serialize>(
    path: &Path,
    value: &T,
    survives: Survives,
) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("records always serialise");
    bytes.push(b'\n');
    atomic_write_surviving(path, &bytes, 0o640, survives)
}

/// The two roots and the object layout under them.
#[derive(Debug, Clone)]
pub struct Store {
    state_dir: PathBuf,
    run_dir: PathBuf,
    held: items::HeldLocks,
}

impl Store {
    /// Opens (creating if needed) a store rooted at the two directories.
    pub fn open(state_dir: impl Into<PathBuf>, run_dir: impl Into<PathBuf>) -> Result<Store> {
        let store = Store {
            state_dir: state_dir.into(),
            run_dir: run_dir.into(),
            held: Default::default(),
        };
        create_dir_all(&store.state_dir)?;
        create_dir_all(&store.run_dir)?;
        Ok(store)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// This installation's id: random, made once, kept in the state dir. Backends on a shared
    /// daemon label what they create with it, so installations never take each other's
    /// containers for their own (nor for orphans to collect).
    pub fn install_id(&self) -> Result<String> {
        let path = self.state_dir.join("install-id");
        if let Some(id) = read_json::<String>(&path, "installation id")? {
            return Ok(id);
        }
        let _lock = self.lock("install", "id", LockMode::Exclusive)?;
        if let Some(id) = read_json::<String>(&path, "installation id")? {
            return Ok(id);
        }
        let id = crate::new_id()[..16].to_string();
        write_json(&path, &id)?;
        Ok(id)
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    fn root(&self, durability: Durability) -> &Path {
        match durability {
            Durability::Persistent => &self.state_dir,
            Durability::Volatile => &self.run_dir,
        }
    }

    /// Path of record `item` of object `kind/id`, e.g. `containers/<id>/config.json`.
    pub fn record_path(&self, durability: Durability, kind: &str, id: &str, item: &str) -> PathBuf {
        self.object_dir(durability, kind, id)
            .join(format!("{item}.json"))
    }

    /// Directory that holds every record of one object.
    pub fn object_dir(&self, durability: Durability, kind: &str, id: &str) -> PathBuf {
        self.root(durability).join(kind).join(id)
    }

    pub fn write<T: Serialize>(
        &self,
        durability: Durability,
        kind: &str,
        id: &str,
        item: &str,
        value: &T,
    ) -> Result<()> {
        self.write_surviving(Survives::PowerLoss, durability, kind, id, item, value)
    }

    /// [`Store::write`], synced only when `survives` asks for it.
    pub fn write_surviving<T: Serialize>(
        &self,
        survives: Survives,
        durability: Durability,
        kind: &str,
        id: &str,
        item: &str,
        value: &T,
    ) -> Result<()> {
        check_id(kind, id)?;
        write_json_surviving(
            &self.record_path(durability, kind, id, item),
            value,
            survives,
        )
    }

    pub fn read<T: DeserializeOwned>(
        &self,
        durability: Durability,
        kind: &str,
        id: &str,
        item: &str,
    ) -> Result<Option<T>> {
        check_id(kind, id)?;
        read_json(
            &self.record_path(durability, kind, id, item),
            &format!("{kind} record"),
        )
    }

    /// Ids of every object of `kind` that has a directory, sorted.
    pub fn list(&self, durability: Durability, kind: &str) -> Result<Vec<String>> {
        subdirectory_names(&self.root(durability).join(kind))
    }

    /// Removes every record of an object in both roots (its lock file stays, so a concurrent
    /// holder keeps a valid lock).
    pub fn remove(&self, kind: &str, id: &str) -> Result<()> {
        check_id(kind, id)?;
        for durability in [Durability::Persistent, Durability::Volatile] {
            remove_dir(&self.object_dir(durability, kind, id))?;
        }
        Ok(())
    }

    /// Locks one object across processes; held until the guard drops.
    pub fn lock(&self, kind: &str, id: &str, mode: LockMode) -> Result<LockGuard> {
        check_id(kind, id)?;
        lock_file(&self.lock_path(kind, id), mode)
    }

    pub fn try_lock(&self, kind: &str, id: &str, mode: LockMode) -> Result<Option<LockGuard>> {
        check_id(kind, id)?;
        try_lock_file(&self.lock_path(kind, id), mode)
    }

    /// Removes the lock files of `kind` whose id `keep` refuses and that nobody holds, each
    /// unlinked while held (see [`lock_file_inner`] for why waiters stay correct); the ids
    /// removed.
    pub fn remove_stale_locks(
        &self,
        kind: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>> {
        let dir = self.run_dir.join("locks").join(kind);
        let mut removed = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(removed);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".lock") else {
                continue;
            };
            if keep(id) || check_id(kind, id).is_err() {
                continue;
            }
            if let Some(_held) = try_lock_file(&entry.path(), LockMode::Exclusive)? {
                fs::remove_file(entry.path())
                    .context(|| format!("removing lock file {}", entry.path().display()))?;
                removed.push(id.to_string());
            }
        }
        Ok(removed)
    }

    /// Temp files of atomic writes whose process died before renaming them into place (see
    /// [`atomic_write`]): in the roots, the kind directories and the object directories, where
    /// records live. Not below them: container filesystems and image layers are not berth's
    /// to judge.
    pub fn stale_temp_files(&self) -> Result<Vec<PathBuf>> {
        let mut stale = Vec::new();
        for root in [&self.state_dir, &self.run_dir] {
            let mut dirs = vec![root.clone()];
            for kind in read_dirs(root) {
                dirs.extend(read_dirs(&kind));
                dirs.push(kind);
            }
            for dir in dirs {
                for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if temp_file_owner(&name).is_some_and(|pid| !process_alive(pid))
                        && entry.file_type().is_ok_and(|t| t.is_file())
                    {
                        stale.push(entry.path());
                    }
                }
            }
        }
        Ok(stale)
    }

    fn lock_path(&self, kind: &str, id: &str) -> PathBuf {
        self.run_dir
            .join("locks")
            .join(kind)
            .join(format!("{id}.lock"))
    }
}

/// The names of the subdirectories of `dir` but hidden ones, sorted; none when it is missing.
fn subdirectory_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.context(|| format!("listing {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // The entry's own type (no stat per entry); a symlink is not a record directory.
        if !name.starts_with('.') && entry.file_type().is_ok_and(|t| t.is_dir()) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Removes `dir` and everything below it; a missing one is already gone.
fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", dir.display()), e))
        }
        _ => Ok(()),
    }
}

/// The subdirectories of `dir` (none if it cannot be read).
fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

/// The process that made temp file `name` of [`atomic_write`] (`.NAME.tmp-PID-SEQ`), if it is
/// one.
fn temp_file_owner(name: &str) -> Option<i32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp-")?;
    let (pid, sequence) = tail.split_once('-')?;
    sequence.parse::<u64>().ok()?;
    pid.parse().ok()
}

fn process_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Ids become path components, so they must not be able to climb out of the store.
pub fn check_id(kind: &str, id: &str) -> Result<()> {
    let ok = !id.is_empty() && id != "." && id != ".." && !id.contains('/') && !id.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            format!("{kind} id {id:?}"),
            "empty or not a single path component",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn parallel_reads_keep_the_order_asked_at_every_size() {
        for n in [0, 1, 63, 64, 129, 1000] {
            let items: Vec<usize> = (0..n).collect();
            let threads = std::sync::Mutex::new(std::collections::HashSet::new());
            let doubled = read_parallel(&items, |i| {
                threads.lock().unwrap().insert(std::thread::current().id());
                i * 2
            });
            assert_eq!(
                doubled,
                items.iter().map(|i| i * 2).collect::<Vec<_>>(),
                "{n} items"
            );
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            let used = threads.lock().unwrap().len();
            assert!(used <= cores.max(1), "{n} items on {used} threads");
            if n < 128 {
                assert!(used <= 1, "{n} items need no second thread, used {used}");
            }
        }
    }

    pub(super) fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("state"), dir.path().join("run")).unwrap();
        (dir, store)
    }

    #[test]
    fn writes_exactly_the_json_and_reads_it_back() {
        let (_dir, store) = store();
        let record: BTreeMap<&str, &str> = [("Field1", "value1"), ("Field2", "value2")].into();
        store
            .write(Durability::Volatile, "sandboxes", "sb", "state", &record)
            .unwrap();
        let path = store.record_path(Durability::Volatile, "sandboxes", "sb", "state");
        let on_disk: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            on_disk,
            serde_json::json!({"Field1": "value1", "Field2": "value2"})
        );
        let back: BTreeMap<String, String> = store
            .read(Durability::Volatile, "sandboxes", "sb", "state")
            .unwrap()
            .unwrap();
        assert_eq!(back["Field2"], "value2");
        assert!(path.starts_with(store.run_dir()));
    }

    #[test]
    fn missing_record_is_none_and_corrupt_record_names_its_path() {
        let (_dir, store) = store();
        let missing: Option<u32> = store
            .read(Durability::Persistent, "containers", "a", "config")
            .unwrap();
        assert!(missing.is_none());
        let path = store.record_path(Durability::Persistent, "containers", "a", "config");
        create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"{ not json").unwrap();
        let err = store
            .read::<u32>(Durability::Persistent, "containers", "a", "config")
            .unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }));
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn temp_files_of_dead_writers_are_found_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s"), dir.path().join("r")).unwrap();
        store
            .write(Durability::Persistent, "things", "a", "config", &1)
            .unwrap();
        let object = store.object_dir(Durability::Persistent, "things", "a");
        let dead = object.join(".config.tmp-999999999-0");
        let live = object.join(format!(".config.tmp-{}-7", std::process::id()));
        for file in [&dead, &live] {
            fs::write(file, "{").unwrap();
        }
        assert_eq!(store.stale_temp_files().unwrap(), [dead]);
        assert_eq!(temp_file_owner(".x.tmp-12-3"), Some(12));
        assert_eq!(temp_file_owner("config"), None);
    }

    #[test]
    fn ids_cannot_escape_the_store() {
        let (_dir, store) = store();
        for id in ["", "..", "a/b", "."] {
            assert!(
                store
                    .write(Durability::Persistent, "c", id, "x", &1)
                    .is_err(),
                "{id:?}"
            );
        }
    }

    #[test]
    fn list_and_remove_cover_both_roots() {
        let (_dir, store) = store();
        store
            .write(Durability::Persistent, "c", "b", "config", &1)
            .unwrap();
        store
            .write(Durability::Persistent, "c", "a", "config", &1)
            .unwrap();
        store
            .write(Durability::Volatile, "c", "a", "state", &1)
            .unwrap();
        assert_eq!(store.list(Durability::Persistent, "c").unwrap(), ["a", "b"]);
        store.remove("c", "a").unwrap();
        assert_eq!(store.list(Durability::Persistent, "c").unwrap(), ["b"]);
        assert!(store.list(Durability::Volatile, "c").unwrap().is_empty());
    }

    #[test]
    fn shared_locks_coexist_and_exclusive_excludes() {
        let (_dir, store) = store();
        let a = store.lock("c", "x", LockMode::Shared).unwrap();
        let b = store.try_lock("c", "x", LockMode::Shared).unwrap();
        assert!(b.is_some(), "two shared locks are fine");
        assert!(
            store
                .try_lock("c", "x", LockMode::Exclusive)
                .unwrap()
                .is_none()
        );
        drop((a, b));
        let ex = store.lock("c", "x", LockMode::Exclusive).unwrap();
        assert!(
            store
                .try_lock("c", "x", LockMode::Shared)
                .unwrap()
                .is_none()
        );
        drop(ex);
        assert!(
            store
                .try_lock("c", "x", LockMode::Exclusive)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn concurrent_writers_never_leave_a_torn_record() {
        let (_dir, store) = store();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let _guard = store.lock("c", "x", LockMode::Exclusive).unwrap();
                        let n: u64 = store
                            .read(Durability::Persistent, "c", "x", "count")
                            .unwrap()
                            .unwrap_or(0);
                        store
                            .write(Durability::Persistent, "c", "x", "count", &(n + 1))
                            .unwrap();
                        let _ = (t, i);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n: u64 = store
            .read(Durability::Persistent, "c", "x", "count")
            .unwrap()
            .unwrap();
        assert_eq!(n, 400, "every locked increment survived");
    }
}
