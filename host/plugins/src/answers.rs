//! Everything a plugin hands back, checked and bounded before berth uses it: the one place that
//! treats answers as the untrusted input they are.
//!
//! A plugin's answer is copied into errors the user reads, into the decision log (in the run
//! dir, i.e. memory) and into the container's spec. So every deny reason and failure message is
//! cut to [`MAX_REASON`] bytes with a marker, a generated name must pass the host's own name
//! rule, a backend must be one of the candidates, and a patch is limited in entries and bytes
//! before it is converted, and at `pre-create` goes through the user's own spec rules. An
//! answer that breaks a rule is the plugin's failure (`bad answer`, naming the plugin, the
//! function and what is wrong): its `on-error` applies, and the user is not blamed.
//!
//! What a plugin writes through `log` is bounded where it is written (`interfaces::log`); the
//! decision log bounds its own size (`events`). Escaping for a terminal is the printer's job:
//! text here is kept exact, only shortened.

use berth_core::{BackendInfo, ContainerSpec, Error, PluginFailure, Result, text};

use crate::convert;
use crate::hook::Hook;
use crate::interfaces::types::wit;
use crate::patch::Patch;

/// Longest deny reason or failure message kept (a reason is for a person to read).
pub(crate) const MAX_REASON: usize = 4096;
/// Most entries one patch may set: env variables, labels, mounts, DNS servers, search domains
/// and options, and hosts together (limits count one each).
pub(crate) const MAX_PATCH_ENTRIES: usize = 64;
/// Most bytes of keys, values, paths, DNS entries and hosts one patch may carry.
pub(crate) const MAX_PATCH_BYTES: usize = 64 << 10;
/// Longest container name echoed in a decision (names that reach the log passed the name rule;
/// a `berth plugin call` spec file's need not have).
pub(crate) const MAX_CONTAINER: usize = 256;

/// A deny reason or failure message, cut to [`MAX_REASON`].
pub(crate) fn reason(reason: String) -> String {
    if reason.len() <= MAX_REASON {
        return reason;
    }
    text::truncated(&reason, MAX_REASON).into_owned()
}

/// A plugin's verdict with its deny reason bounded.
pub(crate) fn verdict<T>(answer: std::result::Result<T, String>) -> std::result::Result<T, String> {
    answer.map_err(reason)
}

/// `Error::PluginFailed` with its message bounded: messages quote what the plugin said (a
/// panic message, an answer), and so are plugin-supplied text too.
pub(crate) fn failed(
    plugin: &str,
    function: &str,
    failure: PluginFailure,
    message: impl Into<String>,
) -> Error {
    Error::PluginFailed {
        plugin: plugin.to_string(),
        hook: function.to_string(),
        failure,
        message: reason(message.into()),
    }
}

/// A plugin broke its contract, whatever the user asked.
fn bad_answer(plugin: &str, function: &str, message: impl Into<String>) -> Error {
    failed(plugin, function, PluginFailure::BadAnswer, message)
}

/// A name a name policy generated: it must pass the host's name rule, which the user's own
/// names meet too, or it is the plugin's failure rather than the user's invalid input.
pub(crate) fn generated_name(plugin: &str, name: Option<String>) -> Result<Option<String>> {
    let Some(name) = name else {
        return Ok(None);
    };
    match berth_core::validate::container_name(&name) {
        Ok(()) => Ok(Some(name)),
        Err(broken) => Err(bad_answer(
            plugin,
            "generate-name",
            format!(
                "generated a name the host refuses: {broken} (the plugin must generate names \
                 that follow the host's rule; fix it or its settings)"
            ),
        )),
    }
}

/// The backend a backend policy chose: one of `candidates`, or the plugin failed.
pub(crate) fn backend(plugin: &str, backend: String, candidates: &[BackendInfo]) -> Result<String> {
    if candidates.iter().any(|c| c.name == backend) {
        return Ok(backend);
    }
    let names: Vec<_> = candidates.iter().map(|c| c.name.as_str()).collect();
    Err(bad_answer(
        plugin,
        "select-backend",
        format!(
            "answered {:?}, which is not one of the candidate backends ({}); the plugin must \
             answer a configured backend's name (fix it or its settings)",
            text::truncated(&backend, MAX_CONTAINER),
            names.join(", ")
        ),
    ))
}

/// A hook's patch, bounded in size, converted, and at `pre-create` checked against the spec it
/// would change (`spec`): a plugin may not create a container its user could not. An empty
/// patch is no patch. Patches at other hooks are ignored but still recorded, so they are
/// bounded too.
pub(crate) fn patch(
    plugin: &str,
    hook: Hook,
    patch: Option<wit::Patch>,
    spec: &ContainerSpec,
) -> Result<Option<Patch>> {
    let Some(patch) = patch else {
        return Ok(None);
    };
    let limits = patch.limits.as_ref().map_or(0, |l| {
        [l.cpu_millis, l.memory_bytes, l.pids]
            .iter()
            .filter(|v| v.is_some())
            .count()
    });
    let dns: Vec<&String> = patch
        .dns
        .iter()
        .flat_map(|d| d.servers.iter().chain(&d.search).chain(&d.options))
        .collect();
    let entries = patch.env.len()
        + patch.labels.len()
        + patch.mounts.len()
        + limits
        + dns.len()
        + patch.extra_hosts.len();
    if entries > MAX_PATCH_ENTRIES {
        return Err(bad_answer(
            plugin,
            hook.as_str(),
            format!(
                "its patch sets {entries} entries ({} env, {} labels, {} mounts, {limits} \
                 limits, {} dns, {} hosts), more than the {MAX_PATCH_ENTRIES} a patch may set",
                patch.env.len(),
                patch.labels.len(),
                patch.mounts.len(),
                dns.len(),
                patch.extra_hosts.len()
            ),
        ));
    }
    let pairs = patch.env.iter().chain(&patch.labels);
    let bytes: usize = pairs.map(|(k, v)| k.len() + v.len()).sum::<usize>()
        + patch
            .mounts
            .iter()
            .map(|m| m.source.len() + m.target.len())
            .sum::<usize>()
        + dns.iter().map(|d| d.len()).sum::<usize>()
        + patch
            .extra_hosts
            .iter()
            .map(|h| h.name.len() + h.address.len())
            .sum::<usize>();
    if bytes > MAX_PATCH_BYTES {
        return Err(bad_answer(
            plugin,
            hook.as_str(),
            format!(
                "its patch carries {bytes} bytes of keys, values and paths, more than the \
                 {MAX_PATCH_BYTES} a patch may carry"
            ),
        ));
    }
    let patch = convert::patch(patch).map_err(|why| bad_answer(plugin, hook.as_str(), why))?;
    if patch.is_empty() {
        return Ok(None);
    }
    if hook == Hook::PreCreate
        && let Err(broken) = patch.check_against(spec)
    {
        // The plugin broke its contract: its patch goes through the user's own rules.
        return Err(bad_answer(
            plugin,
            hook.as_str(),
            format!("its patch would make the spec invalid: {broken}"),
        ));
    }
    Ok(Some(patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit_patch(env: usize, value: usize) -> wit::Patch {
        wit::Patch {
            env: (0..env)
                .map(|i| (format!("K{i}"), "v".repeat(value)))
                .collect(),
            labels: vec![],
            mounts: vec![],
            limits: None,
            dns: None,
            extra_hosts: vec![],
        }
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "busybox".into(),
            ..ContainerSpec::default()
        }
    }

    fn message(err: Error) -> String {
        match err {
            Error::PluginFailed {
                plugin,
                hook,
                failure,
                message,
            } => {
                assert_eq!(failure, PluginFailure::BadAnswer);
                format!("{plugin} {hook}: {message}")
            }
            other => panic!("not a plugin failure: {other}"),
        }
    }

    #[test]
    fn reasons_and_messages_are_cut_with_a_marker() {
        assert_eq!(reason("no".into()), "no");
        let long = reason("é".repeat(1 << 20));
        assert!(
            long.len() <= MAX_REASON + text::MARKER_MAX,
            "{}",
            long.len()
        );
        assert!(long.ends_with("bytes]"), "{}", &long[long.len() - 40..]);
        let err = failed("x", "pre-create", PluginFailure::Trap, "y".repeat(1 << 20));
        assert!(err.to_string().len() < MAX_REASON + 200);
        assert_eq!(verdict::<()>(Err("z".repeat(9000))).unwrap_err().len(), {
            MAX_REASON + "…[truncated: 9000 bytes]".len()
        });
    }

    #[test]
    fn a_generated_name_meets_the_host_rule_or_the_plugin_failed() {
        assert_eq!(generated_name("n", None).unwrap(), None);
        assert_eq!(
            generated_name("n", Some("web-1".into()))
                .unwrap()
                .as_deref(),
            Some("web-1")
        );
        for bad in ["../etc", "a\x1b[2Jb", "", &"x".repeat(1 << 20)] {
            let text = message(generated_name("naming", Some(bad.into())).unwrap_err());
            assert!(
                text.starts_with("naming generate-name: generated a name the host refuses"),
                "{text}"
            );
            assert!(text.len() < 1024, "{}", text.len());
        }
    }

    #[test]
    fn a_backend_must_be_a_candidate_and_is_echoed_bounded() {
        let native = BackendInfo {
            name: "native".into(),
            kind: "native".into(),
            version: "1".into(),
            healthy: true,
            features: vec![],
            detail: None,
        };
        assert_eq!(
            backend("p", "native".into(), std::slice::from_ref(&native)).unwrap(),
            "native"
        );
        let text = message(backend("p", "n".repeat(1 << 20), &[native]).unwrap_err());
        assert!(
            text.contains("not one of the candidate backends (native)"),
            "{text}"
        );
        assert!(text.len() < 1024, "{}", text.len());
    }

    #[test]
    fn patches_are_bounded_in_entries_and_bytes_at_every_hook() {
        let spec = spec();
        assert_eq!(patch("g", Hook::PreCreate, None, &spec).unwrap(), None);
        assert!(
            patch("g", Hook::PreCreate, Some(wit_patch(0, 0)), &spec)
                .unwrap()
                .is_none(),
            "an empty patch is no patch"
        );
        let fine = patch(
            "g",
            Hook::PreCreate,
            Some(wit_patch(MAX_PATCH_ENTRIES, 8)),
            &spec,
        );
        assert_eq!(fine.unwrap().unwrap().env.len(), MAX_PATCH_ENTRIES);
        for hook in [Hook::PreCreate, Hook::PostStart] {
            let many = patch("g", hook, Some(wit_patch(MAX_PATCH_ENTRIES + 1, 1)), &spec);
            let text = message(many.unwrap_err());
            assert!(
                text.starts_with(&format!("g {hook}: its patch sets 65 entries (65 env")),
                "{text}"
            );
            let big = patch("g", hook, Some(wit_patch(2, MAX_PATCH_BYTES / 2)), &spec);
            assert!(message(big.unwrap_err()).contains("bytes of keys"));
        }
    }

    #[test]
    fn a_pre_create_patch_meets_the_users_rules_and_names_the_field() {
        let spec = spec();
        let mut bad = wit_patch(0, 0);
        bad.env.push(("A=B".into(), "1".into()));
        let text = message(patch("g", Hook::PreCreate, Some(bad.clone()), &spec).unwrap_err());
        assert!(
            text.starts_with("g pre-create: its patch would make the spec invalid")
                && text.contains("\"A=B\""),
            "{text}"
        );
        // Ignored, so not checked against the spec, at a hook that cannot patch.
        assert!(patch("g", Hook::PostCreate, Some(bad), &spec).is_ok());
        let mut relative = wit_patch(0, 0);
        relative.mounts.push(wit::Mount {
            source: "/srv".into(),
            target: "srv".into(),
            readonly: false,
        });
        let text = message(patch("g", Hook::PreCreate, Some(relative), &spec).unwrap_err());
        assert!(text.contains("mount target \"srv\""), "{text}");
    }
}
