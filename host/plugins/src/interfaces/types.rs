//! `berth:plugin/types`: the records every other interface shares — specs, backends, containers,
//! hook events, patches. It has no functions; linking it defines the (empty) instance that
//! components import alongside the others.
//!
//! Every ABI version is bound here, and this is the one place their records meet: a component
//! built against an older version is called with the current records converted by the
//! functions below, and its answers converted back.
//! - 0.3.0's records are 0.4.0's (which only added pods'), so 0.3.0 interfaces are bound to
//!   the current Rust types and need no conversion.
//! - 0.2.0's records are 0.3.0's but for `container-spec` (no networking) and `patch` (no
//!   `dns`, no `extra-hosts`); the rest are bound to the current Rust types directly.
//! - 0.1.0's are 0.2.0's but for `hook` (no `create-failed`, so that hook is not sent to it).

use wasmtime::component::{HasData, Linker};

use crate::worlds::Abi;

/// `berth:plugin/types@0.4.0`, the current ABI.
pub(crate) mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "import berth:plugin/types@0.4.0;",
    });
}

/// `berth:plugin/types@0.2.0`, for components built against the frozen `wit/0.2.0`.
pub(crate) mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
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
pub use v0_2::berth::plugin::types as wit0_2;
pub use v0_4::berth::plugin::types as wit;

/// Nothing to hold: the interface only names types.
struct Types;

impl HasData for Types {
    type Data<'a> = Types;
}

impl wit::Host for Types {}
impl wit0_2::Host for Types {}
impl wit0_1::Host for Types {}

/// Defines `berth:plugin/types` at `abi`.
pub(crate) fn add_to_linker<T: 'static>(linker: &mut Linker<T>, abi: Abi) -> wasmtime::Result<()> {
    match abi {
        Abi::V0_4 => wit::add_to_linker::<T, Types>(linker, |_| Types),
        // 0.3.0's records are bound to the current types (no bindings of their own): its
        // instance only has to be there.
        Abi::V0_3 => linker.instance("berth:plugin/types@0.3.0").map(drop),
        Abi::V0_2 => wit0_2::add_to_linker::<T, Types>(linker, |_| Types),
        Abi::V0_1 => wit0_1::add_to_linker::<T, Types>(linker, |_| Types),
    }
}

same_record!(wit::Mount => [wit0_1, wit0_2] { source, target, readonly });
same_record!(wit0_1::Mount => [wit] { source, target, readonly });
same_record!(wit0_2::Mount => [wit] { source, target, readonly });
same_record!(wit::Limits => [wit0_1, wit0_2] { cpu_millis, memory_bytes, pids });
same_record!(wit0_1::Limits => [wit] { cpu_millis, memory_bytes, pids });
same_record!(wit0_2::Limits => [wit] { cpu_millis, memory_bytes, pids });
same_record!(wit::BackendInfo => [wit0_1, wit0_2] { name, kind, version, healthy, features });
same_enum!(wit::ContainerState => [wit0_1, wit0_2] { Created, Starting, Running, Stopped, Dead });
same_record!(wit::ContainerInfo => [wit0_1, wit0_2] {
    id, name, image, state, backend, labels, exit_code,
});
same_enum!(wit::Hook => [wit0_2] {
    PreCreate, PostCreate, PreStart, PostStart, PreStop, PostStop, PreRemove, PostRemove,
    CreateFailed,
});
same_record!(wit::Event => [wit0_2] { hook, id, reason });

/// The spec without what came after 0.1.0 and 0.2.0 (networking).
macro_rules! older_spec {
    ($($to:ident),+) => {$(
        impl From<wit::ContainerSpec> for $to::ContainerSpec {
            fn from(s: wit::ContainerSpec) -> $to::ContainerSpec {
                $to::ContainerSpec {
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
    )+};
}
older_spec!(wit0_1, wit0_2);

/// An older patch, which cannot set DNS or hosts.
macro_rules! older_patch {
    ($($from:ident),+) => {$(
        impl From<$from::Patch> for wit::Patch {
            fn from(p: $from::Patch) -> wit::Patch {
                wit::Patch {
                    env: p.env,
                    labels: p.labels,
                    mounts: p.mounts.into_iter().map(Into::into).collect(),
                    limits: p.limits.map(Into::into),
                    dns: None,
                    extra_hosts: Vec::new(),
                }
            }
        }
    )+};
}
older_patch!(wit0_1, wit0_2);

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
