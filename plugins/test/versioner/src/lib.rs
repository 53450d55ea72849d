//! Test plugin: keeps a version of every container it sees stop. At post-stop it asks the
//! `snapshots` host interface to commit the container as `<name>-at-stop`, to prove a granted
//! hook can reach snapshots (and that without the grant it cannot load).

wit_bindgen::generate!({ world: "lifecycle-hooks", path: "../../../wit" });

use berth::plugin::snapshots;
use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Hook, Patch};

struct Versioner;

impl Guest for Versioner {
    fn on_event(event: Event, spec: ContainerSpec) -> Result<Option<Patch>, String> {
        if let (Hook::PostStop, Some(id)) = (event.hook, event.id) {
            snapshots::commit_container(&id, Some(&format!("{}-at-stop", spec.name)))?;
        }
        Ok(None)
    }
}

export!(Versioner);
