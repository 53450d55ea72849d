//! A frozen copy of `plugins/guard` as it was when berth:plugin was 0.2.0, built against
//! `wit/0.2.0`, so berth's tests prove components built then keep loading and working. Do not
//! update it; the plugin itself lives on in `plugins/guard`.
//!
//! Lifecycle hooks: stamps every container at pre-create (env `BERTH_CONTAINER_NAME`,
//! `BERTH_IMAGE`, label `berth.guard=checked`), refuses specs that break the site's rules, and
//! logs every other hook.
//!
//! Settings: `require-memory-limit` (`true` refuses specs without a memory limit),
//! `allowed-mount-prefixes` (`"/tmp,/srv"`: host paths mounted from elsewhere are refused).

wit_bindgen::generate!({ world: "lifecycle-hooks", path: "../../../wit/0.2.0" });

use berth::plugin::{config, log};
use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Hook, Patch};

struct Guard;

impl Guest for Guard {
    fn on_event(event: Event, spec: ContainerSpec) -> Result<Option<Patch>, String> {
        if event.hook != Hook::PreCreate {
            let id = event.id.as_deref().unwrap_or("-");
            log::log(
                log::Level::Info,
                &format!("{:?} {} ({id})", event.hook, spec.name),
            );
            return Ok(None);
        }
        check(&spec)?;
        Ok(Some(Patch {
            env: vec![
                ("BERTH_CONTAINER_NAME".into(), spec.name.clone()),
                ("BERTH_IMAGE".into(), spec.image.clone()),
            ],
            labels: vec![("berth.guard".into(), "checked".into())],
            mounts: Vec::new(),
            limits: None,
        }))
    }
}

/// The site rules; `Err` is the reason the user sees.
fn check(spec: &ContainerSpec) -> Result<(), String> {
    if config::get("require-memory-limit").as_deref() == Some("true")
        && spec.limits.memory_bytes.is_none()
    {
        return Err(format!(
            "container {} has no memory limit (set one with --memory)",
            spec.name
        ));
    }
    if let Some(allowed) = config::get("allowed-mount-prefixes") {
        let prefixes: Vec<&str> = allowed
            .split(',')
            .map(|p| p.trim().trim_end_matches('/'))
            .collect();
        for mount in spec.mounts.iter().filter(|m| m.source.starts_with('/')) {
            let inside = prefixes.iter().any(|p| {
                mount.source == *p
                    || mount
                        .source
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('/'))
            });
            if !inside {
                return Err(format!(
                    "mount source {} is outside the allowed prefixes {allowed}",
                    mount.source
                ));
            }
        }
    }
    Ok(())
}

export!(Guard);
