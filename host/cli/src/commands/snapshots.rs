//! `berth snapshot ls|prepare|commit|mounts|mount|unmount|lineage|rm` on one backend's
//! snapshotter, and the container versions built on it: `berth commit` and `berth rollback`.

use berth_core::SnapshotMount;
use berth_engine::Engine;

use crate::cli::{SnapshotArgs, SnapshotCommand};
use crate::output;

pub async fn dispatch(engine: &Engine, args: SnapshotArgs, json: bool) -> anyhow::Result<i32> {
    let backend = args.backend.as_deref();
    match args.command {
        SnapshotCommand::Ls => {
            let snapshots = engine.list_snapshots(backend).await?;
            output::listing(json, &snapshots, &["NAME", "KIND", "PARENT"], |s| {
                vec![
                    s.name.clone(),
                    format!("{:?}", s.kind).to_lowercase(),
                    s.parent.clone().unwrap_or_default(),
                ]
            });
        }
        SnapshotCommand::Prepare { key, parent } => {
            let mounts = engine
                .prepare_snapshot(backend, &key, parent.as_deref())
                .await?;
            print_mounts(&mounts, json);
        }
        SnapshotCommand::Commit { name, key } => {
            engine.commit_snapshot(backend, &name, &key).await?;
            println!("{name}");
        }
        SnapshotCommand::Mounts { key } => {
            print_mounts(&engine.snapshot_mounts(backend, &key).await?, json)
        }
        SnapshotCommand::Mount { key } => {
            let dir = engine.mount_snapshot(backend, &key).await?;
            println!("{}", dir.display());
        }
        SnapshotCommand::Unmount { dir } => {
            let dir = engine.unmount_snapshot(&dir)?;
            println!("{}", dir.display());
        }
        SnapshotCommand::Lineage { key } => {
            let line = engine.snapshot_lineage(backend, &key).await?;
            if json {
                output::json(&line);
            } else {
                for name in line {
                    println!("{name}");
                }
            }
        }
        SnapshotCommand::Rm { keys } => {
            for key in &keys {
                engine.remove_snapshot(backend, key).await?;
                println!("{key}");
            }
        }
    }
    Ok(0)
}

fn print_mounts(mounts: &[SnapshotMount], json: bool) {
    output::listing(json, mounts, &["TYPE", "SOURCE", "OPTIONS"], |m| {
        vec![m.kind.clone(), m.source.clone(), m.options.join(",")]
    });
}

pub async fn commit(engine: &Engine, reference: &str, name: Option<&str>) -> anyhow::Result<i32> {
    let record = engine.resolve(reference)?;
    let version = engine.commit(&record, name).await?;
    println!("{version}");
    Ok(0)
}

pub async fn rollback(engine: &Engine, reference: &str, version: &str) -> anyhow::Result<i32> {
    let record = engine.resolve(reference)?;
    engine.rollback(&record, version).await?;
    println!("{}", record.name);
    Ok(0)
}
