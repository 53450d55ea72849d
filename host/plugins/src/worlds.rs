//! The roles a plugin plays, by what it exports: `naming` (name-policy), `placement`
//! (backend-policy), `hooks` (lifecycle-hooks) and `pod-hooks` (pod-lifecycle-hooks, new in
//! 0.4.0), at each ABI version berth loads.
//!
//! The export bindings reuse the `types` interface module's records through bindgen's `with`,
//! so there is one Rust type per WIT type and version. Callers speak the current ABI (0.4.0)
//! only: a component built against an older one is called through its own bindings here, its
//! arguments and answers converted at this one boundary (see `interfaces::types`).
//!
//! A world is detected by its export's *types*, not its name alone: each function of the
//! interface is type-checked at load against the types the host calls it with, so a component
//! exporting `berth:plugin/naming@0.3.0` with a mistyped `generate-name` is refused at load (and
//! by `berth plugin check`) naming the function, instead of trapping at its first call.

use std::fmt;

use berth_core::config::PluginWorld;
use serde::Serialize;
use wasmtime::AsContextMut;
// bindgen's generated `load` type-checks exports through these same (hidden) items, so they
// move in lockstep with the `bindgen!` of the pinned wasmtime: an upgrade that changes them
// breaks the build here, never the check.
use wasmtime::component::__internal::InstanceType;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{ComponentNamedList, Instance, InstancePre, Lift, Lower};

use crate::interfaces::types::{self, wit, wit0_1, wit0_2};

mod v0_4 {
    wasmtime::component::bindgen!({
        path: "../../wit",
        interfaces: "
            export berth:plugin/naming@0.4.0;
            export berth:plugin/placement@0.4.0;
            export berth:plugin/hooks@0.4.0;
            export berth:plugin/pod-hooks@0.4.0;
        ",
        with: { "berth:plugin/types@0.4.0": crate::interfaces::types::wit },
    });
}

/// 0.3.0's records are the current ones (0.4.0 only added pods'): bound to the same types.
mod v0_3 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.3.0",
        interfaces: "
            export berth:plugin/naming@0.3.0;
            export berth:plugin/placement@0.3.0;
            export berth:plugin/hooks@0.3.0;
        ",
        with: { "berth:plugin/types@0.3.0": crate::interfaces::types::wit },
    });
}

mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../../wit/0.2.0",
        interfaces: "
            export berth:plugin/naming@0.2.0;
            export berth:plugin/placement@0.2.0;
            export berth:plugin/hooks@0.2.0;
        ",
        with: { "berth:plugin/types@0.2.0": crate::interfaces::types::wit0_2 },
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
use v0_3::exports::berth::plugin::{
    hooks as hooks0_3, naming as naming0_3, placement as placement0_3,
};
use v0_4::exports::berth::plugin::{
    hooks as hooks0_4, naming as naming0_4, placement as placement0_4, pod_hooks as pod_hooks0_4,
};

/// The `berth:plugin` package version a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Abi {
    #[serde(rename = "0.1.0")]
    V0_1,
    #[serde(rename = "0.2.0")]
    V0_2,
    #[serde(rename = "0.3.0")]
    V0_3,
    #[serde(rename = "0.4.0")]
    V0_4,
}

impl Abi {
    /// Every version this berth loads, oldest first.
    pub const ALL: [Abi; 4] = [Abi::V0_1, Abi::V0_2, Abi::V0_3, Abi::V0_4];

    /// The version `wit/` holds, which plugins are built against today.
    pub const CURRENT: Abi = Abi::V0_4;

    /// `0.3.0`, as in `berth:plugin@0.3.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Abi::V0_1 => "0.1.0",
            Abi::V0_2 => "0.2.0",
            Abi::V0_3 => "0.3.0",
            Abi::V0_4 => "0.4.0",
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

/// The interface a world's exports live in, e.g. `berth:plugin/hooks@0.3.0`.
pub(crate) fn export_name(world: PluginWorld, abi: Abi) -> String {
    let interface = match world {
        PluginWorld::NamePolicy => "naming",
        PluginWorld::BackendPolicy => "placement",
        PluginWorld::LifecycleHooks => "hooks",
        PluginWorld::PodLifecycleHooks => "pod-hooks",
    };
    format!("berth:plugin/{interface}@{abi}")
}

/// The first ABI version that has `world`.
pub(crate) fn since(world: PluginWorld) -> Abi {
    match world {
        PluginWorld::PodLifecycleHooks => Abi::V0_4,
        _ => Abi::V0_1,
    }
}

/// One function's type check, with the parameter and result types the host calls it with.
type Check = fn(&ComponentFunc, &InstanceType<'_>) -> wasmtime::Result<()>;

fn typed<P, R>(func: &ComponentFunc, cx: &InstanceType<'_>) -> wasmtime::Result<()>
where
    P: ComponentNamedList + Lower,
    R: ComponentNamedList + Lift,
{
    func.typecheck::<P, R>(cx)
}

/// Whether the component exports `world`'s interface at `abi`; if it does, every function in
/// `functions` must be there with the type the host calls it with, or the answer is why not.
fn exports<T>(
    pre: &InstancePre<T>,
    world: PluginWorld,
    abi: Abi,
    functions: &[(&str, Check)],
) -> Result<bool, String> {
    let interface = export_name(world, abi);
    let engine = pre.engine();
    let component = pre.component().component_type();
    let Some(export) = component.get_export(engine, &interface) else {
        return Ok(false);
    };
    let ComponentItem::ComponentInstance(instance) = export.ty else {
        return Err(format!(
            "it exports {interface}, but not as an interface instance"
        ));
    };
    let cx = pre.instance_type();
    for (name, check) in functions {
        match instance.get_export(engine, name).map(|e| e.ty) {
            Some(ComponentItem::ComponentFunc(func)) => check(&func, &cx).map_err(|e| {
                format!(
                    "its {interface} exports function {name} with the wrong type ({e:#}); \
                     rebuild the plugin against the wit/ of this berth"
                )
            })?,
            Some(_) => {
                return Err(format!(
                    "its {interface} exports {name}, but not as a function"
                ));
            }
            None => {
                return Err(format!(
                    "its {interface} lacks function {name}; rebuild the plugin against the \
                     wit/ of this berth"
                ));
            }
        }
    }
    Ok(true)
}

/// A name policy's entry points.
pub(crate) enum Naming {
    V0_4(naming0_4::GuestIndices),
    V0_3(naming0_3::GuestIndices),
    V0_2(naming0_2::GuestIndices),
    V0_1(naming0_1::GuestIndices),
}

impl Naming {
    fn find<T>(pre: &InstancePre<T>) -> Result<Option<Naming>, String> {
        let world = PluginWorld::NamePolicy;
        let current: [(&str, Check); 2] = [
            (
                "validate-name",
                typed::<(String, String), (Result<(), String>,)>,
            ),
            (
                "generate-name",
                typed::<(String, wit::ContainerSpec), (Result<Option<String>, String>,)>,
            ),
        ];
        if exports(pre, world, Abi::V0_4, &current)? {
            return indices(naming0_4::GuestIndices::new(pre)).map(|ix| Some(Naming::V0_4(ix)));
        }
        if exports(pre, world, Abi::V0_3, &current)? {
            return indices(naming0_3::GuestIndices::new(pre)).map(|ix| Some(Naming::V0_3(ix)));
        }
        let v0_2: [(&str, Check); 2] = [
            (
                "validate-name",
                typed::<(String, String), (Result<(), String>,)>,
            ),
            (
                "generate-name",
                typed::<(String, wit0_2::ContainerSpec), (Result<Option<String>, String>,)>,
            ),
        ];
        if exports(pre, world, Abi::V0_2, &v0_2)? {
            return indices(naming0_2::GuestIndices::new(pre)).map(|ix| Some(Naming::V0_2(ix)));
        }
        let v0_1: [(&str, Check); 2] = [
            (
                "validate-name",
                typed::<(String, String), (Result<(), String>,)>,
            ),
            (
                "generate-name",
                typed::<(String, wit0_1::ContainerSpec), (Result<Option<String>, String>,)>,
            ),
        ];
        if exports(pre, world, Abi::V0_1, &v0_1)? {
            return indices(naming0_1::GuestIndices::new(pre)).map(|ix| Some(Naming::V0_1(ix)));
        }
        Ok(None)
    }

    fn abi(&self) -> Abi {
        match self {
            Naming::V0_4(_) => Abi::V0_4,
            Naming::V0_3(_) => Abi::V0_3,
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
            Naming::V0_4(ix) => ix
                .load(&mut store, instance)?
                .call_validate_name(&mut store, kind, name),
            Naming::V0_3(ix) => ix
                .load(&mut store, instance)?
                .call_validate_name(&mut store, kind, name),
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
            Naming::V0_4(ix) => ix
                .load(&mut store, instance)?
                .call_generate_name(&mut store, kind, spec),
            Naming::V0_3(ix) => ix
                .load(&mut store, instance)?
                .call_generate_name(&mut store, kind, spec),
            Naming::V0_2(ix) => ix.load(&mut store, instance)?.call_generate_name(
                &mut store,
                kind,
                &spec.clone().into(),
            ),
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
    V0_4(placement0_4::GuestIndices),
    V0_3(placement0_3::GuestIndices),
    V0_2(placement0_2::GuestIndices),
    V0_1(placement0_1::GuestIndices),
}

impl Placement {
    fn find<T>(pre: &InstancePre<T>) -> Result<Option<Placement>, String> {
        let world = PluginWorld::BackendPolicy;
        let current: [(&str, Check); 1] = [(
            "select-backend",
            typed::<(wit::ContainerSpec, Vec<wit::BackendInfo>), (Result<String, String>,)>,
        )];
        if exports(pre, world, Abi::V0_4, &current)? {
            return indices(placement0_4::GuestIndices::new(pre))
                .map(|ix| Some(Placement::V0_4(ix)));
        }
        if exports(pre, world, Abi::V0_3, &current)? {
            return indices(placement0_3::GuestIndices::new(pre))
                .map(|ix| Some(Placement::V0_3(ix)));
        }
        let v0_2: [(&str, Check); 1] = [(
            "select-backend",
            typed::<(wit0_2::ContainerSpec, Vec<wit0_2::BackendInfo>), (Result<String, String>,)>,
        )];
        if exports(pre, world, Abi::V0_2, &v0_2)? {
            return indices(placement0_2::GuestIndices::new(pre))
                .map(|ix| Some(Placement::V0_2(ix)));
        }
        let v0_1: [(&str, Check); 1] = [(
            "select-backend",
            typed::<(wit0_1::ContainerSpec, Vec<wit0_1::BackendInfo>), (Result<String, String>,)>,
        )];
        if exports(pre, world, Abi::V0_1, &v0_1)? {
            return indices(placement0_1::GuestIndices::new(pre))
                .map(|ix| Some(Placement::V0_1(ix)));
        }
        Ok(None)
    }

    fn abi(&self) -> Abi {
        match self {
            Placement::V0_4(_) => Abi::V0_4,
            Placement::V0_3(_) => Abi::V0_3,
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
            Placement::V0_4(ix) => ix
                .load(&mut store, instance)?
                .call_select_backend(&mut store, spec, candidates),
            Placement::V0_3(ix) => ix
                .load(&mut store, instance)?
                .call_select_backend(&mut store, spec, candidates),
            Placement::V0_2(ix) => {
                let candidates: Vec<wit0_2::BackendInfo> =
                    candidates.iter().cloned().map(Into::into).collect();
                ix.load(&mut store, instance)?.call_select_backend(
                    &mut store,
                    &spec.clone().into(),
                    &candidates,
                )
            }
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
    V0_4(hooks0_4::GuestIndices),
    V0_3(hooks0_3::GuestIndices),
    V0_2(hooks0_2::GuestIndices),
    V0_1(hooks0_1::GuestIndices),
}

impl Hooks {
    fn find<T>(pre: &InstancePre<T>) -> Result<Option<Hooks>, String> {
        let world = PluginWorld::LifecycleHooks;
        let current: [(&str, Check); 1] = [(
            "on-event",
            typed::<(wit::Event, wit::ContainerSpec), (Result<Option<wit::Patch>, String>,)>,
        )];
        if exports(pre, world, Abi::V0_4, &current)? {
            return indices(hooks0_4::GuestIndices::new(pre)).map(|ix| Some(Hooks::V0_4(ix)));
        }
        if exports(pre, world, Abi::V0_3, &current)? {
            return indices(hooks0_3::GuestIndices::new(pre)).map(|ix| Some(Hooks::V0_3(ix)));
        }
        let v0_2: [(&str, Check); 1] = [(
            "on-event",
            typed::<(wit0_2::Event, wit0_2::ContainerSpec), (Result<Option<wit0_2::Patch>, String>,)>,
        )];
        if exports(pre, world, Abi::V0_2, &v0_2)? {
            return indices(hooks0_2::GuestIndices::new(pre)).map(|ix| Some(Hooks::V0_2(ix)));
        }
        let v0_1: [(&str, Check); 1] = [(
            "on-event",
            typed::<
                (wit0_1::Hook, wit0_1::ContainerSpec, Option<String>),
                (Result<Option<wit0_1::Patch>, String>,),
            >,
        )];
        if exports(pre, world, Abi::V0_1, &v0_1)? {
            return indices(hooks0_1::GuestIndices::new(pre)).map(|ix| Some(Hooks::V0_1(ix)));
        }
        Ok(None)
    }

    pub fn abi(&self) -> Abi {
        match self {
            Hooks::V0_4(_) => Abi::V0_4,
            Hooks::V0_3(_) => Abi::V0_3,
            Hooks::V0_2(_) => Abi::V0_2,
            Hooks::V0_1(_) => Abi::V0_1,
        }
    }

    /// Whether this plugin's ABI has `hook` at all; a plugin is not told events its version
    /// cannot name (a 0.1.0 one is not told `create-failed`).
    pub fn knows(&self, hook: wit::Hook) -> bool {
        match self {
            Hooks::V0_4(_) | Hooks::V0_3(_) | Hooks::V0_2(_) => true,
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
            Hooks::V0_4(ix) => ix
                .load(&mut store, instance)?
                .call_on_event(&mut store, event, spec),
            Hooks::V0_3(ix) => ix
                .load(&mut store, instance)?
                .call_on_event(&mut store, event, spec),
            Hooks::V0_2(ix) => {
                let answer = ix.load(&mut store, instance)?.call_on_event(
                    &mut store,
                    &event.clone().into(),
                    &spec.clone().into(),
                )?;
                Ok(answer.map(|patch| patch.map(Into::into)))
            }
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

/// A pod lifecycle hook's entry point (new in 0.4.0, so at one version only).
pub(crate) struct PodHooks(pod_hooks0_4::GuestIndices);

impl PodHooks {
    fn find<T>(pre: &InstancePre<T>) -> Result<Option<PodHooks>, String> {
        let current: [(&str, Check); 1] = [(
            "on-pod-event",
            typed::<(wit::Event, wit::PodSpec), (Result<(), String>,)>,
        )];
        if exports(pre, PluginWorld::PodLifecycleHooks, Abi::V0_4, &current)? {
            return indices(pod_hooks0_4::GuestIndices::new(pre)).map(|ix| Some(PodHooks(ix)));
        }
        Ok(None)
    }

    pub fn on_pod_event(
        &self,
        mut store: impl AsContextMut,
        instance: &Instance,
        event: &wit::Event,
        pod: &wit::PodSpec,
    ) -> wasmtime::Result<Result<(), String>> {
        self.0
            .load(&mut store, instance)?
            .call_on_pod_event(&mut store, event, pod)
    }
}

/// Export indices, found once the types are known to match (so only a host bug fails here).
fn indices<I>(found: wasmtime::Result<I>) -> Result<I, String> {
    found.map_err(|e| format!("{e:#}"))
}

/// The entry points of the roles a component implements (by its exports and their types), at
/// whichever ABI version it was built against.
pub(crate) struct Worlds {
    pub naming: Option<Naming>,
    pub placement: Option<Placement>,
    pub hooks: Option<Hooks>,
    pub pod_hooks: Option<PodHooks>,
    /// Worlds whose interface the component exports but the host cannot call, and why (a
    /// function missing or of the wrong type).
    pub broken: Vec<(PluginWorld, String)>,
}

impl Worlds {
    pub fn new<T>(pre: &InstancePre<T>) -> Worlds {
        fn found<R>(
            world: PluginWorld,
            answer: Result<Option<R>, String>,
            broken: &mut Vec<(PluginWorld, String)>,
        ) -> Option<R> {
            answer.unwrap_or_else(|why| {
                broken.push((world, why));
                None
            })
        }
        let mut broken = Vec::new();
        let naming = found(PluginWorld::NamePolicy, Naming::find(pre), &mut broken);
        let placement = found(
            PluginWorld::BackendPolicy,
            Placement::find(pre),
            &mut broken,
        );
        let hooks = found(PluginWorld::LifecycleHooks, Hooks::find(pre), &mut broken);
        let pod_hooks = found(
            PluginWorld::PodLifecycleHooks,
            PodHooks::find(pre),
            &mut broken,
        );
        Worlds {
            naming,
            placement,
            hooks,
            pod_hooks,
            broken,
        }
    }

    /// Why the component's export of `world` cannot be called, if it exports one that way.
    pub fn broken(&self, world: PluginWorld) -> Option<&str> {
        self.broken
            .iter()
            .find(|(w, _)| *w == world)
            .map(|(_, why)| why.as_str())
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
        if self.pod_hooks.is_some() {
            worlds.push(PluginWorld::PodLifecycleHooks);
        }
        worlds
    }

    /// The ABI version the component's berth exports target (the newest, should they mix).
    pub fn abi(&self) -> Option<Abi> {
        [
            self.naming.as_ref().map(Naming::abi),
            self.placement.as_ref().map(Placement::abi),
            self.hooks.as_ref().map(Hooks::abi),
            self.pod_hooks.as_ref().map(|_| Abi::V0_4),
        ]
        .into_iter()
        .flatten()
        .max()
    }
}
