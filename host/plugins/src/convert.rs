//! berth's domain types to and from their WIT twins (the current ABI's; a 0.1.0 component's are
//! converted from these in `interfaces::types`). The WIT side uses sorted key/value lists where
//! berth uses maps, so a plugin sees env and labels in a stable order.

use berth_core::{BackendInfo, ContainerSpec, Limits, Mount};

use crate::hook::Hook;
use crate::interfaces::types::wit;
use crate::patch::Patch;

fn pairs<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<(String, String)> {
    map.into_iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn mount(m: &Mount) -> wit::Mount {
    wit::Mount {
        source: m.source.clone(),
        target: m.target.clone(),
        readonly: m.readonly,
    }
}

fn limits(l: &Limits) -> wit::Limits {
    wit::Limits {
        cpu_millis: l.cpu_millis,
        memory_bytes: l.memory_bytes,
        pids: l.pids,
    }
}

pub(crate) fn spec(s: &ContainerSpec) -> wit::ContainerSpec {
    wit::ContainerSpec {
        name: s.name.clone(),
        image: s.image.clone(),
        command: s.command.clone(),
        env: pairs(&s.env),
        labels: pairs(&s.labels),
        mounts: s.mounts.iter().map(mount).collect(),
        limits: limits(&s.limits),
        backend: s.backend.clone(),
        hostname: s.hostname.clone(),
        working_dir: s.working_dir.clone(),
    }
}

pub(crate) fn backend_info(b: &BackendInfo) -> wit::BackendInfo {
    wit::BackendInfo {
        name: b.name.clone(),
        kind: b.kind.clone(),
        version: b.version.clone(),
        healthy: b.healthy,
        features: b.features.clone(),
    }
}

pub(crate) fn hook(h: Hook) -> wit::Hook {
    match h {
        Hook::PreCreate => wit::Hook::PreCreate,
        Hook::PostCreate => wit::Hook::PostCreate,
        Hook::PreStart => wit::Hook::PreStart,
        Hook::PostStart => wit::Hook::PostStart,
        Hook::PreStop => wit::Hook::PreStop,
        Hook::PostStop => wit::Hook::PostStop,
        Hook::PreRemove => wit::Hook::PreRemove,
        Hook::PostRemove => wit::Hook::PostRemove,
        Hook::CreateFailed => wit::Hook::CreateFailed,
    }
}

pub(crate) fn event(h: Hook, id: Option<&str>, reason: Option<&str>) -> wit::Event {
    wit::Event {
        hook: hook(h),
        id: id.map(str::to_string),
        reason: reason.map(str::to_string),
    }
}

/// Later entries for the same key or mount target win, as if applied one by one.
pub(crate) fn patch(p: wit::Patch) -> Patch {
    let mut mounts: Vec<Mount> = Vec::new();
    for m in p.mounts {
        mounts.retain(|old| old.target != m.target);
        mounts.push(Mount {
            source: m.source,
            target: m.target,
            readonly: m.readonly,
            owner: None,
        });
    }
    Patch {
        env: p.env.into_iter().collect(),
        labels: p.labels.into_iter().collect(),
        mounts,
        limits: p.limits.map(|l| Limits {
            cpu_millis: l.cpu_millis,
            memory_bytes: l.memory_bytes,
            pids: l.pids,
        }),
    }
}
