//! Test plugin: gives each container its own volume and packages through the `quotas` and
//! `packages` host interfaces, and releases the volume when the container does not come to be
//! or goes away. At pre-create it ensures volume `<name>-data` (limited to the `volume-bytes`
//! setting, if set) mounted at /data, and each `NAME@VERSION` of the comma-separated `packages`
//! setting mounted read-only where `run --pkg` would put it; a failure denies the create with the
//! host's reason. At create-failed (the create failed after pre-create: a later hook refused it,
//! the backend failed, ...) and at post-remove it removes the volume again, logging why.

wit_bindgen::generate!({ world: "lifecycle-hooks", path: "../../../wit" });

use berth::plugin::types::Mount;
use berth::plugin::{config, log, packages, quotas};
use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Hook, Patch};

struct Provisioner;

impl Guest for Provisioner {
    fn on_event(event: Event, spec: ContainerSpec) -> Result<Option<Patch>, String> {
        let volume = format!("{}-data", spec.name);
        match event.hook {
            Hook::PreCreate => {
                let limit = match config::get("volume-bytes") {
                    Some(text) => Some(text.parse().map_err(|_| "bad volume-bytes".to_string())?),
                    None => None,
                };
                let mut mounts = vec![Mount {
                    source: quotas::ensure(&volume, limit)?.name,
                    target: "/data".into(),
                    readonly: false,
                }];
                for wanted in config::get("packages").unwrap_or_default().split(',') {
                    let Some((name, version)) = wanted.trim().split_once('@') else {
                        continue;
                    };
                    let package = packages::ensure(name, version)?;
                    mounts.push(Mount {
                        source: package.path,
                        target: package.mount_target,
                        readonly: true,
                    });
                }
                Ok(Some(Patch {
                    env: Vec::new(),
                    labels: Vec::new(),
                    mounts,
                    limits: None,
                    dns: None,
                    extra_hosts: Vec::new(),
                }))
            }
            Hook::CreateFailed => {
                let why = event.reason.as_deref().unwrap_or("no reason given");
                release(&volume, &format!("creating {} failed: {why}", spec.name))?;
                Ok(None)
            }
            Hook::PostRemove => {
                release(&volume, &format!("{} was removed", spec.name))?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}

/// Removes `volume` if it is there; `why` goes to berth's log.
fn release(volume: &str, why: &str) -> Result<(), String> {
    if quotas::get(volume)?.is_some() {
        quotas::remove(volume)?;
        log::log(log::Level::Info, &format!("removed volume {volume}: {why}"));
    }
    Ok(())
}

export!(Provisioner);
