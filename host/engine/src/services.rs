//! What granted plugins reach through their host interfaces: berth's containers (read-only),
//! its volumes, its packages and the backends' snapshots.
//!
//! Plugin calls are synchronous and may run inside the async runtime, so backend queries run
//! on a scoped thread that blocks on the runtime's handle. The services hold the engine weakly:
//! a plugin host must not keep the engine that owns it alive.

use std::sync::{Arc, Weak};

use berth_core::{ContainerInfo, Error, ListFilter, Result};
use berth_plugins::{
    ContainerDirectory, HostServices, PackageMount, PackageService, SnapshotChange,
    SnapshotService, VolumeService,
};

use crate::Engine;

pub(crate) fn for_plugins(engine: Weak<Engine>) -> HostServices {
    HostServices::all(Arc::new(Services(engine)))
}

/// The error for a plugin call that arrives while the engine is going away.
pub(crate) fn shut_down() -> Error {
    Error::Unavailable {
        service: "the berth engine".into(),
        endpoint: "this process".into(),
        reason: "it is shutting down".into(),
        hint: "retry the command".into(),
    }
}

struct Services(Weak<Engine>);

impl Services {
    fn engine(&self) -> Result<Arc<Engine>> {
        self.0.upgrade().ok_or_else(shut_down)
    }
}

fn block_on<T: Send>(
    runtime: &tokio::runtime::Handle,
    future: impl Future<Output = T> + Send,
) -> T {
    std::thread::scope(|s| {
        s.spawn(|| runtime.block_on(future))
            .join()
            .expect("a host call for a plugin panicked")
    })
}

impl ContainerDirectory for Services {
    fn containers(&self) -> Result<Vec<ContainerInfo>> {
        let engine = self.engine()?;
        let filter = ListFilter {
            all: true,
            ..Default::default()
        };
        let rows = block_on(&engine.runtime, engine.list(&filter))?;
        Ok(rows.into_iter().map(|(_, info)| info).collect())
    }

    fn container(&self, reference: &str) -> Result<Option<ContainerInfo>> {
        let engine = self.engine()?;
        match engine.resolve(reference) {
            Ok(record) => Ok(Some(block_on(&engine.runtime, engine.info(&record)))),
            Err(e) if e.kind() == berth_core::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl VolumeService for Services {
    fn volumes(&self) -> Result<Vec<berth_quota::Volume>> {
        self.engine()?.volumes().list()
    }

    fn ensure_volume(&self, name: &str, limit: Option<u64>) -> Result<berth_quota::Volume> {
        let volumes = self.engine()?.volumes();
        match volumes.get(name) {
            Err(e) if e.kind() == berth_core::ErrorKind::NotFound => volumes.create(name, limit),
            found => found,
        }
    }

    fn remove_volume(&self, name: &str) -> Result<()> {
        self.engine()?.remove_volume(name)
    }
}

impl PackageService for Services {
    fn ensure_package(&self, name: &str, version: &str) -> Result<PackageMount> {
        let engine = self.engine()?;
        let package =
            engine
                .packages()
                .ensure(name, version, engine.config.packages.repository.as_ref())?;
        Ok(engine.package_mount(package))
    }

    fn packages(&self) -> Result<Vec<PackageMount>> {
        let engine = self.engine()?;
        let installed = engine.packages().list()?;
        Ok(installed
            .into_iter()
            .map(|p| engine.package_mount(p))
            .collect())
    }
}

impl SnapshotService for Services {
    fn snapshots(&self, backend: &str) -> Result<Vec<berth_core::SnapshotInfo>> {
        let engine = self.engine()?;
        block_on(&engine.runtime, engine.list_snapshots(Some(backend)))
    }

    fn change_snapshot(&self, backend: &str, change: SnapshotChange) -> Result<()> {
        let engine = self.engine()?;
        block_on(&engine.runtime, async {
            match change {
                SnapshotChange::Prepare { key, parent } => engine
                    .prepare_snapshot(Some(backend), &key, parent.as_deref())
                    .await
                    .map(drop),
                SnapshotChange::Commit { name, key } => {
                    engine.commit_snapshot(Some(backend), &name, &key).await
                }
                SnapshotChange::Remove { key } => engine.remove_snapshot(Some(backend), &key).await,
            }
        })
    }

    fn commit_container(&self, reference: &str, version: Option<&str>) -> Result<String> {
        let engine = self.engine()?;
        let record = engine.resolve(reference)?;
        block_on(&engine.runtime, engine.commit(&record, version))
    }
}
