//! `berth snapshot ls|prepare|commit|mounts|mount|unmount|lineage|rm` on one backend's
//! snapshotter, and the container versions built on it: `berth commit` and `berth rollback`.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_core::{Error, SnapshotMount, snapshot};

use crate::cli::{SnapshotArgs, SnapshotCommand};
use crate::host::Host;
use crate::output;

/// Where `snapshot mount` makes its directories; `unmount` touches nothing else.
fn mounts_root(host: &Host) -> PathBuf {
    host.store.run_dir().join("snapshot-mounts")
}

pub async fn dispatch(host: &Host, args: SnapshotArgs, json: bool) -> anyhow::Result<i32> {
    let (_, backend) = host.backend_or_first(args.backend.as_deref())?;
    match args.command {
        SnapshotCommand::Ls => {
            let snapshots = backend.list_snapshots().await?;
            output::listing(json, &snapshots, &["NAME", "KIND", "PARENT"], |s| {
                vec![
                    s.name.clone(),
                    format!("{:?}", s.kind).to_lowercase(),
                    s.parent.clone().unwrap_or_default(),
                ]
            });
        }
        SnapshotCommand::Prepare { key, parent } => {
            let mounts = backend.prepare_snapshot(&key, parent.as_deref()).await?;
            print_mounts(&mounts, json);
        }
        SnapshotCommand::Commit { name, key } => {
            backend.commit_snapshot(&name, &key).await?;
            println!("{name}");
        }
        SnapshotCommand::Mounts { key } => {
            print_mounts(&backend.snapshot_mounts(&key).await?, json)
        }
        SnapshotCommand::Mount { key } => {
            let mounts = backend.snapshot_mounts(&key).await?;
            let safe: String = key
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            let stamp = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
            let dir = mounts_root(host).join(format!("{safe}.{stamp}"));
            berth_core::store::create_dir_all(&dir)?;
            if let Err(e) = mount_all(&mounts, &dir) {
                let _ = unmount(&dir);
                return Err(e.into());
            }
            println!("{}", dir.display());
        }
        SnapshotCommand::Unmount { dir } => {
            let root = mounts_root(host);
            let dir = dir.canonicalize().unwrap_or(dir);
            if dir.parent() != Some(root.as_path()) {
                return Err(Error::invalid(
                    format!("directory {}", dir.display()),
                    "it was not made by `berth snapshot mount`",
                )
                .with_hint(format!("those live in {}", root.display()))
                .into());
            }
            unmount(&dir)?;
            println!("{}", dir.display());
        }
        SnapshotCommand::Lineage { key } => {
            let line = snapshot::lineage(&key, &backend.list_snapshots().await?)?;
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
                backend.remove_snapshot(key).await?;
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

/// `mount -t TYPE -o OPTIONS SOURCE DIR` for each, in order.
fn mount_all(mounts: &[SnapshotMount], dir: &Path) -> berth_core::Result<()> {
    for m in mounts {
        let mut command = Command::new("mount");
        command.args(["-t", &m.kind]);
        if !m.options.is_empty() {
            command.args(["-o", &m.options.join(",")]);
        }
        run(command.arg(&m.source).arg(dir))?;
    }
    Ok(())
}

/// Unmounts everything at `dir`, then removes it.
fn unmount(dir: &Path) -> berth_core::Result<()> {
    while berth_backend_native::rootfs::is_mounted(dir) {
        run(Command::new("umount").arg(dir))?;
    }
    std::fs::remove_dir(dir).map_err(|e| Error::io(format!("removing {}", dir.display()), e))
}

fn run(command: &mut Command) -> berth_core::Result<()> {
    let out = command
        .output()
        .map_err(|e| Error::io(format!("running {command:?}"), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Error::invalid(
        format!("{command:?}"),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

pub async fn commit(host: &Host, reference: &str, name: Option<&str>) -> anyhow::Result<i32> {
    let record = host.resolve(reference)?;
    let version = host
        .backend(&record.backend)?
        .commit(&record.id, name)
        .await?;
    println!("{version}");
    Ok(0)
}

pub async fn rollback(host: &Host, reference: &str, version: &str) -> anyhow::Result<i32> {
    let record = host.resolve(reference)?;
    host.backend(&record.backend)?
        .rollback(&record.id, version)
        .await?;
    println!("{}", record.name);
    Ok(0)
}
