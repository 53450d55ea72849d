//! The names of plugin entry points, as users type them (`berth plugin call NAME HOOK`) and as
//! the decision log records them.

use std::fmt;
use std::str::FromStr;

use berth_core::config::PluginWorld;
use berth_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// A lifecycle step. `pre-*` hooks may refuse the step (and `pre-create` may patch the spec);
/// `post-*` hooks and `create-failed` only observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hook {
    PreCreate,
    PostCreate,
    PreStart,
    PostStart,
    PreStop,
    PostStop,
    PreRemove,
    PostRemove,
    /// A create failed after `pre-create` hooks ran: hooks release what they provisioned.
    /// Sent by [`crate::PluginHost::create_failed`], with the reason.
    CreateFailed,
}

impl Hook {
    pub const ALL: [Hook; 9] = [
        Hook::PreCreate,
        Hook::PostCreate,
        Hook::PreStart,
        Hook::PostStart,
        Hook::PreStop,
        Hook::PostStop,
        Hook::PreRemove,
        Hook::PostRemove,
        Hook::CreateFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Hook::PreCreate => "pre-create",
            Hook::PostCreate => "post-create",
            Hook::PreStart => "pre-start",
            Hook::PostStart => "post-start",
            Hook::PreStop => "pre-stop",
            Hook::PostStop => "post-stop",
            Hook::PreRemove => "pre-remove",
            Hook::PostRemove => "post-remove",
            Hook::CreateFailed => "create-failed",
        }
    }

    /// Whether plugins may refuse this step; post-hooks and `create-failed` run after the fact
    /// and cannot.
    pub fn is_pre(self) -> bool {
        matches!(
            self,
            Hook::PreCreate | Hook::PreStart | Hook::PreStop | Hook::PreRemove
        )
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Hook {
    type Err = Error;

    /// Parses `pre-create` etc.; the error lists the valid names.
    fn from_str(s: &str) -> Result<Hook> {
        Hook::ALL
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Hook::ALL.iter().map(|h| h.as_str()).collect();
                Error::invalid(format!("hook {s:?}"), "unknown hook")
                    .with_hint(format!("use one of {}", names.join(", ")))
            })
    }
}

/// Any function a plugin exports: what `berth plugin call NAME FUNCTION` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    ValidateName,
    GenerateName,
    SelectBackend,
    Event(Hook),
    /// A pod's step, named `pod-<hook>` (`pod-pre-create`).
    PodEvent(Hook),
}

impl Function {
    pub fn as_str(self) -> &'static str {
        match self {
            Function::ValidateName => "validate-name",
            Function::GenerateName => "generate-name",
            Function::SelectBackend => "select-backend",
            Function::Event(hook) => hook.as_str(),
            Function::PodEvent(hook) => match hook {
                Hook::PreCreate => "pod-pre-create",
                Hook::PostCreate => "pod-post-create",
                Hook::PreStart => "pod-pre-start",
                Hook::PostStart => "pod-post-start",
                Hook::PreStop => "pod-pre-stop",
                Hook::PostStop => "pod-post-stop",
                Hook::PreRemove => "pod-pre-remove",
                Hook::PostRemove => "pod-post-remove",
                Hook::CreateFailed => "pod-create-failed",
            },
        }
    }

    /// The world a plugin must be configured with to be asked this.
    pub fn world(self) -> PluginWorld {
        match self {
            Function::ValidateName | Function::GenerateName => PluginWorld::NamePolicy,
            Function::SelectBackend => PluginWorld::BackendPolicy,
            Function::Event(_) => PluginWorld::LifecycleHooks,
            Function::PodEvent(_) => PluginWorld::PodLifecycleHooks,
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Function {
    type Err = Error;

    /// Parses `validate-name`, `generate-name`, `select-backend`, a hook name or a pod hook's
    /// (`pod-pre-create`).
    fn from_str(s: &str) -> Result<Function> {
        let hook = match s.strip_prefix("pod-") {
            Some(hook) => hook.parse().map(Function::PodEvent),
            None => s.parse().map(Function::Event),
        };
        match s {
            "validate-name" => Ok(Function::ValidateName),
            "generate-name" => Ok(Function::GenerateName),
            "select-backend" => Ok(Function::SelectBackend),
            _ => hook.map_err(|_| {
                Error::invalid(format!("plugin function {s:?}"), "unknown function").with_hint(
                    "use validate-name, generate-name, select-backend, a hook such as pre-create \
                     or a pod hook such as pod-pre-create",
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for hook in Hook::ALL {
            assert_eq!(hook.as_str().parse::<Hook>().unwrap(), hook);
            assert_eq!(
                hook.as_str().parse::<Function>().unwrap(),
                Function::Event(hook)
            );
            let pod = Function::PodEvent(hook);
            assert_eq!(pod.as_str(), format!("pod-{hook}"));
            assert_eq!(pod.as_str().parse::<Function>().unwrap(), pod);
        }
        assert_eq!(
            "select-backend".parse::<Function>().unwrap().world(),
            PluginWorld::BackendPolicy
        );
        let err = "pre-creat".parse::<Hook>().unwrap_err().to_string();
        assert!(err.contains("pre-create, post-create"), "{err}");
        assert!(!Hook::CreateFailed.is_pre());
        assert_eq!("create-failed".parse::<Hook>().unwrap(), Hook::CreateFailed);
        assert!("nope".parse::<Function>().is_err());
    }
}
