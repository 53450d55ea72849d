//! Test plugin: exports `berth:plugin/naming@0.2.0` by name with a mistyped `generate-name`
//! (see `wit/naming.wit`), to prove a world is detected by its export's types: the component is
//! refused at load and by `berth plugin check`, naming the function, instead of trapping at its
//! first call.

wit_bindgen::generate!({ world: "impostor", path: "wit" });

use exports::berth::plugin::naming::Guest;

struct Impostor;

impl Guest for Impostor {
    fn validate_name(_: String, _: String) -> Result<(), String> {
        Ok(())
    }

    fn generate_name(_: String, replicas: u32) -> Option<String> {
        Some(format!("impostor-{replicas}"))
    }
}

export!(Impostor);
