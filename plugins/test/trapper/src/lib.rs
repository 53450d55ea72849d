//! Test plugin: panics (a trap), to prove a crashing plugin is reported and contained.

wit_bindgen::generate!({ world: "name-policy", path: "../../../wit" });

use exports::berth::plugin::naming::{ContainerSpec, Guest};

struct Trapper;

impl Guest for Trapper {
    fn validate_name(_: String, name: String) -> Result<(), String> {
        panic!("trapper always panics (asked about {name})")
    }

    fn generate_name(_: String, _: ContainerSpec) -> Result<Option<String>, String> {
        panic!("trapper always panics")
    }
}

export!(Trapper);
