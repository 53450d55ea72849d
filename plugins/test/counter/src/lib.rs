//! Test plugin: counts the calls its instance has answered (refusing every name with the count)
//! and panics on the name `boom`, to show an instance serves several calls and is replaced
//! after a trap.

use std::sync::atomic::{AtomicU32, Ordering};

wit_bindgen::generate!({ world: "name-policy", path: "../../../wit" });

use exports::berth::plugin::naming::{ContainerSpec, Guest};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Counter;

impl Guest for Counter {
    fn validate_name(_: String, name: String) -> Result<(), String> {
        let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if name == "boom" {
            panic!("counter was asked to panic on call {call}");
        }
        Err(format!("call {call}"))
    }

    fn generate_name(_: String, _: ContainerSpec) -> Result<Option<String>, String> {
        Ok(None)
    }
}

export!(Counter);
