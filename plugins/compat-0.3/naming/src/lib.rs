//! A frozen copy of `plugins/naming` as it was when berth:plugin was 0.3.0, built against
//! `wit/0.3.0`, so berth's tests prove components built then keep loading and working. Do not
//! update it; the plugin itself lives on in `plugins/naming`.
//!
//! Name policy: validates names against a DNS-label rule (or the `pattern` setting) and
//! generates `app-{app-id}-{replica:04x}` names from labels, as sysinner names its replicas.
//!
//! Settings: `pattern` (regex; replaces the default DNS-label rule and its 3..=63 length bound).

// The rules are plain Rust, untouched by the ABI: the plugin's own, shared.
#[path = "../../../naming/src/rules.rs"]
mod rules;

wit_bindgen::generate!({ world: "name-policy", path: "../../../wit/0.3.0" });

// Written against 0.1.0 and unchanged since: the 0.1.0 copy's code, built against 0.3.0.
include!("../../../compat-0.1/naming/src/glue.rs");
