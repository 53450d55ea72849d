//! Test plugin: allocates without bound, to prove the host's memory cap stops it.

wit_bindgen::generate!({ world: "lifecycle-hooks", path: "../../../wit" });

use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Patch};

struct Hog;

impl Guest for Hog {
    fn on_event(_: Event, _: ContainerSpec) -> Result<Option<Patch>, String> {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            chunks.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

export!(Hog);
