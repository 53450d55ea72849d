//! Test plugin: patches the env key guard also sets, with another value, to prove conflicting
//! patches are an error naming both plugins.

wit_bindgen::generate!({ world: "lifecycle-hooks", path: "../../../wit" });

use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Hook, Patch};

struct Conflict;

impl Guest for Conflict {
    fn on_event(event: Event, _: ContainerSpec) -> Result<Option<Patch>, String> {
        Ok((event.hook == Hook::PreCreate).then(|| Patch {
            env: vec![("BERTH_CONTAINER_NAME".into(), "not-the-name".into())],
            labels: Vec::new(),
            mounts: Vec::new(),
            limits: None,
            dns: None,
            extra_hosts: Vec::new(),
        }))
    }
}

export!(Conflict);
