// The plugin's code as it was written against berth:plugin 0.1.0; the same code, unchanged,
// built against 0.2.0 (`plugins/compat-0.2/naming`) includes it after its own bindings.

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
