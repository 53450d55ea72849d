//! A frozen copy of `plugins/naming` as it was when berth:plugin was 0.1.0, built against
//! `wit/0.1.0`, so berth's tests prove components built then keep loading and working. Do not
//! update it; the plugin itself lives on in `plugins/naming`.
//!
//! Name policy: validates names against a DNS-label rule (or the `pattern` setting) and
//! generates `app-{app-id}-{replica:04x}` names from labels, as sysinner names its replicas.
//!
//! Settings: `pattern` (regex; replaces the default DNS-label rule and its 3..=63 length bound).

// The rules are plain Rust, untouched by the ABI: the plugin's own, shared.
#[path = "../../../naming/src/rules.rs"]
mod rules;

wit_bindgen::generate!({ world: "name-policy", path: "../../../wit/0.1.0" });

use berth::plugin::{config, log};
use exports::berth::plugin::naming::{ContainerSpec, Guest};

struct Naming;

impl Guest for Naming {
    fn validate_name(kind: String, name: String) -> Result<(), String> {
        let rule = rules::Rule::new(config::get("pattern").as_deref())?;
        rule.validate(&kind, &name)
    }

    fn generate_name(kind: String, spec: ContainerSpec) -> Result<Option<String>, String> {
        let name = rules::generate(&spec.labels)?;
        if let Some(name) = &name {
            log::log(log::Level::Debug, &format!("generated {kind} name {name}"));
        }
        Ok(name)
    }
}

export!(Naming);
