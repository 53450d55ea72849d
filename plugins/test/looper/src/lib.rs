//! Test plugin: never returns, to prove the host's deadline stops it.

wit_bindgen::generate!({ world: "lifecycle-hooks", path: "../../../wit" });

use exports::berth::plugin::hooks::{ContainerSpec, Event, Guest, Patch};

struct Looper;

impl Guest for Looper {
    fn on_event(_: Event, spec: ContainerSpec) -> Result<Option<Patch>, String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(spec.name.len() as u64));
        }
    }
}

export!(Looper);
