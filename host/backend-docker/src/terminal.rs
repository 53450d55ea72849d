//! Containers and execs on a terminal: dockerd's own pty, sized from the client's window (at
//! create and exec time, then on every change), and the first attachment to a container's
//! terminal handed what it wrote before (the first prompt of `run -it`), as native's
//! supervisor keeps it.

use std::path::PathBuf;

use berth_core::Store;

/// Whether this is the first attachment to container `id` since berth created it: the first
/// one is sent the terminal's output so far (dockerd's `logs=1`), later ones only what comes.
pub fn first_attach(store: &Store, id: &str) -> bool {
    let marker = marker(store, id);
    let created = marker
        .parent()
        .map(std::fs::create_dir_all)
        .transpose()
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
        });
    created.is_ok()
}

/// Forgets `id`'s attachments (at its removal).
pub fn forget(store: &Store, id: &str) {
    let _ = std::fs::remove_file(marker(store, id));
}

fn marker(store: &Store, id: &str) -> PathBuf {
    store.run_dir().join("docker").join("attached").join(id)
}

/// A task that ends with its owner.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
