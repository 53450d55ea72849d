//! Test plugin: a backend policy that answers its `answer` setting whatever the candidates, to
//! prove an answer naming no candidate is a plugin failure (subject to `on-error`), not the
//! user's mistake.

wit_bindgen::generate!({ world: "backend-policy", path: "../../../wit" });

use berth::plugin::config;
use exports::berth::plugin::placement::{BackendInfo, ContainerSpec, Guest};

struct Rogue;

impl Guest for Rogue {
    fn select_backend(_: ContainerSpec, _: Vec<BackendInfo>) -> Result<String, String> {
        config::get("answer").ok_or_else(|| "setting `answer` is not set".to_string())
    }
}

export!(Rogue);
