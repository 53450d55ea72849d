//! Host-side bindings for the three plugin worlds, generated from `wit/`.
//!
//! The lifecycle-hooks world imports every host interface, so its bindings own the shared
//! types and import traits; the other worlds reuse them through `with`, which keeps one Rust
//! type per WIT type however many roles a component plays.

pub mod lifecycle {
    wasmtime::component::bindgen!({ world: "lifecycle-hooks", path: "../../wit" });
}

pub mod naming {
    wasmtime::component::bindgen!({
        world: "name-policy",
        path: "../../wit",
        with: {
            "berth:plugin/types": crate::bindings::lifecycle::berth::plugin::types,
            "berth:plugin/log": crate::bindings::lifecycle::berth::plugin::log,
            "berth:plugin/config": crate::bindings::lifecycle::berth::plugin::config,
        },
    });
}

pub mod placement {
    wasmtime::component::bindgen!({
        world: "backend-policy",
        path: "../../wit",
        with: {
            "berth:plugin/types": crate::bindings::lifecycle::berth::plugin::types,
            "berth:plugin/log": crate::bindings::lifecycle::berth::plugin::log,
            "berth:plugin/config": crate::bindings::lifecycle::berth::plugin::config,
            "berth:plugin/containers": crate::bindings::lifecycle::berth::plugin::containers,
        },
    });
}

pub use lifecycle::LifecycleHooksIndices;
pub use lifecycle::berth::plugin::{config, containers, log, packages, quotas, snapshots, types};
pub use naming::NamePolicyIndices;
pub use placement::BackendPolicyIndices;
