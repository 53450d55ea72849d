//! The roles a plugin plays, by what it exports: `naming` (name-policy), `placement`
//! (backend-policy) and `hooks` (lifecycle-hooks), at each ABI version berth loads.
//!
//! The export bindings reuse the `types` interface module's records through bindgen's `with`,
//! so there is one Rust type per WIT type and version. Callers speak 0.2.0 only: a component
//! built against 0.1.0 is called through its own bindings here, its arguments and answers
//! converted at this one boundary (see `interfaces::types`).

use std::fmt;

use berth_core::config::PluginWorld;
use serde::Serialize;
use wasmtime::AsContextMut;
use wasmtime::component::{Instance, InstancePre};

use crate::interfaces::types::{self, wit, wit0_1};

mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "
            export berth:plugin/naming@0.2.0;
            export berth:plugin/placement@0.2.0;
            export berth:plugin/hooks@0.2.0;
        ",
        with: { "berth:plugin/types@0.2.0": crate::interfaces::types::wit },
    });
}

mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.1.0",
        interfaces: "
            export berth:plugin/naming@0.1.0;
            export berth:plugin/placement@0.1.0;
            export berth:plugin/hooks@0.1.0;
        ",
        with: { "berth:plugin/types@0.1.0": crate::interfaces::types::wit0_1 },
    });
}

use v0_1::exports::berth::plugin::{
    hooks as hooks0_1, naming as naming0_1, placement as placement0_1,
};
use v0_2::exports::berth::plugin::{
    hooks as hooks0_2, naming as naming0_2, placement as placement0_2,
};

/// The `berth:plugin` package version a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Abi {
    #[serde(rename = "0.1.0")]
    V0_1,
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl Abi {
    /// Every version this berth loads, oldest first.
    pub const ALL: [Abi; 2] = [Abi::V0_1, Abi::V0_2];

    /// `0.2.0`, as in `berth:plugin@0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Abi::V0_1 => "0.1.0",
            Abi::V0_2 => "0.2.0",
        }
    }

    /// The version in a component import or export name such as `berth:plugin/log@0.1.0`.
    pub(crate) fn of(version: &str) -> Option<Abi> {
        Abi::ALL.into_iter().find(|a| a.as_str() == version)
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The interface a world's exports live in, e.g. `berth:plugin/hooks@0.2.0`.
pub(crate) fn export_name(world: PluginWorld, abi: Abi) -> String {
    let interface = match world {
        PluginWorld::NamePolicy => "naming",
        PluginWorld::BackendPolicy => "placement",
        PluginWorld::LifecycleHooks => "hooks",
    };
    format!("berth:plugin/{interface}@{abi}")
}

/// A name policy's entry points.
pub(crate) enum Naming {
    V0_2(naming0_2::GuestIndices),
    V0_1(naming0_1::GuestIndices),
}

impl Naming {
    fn find<T>(pre: &InstancePre<T>) -> Option<Naming> {
        naming0_2::GuestIndices::new(pre)
            .map(Naming::V0_2)
            .or_else(|_| naming0_1::GuestIndices::new(pre).map(Naming::V0_1))
            .ok()
    }

    fn abi(&self) -> Abi {
        match self {
            Naming::V0_2(_) => Abi::V0_2,
            Naming::V0_1(_) => Abi::V0_1,
        }
    }

    pub fn validate_name(
        &self,
        mut store: impl AsContextMut,
        instance: &Instance,
        kind: &str,
        name: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Naming::V0_2(ix) => ix
                .load(&mut store, instance)?
                .call_validate_name(&mut store, kind, name),
            Naming::V0_1(ix) => ix
                .load(&mut store, instance)?
                .call_validate_name(&mut store, kind, name),
        }
    }

    pub fn generate_name(
        &self,
        mut store: impl AsContextMut,
        instance: &Instance,
        kind: &str,
        spec: &wit::ContainerSpec,
    ) -> wasmtime::Result<Result<Option<String>, String>> {
        match self {
            Naming::V0_2(ix) => ix
                .load(&mut store, instance)?
                .call_generate_name(&mut store, kind, spec),
            Naming::V0_1(ix) => ix.load(&mut store, instance)?.call_generate_name(
                &mut store,
                kind,
                &spec.clone().into(),
            ),
        }
    }
}

/// A backend policy's entry point.
pub(crate) enum Placement {
    V0_2(placement0_2::GuestIndices),
    V0_1(placement0_1::GuestIndices),
}

impl Placement {
    fn find<T>(pre: &InstancePre<T>) -> Option<Placement> {
        placement0_2::GuestIndices::new(pre)
            .map(Placement::V0_2)
            .or_else(|_| placement0_1::GuestIndices::new(pre).map(Placement::V0_1))
            .ok()
    }

    fn abi(&self) -> Abi {
        match self {
            Placement::V0_2(_) => Abi::V0_2,
            Placement::V0_1(_) => Abi::V0_1,
        }
    }

    pub fn select_backend(
        &self,
        mut store: impl AsContextMut,
        instance: &Instance,
        spec: &wit::ContainerSpec,
        candidates: &[wit::BackendInfo],
    ) -> wasmtime::Result<Result<String, String>> {
        match self {
            Placement::V0_2(ix) => ix
                .load(&mut store, instance)?
                .call_select_backend(&mut store, spec, candidates),
            Placement::V0_1(ix) => {
                let candidates: Vec<wit0_1::BackendInfo> =
                    candidates.iter().cloned().map(Into::into).collect();
                ix.load(&mut store, instance)?.call_select_backend(
                    &mut store,
                    &spec.clone().into(),
                    &candidates,
                )
            }
        }
    }
}

/// A lifecycle hook's entry point.
pub(crate) enum Hooks {
    V0_2(hooks0_2::GuestIndices),
    V0_1(hooks0_1::GuestIndices),
}

impl Hooks {
    fn find<T>(pre: &InstancePre<T>) -> Option<Hooks> {
        hooks0_2::GuestIndices::new(pre)
            .map(Hooks::V0_2)
            .or_else(|_| hooks0_1::GuestIndices::new(pre).map(Hooks::V0_1))
            .ok()
    }

    pub fn abi(&self) -> Abi {
        match self {
            Hooks::V0_2(_) => Abi::V0_2,
            Hooks::V0_1(_) => Abi::V0_1,
        }
    }

    /// Whether this plugin's ABI has `hook` at all; a plugin is not told events its version
    /// cannot name (a 0.1.0 one is not told `create-failed`).
    pub fn knows(&self, hook: wit::Hook) -> bool {
        match self {
            Hooks::V0_2(_) => true,
            Hooks::V0_1(_) => types::hook0_1(hook).is_some(),
        }
    }

    pub fn on_event(
        &self,
        mut store: impl AsContextMut,
        instance: &Instance,
        event: &wit::Event,
        spec: &wit::ContainerSpec,
    ) -> wasmtime::Result<Result<Option<wit::Patch>, String>> {
        match self {
            Hooks::V0_2(ix) => ix
                .load(&mut store, instance)?
                .call_on_event(&mut store, event, spec),
            Hooks::V0_1(ix) => {
                let hook = types::hook0_1(event.hook).ok_or_else(|| {
                    wasmtime::format_err!("berth:plugin@0.1.0 has no hook {:?}", event.hook)
                })?;
                let answer = ix.load(&mut store, instance)?.call_on_event(
                    &mut store,
                    hook,
                    &spec.clone().into(),
                    event.id.as_deref(),
                )?;
                Ok(answer.map(|patch| patch.map(Into::into)))
            }
        }
    }
}

/// The entry points of the roles a component implements (by its exports), at whichever ABI
/// version it was built against.
pub(crate) struct Worlds {
    pub naming: Option<Naming>,
    pub placement: Option<Placement>,
    pub hooks: Option<Hooks>,
}

impl Worlds {
    pub fn new<T>(pre: &InstancePre<T>) -> Worlds {
        Worlds {
            naming: Naming::find(pre),
            placement: Placement::find(pre),
            hooks: Hooks::find(pre),
        }
    }

    pub fn implemented(&self) -> Vec<PluginWorld> {
        let mut worlds = Vec::new();
        if self.naming.is_some() {
            worlds.push(PluginWorld::NamePolicy);
        }
        if self.placement.is_some() {
            worlds.push(PluginWorld::BackendPolicy);
        }
        if self.hooks.is_some() {
            worlds.push(PluginWorld::LifecycleHooks);
        }
        worlds
    }

    /// The ABI version the component's berth exports target (the newest, should they mix).
    pub fn abi(&self) -> Option<Abi> {
        [
            self.naming.as_ref().map(Naming::abi),
            self.placement.as_ref().map(Placement::abi),
            self.hooks.as_ref().map(Hooks::abi),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}
