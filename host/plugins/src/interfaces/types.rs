//! `berth:plugin/types`: the records every other interface shares — specs, backends, containers,
//! hook events, patches. It has no functions; linking it defines the (empty) instance that
//! components import alongside the others.
//!
//! Both ABI versions are bound here, and this is the one place their records meet: a 0.1.0
//! component is called with 0.2.0 records converted by the `From` impls below, and its answers
//! converted back. The records are field-for-field the same; only `hook` differs (0.2.0 added
//! `create-failed`), so a 0.2.0 hook a 0.1.0 component cannot name is not sent to it.

use wasmtime::component::{HasData, Linker};

/// `berth:plugin/types@0.2.0`, the current ABI.
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "import berth:plugin/types@0.2.0;",
    });
}

/// `berth:plugin/types@0.1.0`, for components built against the frozen `wit/0.1.0`.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        interfaces: "import berth:plugin/types@0.1.0;",
    });
}

pub use v0_1::berth::plugin::types as wit0_1;
pub use v0_2::berth::plugin::types as wit;

/// Nothing to hold: the interface only names types.
struct Types;

impl HasData for Types {
    type Data<'a> = Types;
}

impl wit::Host for Types {}
impl wit0_1::Host for Types {}

/// Defines `berth:plugin/types` at both versions.
pub(crate) fn add_to_linker<T: 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Types>(linker, |_| Types)?;
    wit0_1::add_to_linker::<T, Types>(linker, |_| Types)
}

impl From<wit::Mount> for wit0_1::Mount {
    fn from(m: wit::Mount) -> wit0_1::Mount {
        wit0_1::Mount {
            source: m.source,
            target: m.target,
            readonly: m.readonly,
        }
    }
}

impl From<wit0_1::Mount> for wit::Mount {
    fn from(m: wit0_1::Mount) -> wit::Mount {
        wit::Mount {
            source: m.source,
            target: m.target,
            readonly: m.readonly,
        }
    }
}

impl From<wit::Limits> for wit0_1::Limits {
    fn from(l: wit::Limits) -> wit0_1::Limits {
        wit0_1::Limits {
            cpu_millis: l.cpu_millis,
            memory_bytes: l.memory_bytes,
            pids: l.pids,
        }
    }
}

impl From<wit0_1::Limits> for wit::Limits {
    fn from(l: wit0_1::Limits) -> wit::Limits {
        wit::Limits {
            cpu_millis: l.cpu_millis,
            memory_bytes: l.memory_bytes,
            pids: l.pids,
        }
    }
}

impl From<wit::ContainerSpec> for wit0_1::ContainerSpec {
    fn from(s: wit::ContainerSpec) -> wit0_1::ContainerSpec {
        wit0_1::ContainerSpec {
            name: s.name,
            image: s.image,
            command: s.command,
            env: s.env,
            labels: s.labels,
            mounts: s.mounts.into_iter().map(Into::into).collect(),
            limits: s.limits.into(),
            backend: s.backend,
            hostname: s.hostname,
            working_dir: s.working_dir,
        }
    }
}

impl From<wit::BackendInfo> for wit0_1::BackendInfo {
    fn from(b: wit::BackendInfo) -> wit0_1::BackendInfo {
        wit0_1::BackendInfo {
            name: b.name,
            kind: b.kind,
            version: b.version,
            healthy: b.healthy,
            features: b.features,
        }
    }
}

impl From<wit::ContainerState> for wit0_1::ContainerState {
    fn from(s: wit::ContainerState) -> wit0_1::ContainerState {
        match s {
            wit::ContainerState::Created => wit0_1::ContainerState::Created,
            wit::ContainerState::Starting => wit0_1::ContainerState::Starting,
            wit::ContainerState::Running => wit0_1::ContainerState::Running,
            wit::ContainerState::Stopped => wit0_1::ContainerState::Stopped,
            wit::ContainerState::Dead => wit0_1::ContainerState::Dead,
        }
    }
}

impl From<wit::ContainerInfo> for wit0_1::ContainerInfo {
    fn from(c: wit::ContainerInfo) -> wit0_1::ContainerInfo {
        wit0_1::ContainerInfo {
            id: c.id,
            name: c.name,
            image: c.image,
            state: c.state.into(),
            backend: c.backend,
            labels: c.labels,
            exit_code: c.exit_code,
        }
    }
}

/// The hook as 0.1.0 names it; `None` for a hook 0.1.0 does not have.
pub(crate) fn hook0_1(hook: wit::Hook) -> Option<wit0_1::Hook> {
    Some(match hook {
        wit::Hook::PreCreate => wit0_1::Hook::PreCreate,
        wit::Hook::PostCreate => wit0_1::Hook::PostCreate,
        wit::Hook::PreStart => wit0_1::Hook::PreStart,
        wit::Hook::PostStart => wit0_1::Hook::PostStart,
        wit::Hook::PreStop => wit0_1::Hook::PreStop,
        wit::Hook::PostStop => wit0_1::Hook::PostStop,
        wit::Hook::PreRemove => wit0_1::Hook::PreRemove,
        wit::Hook::PostRemove => wit0_1::Hook::PostRemove,
        wit::Hook::CreateFailed => return None,
    })
}

impl From<wit0_1::Patch> for wit::Patch {
    fn from(p: wit0_1::Patch) -> wit::Patch {
        wit::Patch {
            env: p.env,
            labels: p.labels,
            mounts: p.mounts.into_iter().map(Into::into).collect(),
            limits: p.limits.map(Into::into),
        }
    }
}
