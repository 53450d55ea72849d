//! A frozen copy of `plugins/selector` as it was when berth:plugin was 0.1.0, built against
//! `wit/0.1.0`, so berth's tests prove components built then keep loading and working. Do not
//! update it; the plugin itself lives on in `plugins/selector`.
//!
//! Backend policy: honours a `berth.backend=<name>` label or a `--backend` request (refusing the
//! two when they disagree), then per-image rules, then picks the first healthy candidate; refuses
//! when the chosen backend is not a healthy candidate.
//!
//! Settings: `rules` = `"busybox*=native,nginx*=docker"` (image glob with a trailing `*`, first
//! match wins).

// The rules are plain Rust, untouched by the ABI: the plugin's own, shared.
#[path = "../../../selector/src/rules.rs"]
mod rules;

wit_bindgen::generate!({ world: "backend-policy", path: "../../../wit/0.1.0" });

include!("glue.rs");
