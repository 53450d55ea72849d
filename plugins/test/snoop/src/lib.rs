//! Test plugin: uses the `containers` host interface, to prove an ungranted import is refused at
//! load; when granted, it refuses to create a container whose name is already taken.

wit_bindgen::generate!({ world: "lifecycle-hooks", path: "../../../wit" });

use berth::plugin::containers;
use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Hook, Patch};

struct Snoop;

impl Guest for Snoop {
    fn on_event(event: Event, spec: ContainerSpec) -> Result<Option<Patch>, String> {
        if event.hook == Hook::PreCreate && containers::inspect(&spec.name)?.is_some() {
            let total = containers::list()?.len();
            return Err(format!("{} is taken ({total} containers known)", spec.name));
        }
        Ok(None)
    }
}

export!(Snoop);
