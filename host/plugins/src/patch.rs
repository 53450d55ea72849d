//! Pre-create patches: what hook plugins may change in a spec, and how several plugins' patches
//! combine.
//!
//! Patches apply in config order and each plugin sees the spec as earlier plugins left it. Two
//! plugins setting the same env key, label, mount target or limit to different values is an
//! error naming both, not a silent last-writer-wins: the operator has to decide which policy
//! is right.

use std::collections::{BTreeMap, HashMap};

use berth_core::{ContainerSpec, Error, HostEntry, Limits, Mount, Result};
use serde::{Deserialize, Serialize};

/// Changes one plugin asked for. Entries add or replace; nothing is removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Patch {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Replace a mount with the same target, else add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Each limit that is set replaces the spec's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Replaces the spec's whole resolver configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Replace a host entry with the same name, else add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<HostEntry>,
}

/// A container's resolver configuration, as a patch sets it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

impl Dns {
    /// `servers=10.0.0.2 search=corp options=ndots:2`, each list comma-joined.
    fn summary(&self) -> String {
        format!(
            "servers={} search={} options={}",
            self.servers.join(","),
            self.search.join(","),
            self.options.join(",")
        )
    }
}

impl Patch {
    /// One line for humans: `env A=1, label b=2, mount /x:/y, memory-bytes=5`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.env.iter().map(|(k, v)| format!("env {k}={v}")));
        parts.extend(self.labels.iter().map(|(k, v)| format!("label {k}={v}")));
        parts.extend(self.mounts.iter().map(|m| {
            format!(
                "mount {}:{}{}",
                m.source,
                m.target,
                if m.readonly { ":ro" } else { "" }
            )
        }));
        if let Some(l) = &self.limits {
            for (name, value) in limit_fields(l) {
                if let Some(v) = value {
                    parts.push(format!("{name}={v}"));
                }
            }
        }
        parts.extend(self.dns.iter().map(|d| format!("dns {}", d.summary())));
        parts.extend(
            self.extra_hosts
                .iter()
                .map(|h| format!("host {}={}", h.name, h.ip)),
        );
        if parts.is_empty() {
            "empty patch".into()
        } else {
            parts.join(", ")
        }
    }

    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.labels.is_empty()
            && self.mounts.is_empty()
            && self.limits.as_ref().is_none_or(|l| *l == Limits::default())
            && self.dns.is_none()
            && self.extra_hosts.is_empty()
    }
}

fn limit_fields(l: &Limits) -> [(&'static str, Option<u64>); 3] {
    [
        ("cpu-millis", l.cpu_millis),
        ("memory-bytes", l.memory_bytes),
        ("pids", l.pids),
    ]
}

/// Who set what so far during one pre-create, to detect conflicts between plugins.
#[derive(Default)]
pub(crate) struct PatchSet {
    /// (what, key) -> (plugin, value)
    owners: HashMap<(&'static str, String), (String, String)>,
}

impl PatchSet {
    /// Checks `patch` against earlier plugins' patches, then applies it to `spec`. On conflict
    /// nothing of this patch is applied.
    pub fn apply(&mut self, plugin: &str, patch: &Patch, spec: &mut ContainerSpec) -> Result<()> {
        let mut claims: Vec<((&'static str, String), String)> = Vec::new();
        claims.extend(
            patch
                .env
                .iter()
                .map(|(k, v)| (("env", k.clone()), v.clone())),
        );
        claims.extend(
            patch
                .labels
                .iter()
                .map(|(k, v)| (("label", k.clone()), v.clone())),
        );
        claims.extend(patch.mounts.iter().map(|m| {
            (
                ("mount target", m.target.clone()),
                format!("{}{}", m.source, if m.readonly { ":ro" } else { "" }),
            )
        }));
        if let Some(l) = &patch.limits {
            for (name, value) in limit_fields(l) {
                if let Some(v) = value {
                    claims.push((("limit", name.to_string()), v.to_string()));
                }
            }
        }
        if let Some(dns) = &patch.dns {
            claims.push((("dns", "configuration".into()), dns.summary()));
        }
        claims.extend(
            patch
                .extra_hosts
                .iter()
                .map(|h| (("host", h.name.clone()), h.ip.to_string())),
        );
        for (key, value) in &claims {
            if let Some((owner, theirs)) = self.owners.get(key)
                && owner != plugin
                && theirs != value
            {
                return Err(Error::Conflict {
                    what: format!("pre-create patches of plugins {owner:?} and {plugin:?}"),
                    reason: format!("both set {} {}: {theirs:?} vs {value:?}", key.0, key.1),
                    hint: "make the plugins agree (settings) or remove one from [[plugins]]".into(),
                });
            }
        }
        for (key, value) in claims {
            self.owners.insert(key, (plugin.to_string(), value));
        }
        patch.apply_to(spec);
        Ok(())
    }
}

impl Patch {
    /// `spec` with this patch applied (no conflict check: see [`PatchSet::apply`]).
    pub fn apply_to(&self, spec: &mut ContainerSpec) {
        let patch = self;
        spec.env
            .extend(patch.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        spec.labels
            .extend(patch.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        for m in &patch.mounts {
            match spec.mounts.iter_mut().find(|old| old.target == m.target) {
                Some(old) => *old = m.clone(),
                None => spec.mounts.push(m.clone()),
            }
        }
        if let Some(l) = &patch.limits {
            let target = &mut spec.limits;
            target.cpu_millis = l.cpu_millis.or(target.cpu_millis);
            target.memory_bytes = l.memory_bytes.or(target.memory_bytes);
            target.pids = l.pids.or(target.pids);
        }
        if let Some(dns) = &patch.dns {
            spec.dns = dns.servers.clone();
            spec.dns_search = dns.search.clone();
            spec.dns_options = dns.options.clone();
        }
        for h in &patch.extra_hosts {
            match spec.extra_hosts.iter_mut().find(|old| old.name == h.name) {
                Some(old) => *old = h.clone(),
                None => spec.extra_hosts.push(h.clone()),
            }
        }
    }

    /// Refuses a patch whose result would break a rule the CLI's own flags must follow: a
    /// plugin may not create a container its user could not.
    pub fn check_against(&self, spec: &ContainerSpec) -> Result<()> {
        let mut patched = spec.clone();
        self.apply_to(&mut patched);
        berth_core::validate::spec(&patched)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patch_env(key: &str, value: &str) -> Patch {
        Patch {
            env: [(key.to_string(), value.to_string())].into(),
            ..Patch::default()
        }
    }

    #[test]
    fn patches_apply_in_order_and_replace_by_key_and_target() {
        let mut spec = ContainerSpec {
            image: "busybox".into(),
            env: [("A".to_string(), "user".to_string())].into(),
            mounts: vec![Mount {
                source: "/old".into(),
                target: "/data".into(),
                readonly: false,
                owner: None,
            }],
            ..ContainerSpec::default()
        };
        let mut set = PatchSet::default();
        let first = Patch {
            env: [("A".to_string(), "plugin".to_string())].into(),
            labels: [("l".to_string(), "1".to_string())].into(),
            mounts: vec![Mount {
                source: "/new".into(),
                target: "/data".into(),
                readonly: true,
                owner: None,
            }],
            limits: Some(Limits {
                memory_bytes: Some(64 << 20),
                ..Limits::default()
            }),
            ..Patch::default()
        };
        set.apply("one", &first, &mut spec).unwrap();
        set.apply("two", &patch_env("B", "2"), &mut spec).unwrap();
        // Agreeing with an earlier plugin is fine.
        set.apply("three", &patch_env("A", "plugin"), &mut spec)
            .unwrap();
        assert_eq!(spec.env["A"], "plugin");
        assert_eq!(spec.env["B"], "2");
        assert_eq!(spec.labels["l"], "1");
        assert_eq!(spec.mounts.len(), 1);
        assert!(spec.mounts[0].readonly && spec.mounts[0].source == "/new");
        assert_eq!(spec.limits.memory_bytes, Some(64 << 20));
        assert_eq!(
            first.summary(),
            "env A=plugin, label l=1, mount /new:/data:ro, memory-bytes=67108864"
        );
    }

    #[test]
    fn dns_replaces_the_whole_resolver_and_hosts_replace_by_name() {
        let host = |name: &str, ip: &str| HostEntry {
            name: name.into(),
            ip: ip.parse().unwrap(),
        };
        let mut spec = ContainerSpec {
            image: "busybox".into(),
            dns: vec!["10.0.0.1".into()],
            dns_search: vec!["user.example".into()],
            extra_hosts: vec![host("db", "10.0.0.5"), host("cache", "10.0.0.6")],
            ..ContainerSpec::default()
        };
        let patch = Patch {
            dns: Some(Dns {
                servers: vec!["10.9.0.53".into()],
                search: vec![],
                options: vec!["ndots:1".into()],
            }),
            extra_hosts: vec![host("db", "10.0.0.9"), host("audit", "10.0.0.7")],
            ..Patch::default()
        };
        patch.check_against(&spec).unwrap();
        PatchSet::default().apply("p", &patch, &mut spec).unwrap();
        assert_eq!(spec.dns, ["10.9.0.53"]);
        assert!(spec.dns_search.is_empty());
        assert_eq!(spec.dns_options, ["ndots:1"]);
        assert_eq!(
            spec.extra_hosts,
            [
                host("db", "10.0.0.9"),
                host("cache", "10.0.0.6"),
                host("audit", "10.0.0.7")
            ]
        );
        assert_eq!(
            patch.summary(),
            "dns servers=10.9.0.53 search= options=ndots:1, host db=10.0.0.9, host audit=10.0.0.7"
        );

        // Two plugins wanting different resolvers, or one host at two addresses, conflict.
        let mut set = PatchSet::default();
        set.apply("one", &patch, &mut spec).unwrap();
        let other = Patch {
            dns: Some(Dns::default()),
            ..Patch::default()
        };
        let err = set.apply("two", &other, &mut spec).unwrap_err();
        assert!(err.to_string().contains("both set dns"), "{err}");
        let moved = Patch {
            extra_hosts: vec![host("audit", "10.0.0.8")],
            ..Patch::default()
        };
        let err = set.apply("two", &moved, &mut spec).unwrap_err();
        assert!(err.to_string().contains("both set host audit"), "{err}");

        let not_a_server = Patch {
            dns: Some(Dns {
                servers: vec!["resolver.corp".into()],
                ..Dns::default()
            }),
            ..Patch::default()
        };
        let err = not_a_server.check_against(&spec).unwrap_err();
        assert!(err.to_string().contains("resolver.corp"), "{err}");
    }

    #[test]
    fn a_patch_goes_through_the_users_own_rules() {
        let spec = ContainerSpec {
            image: "busybox".into(),
            ..ContainerSpec::default()
        };
        patch_env("A", "1").check_against(&spec).unwrap();
        for (key, broken) in [("A=B", "\"A=B\""), ("", "environment")] {
            let err = patch_env(key, "1").check_against(&spec).unwrap_err();
            assert!(err.to_string().contains(broken), "{err}");
        }
        let relative = Patch {
            mounts: vec![Mount {
                source: "/srv".into(),
                target: "srv".into(),
                readonly: false,
                owner: None,
            }],
            ..Patch::default()
        };
        assert!(relative.check_against(&spec).is_err());
        let no_pids = Patch {
            limits: Some(Limits {
                pids: Some(0),
                ..Limits::default()
            }),
            ..Patch::default()
        };
        assert!(no_pids.check_against(&spec).is_err());
    }

    #[test]
    fn conflicting_patches_name_both_plugins_and_apply_nothing() {
        let mut spec = ContainerSpec {
            image: "busybox".into(),
            ..ContainerSpec::default()
        };
        let mut set = PatchSet::default();
        set.apply("guard", &patch_env("K", "a"), &mut spec).unwrap();
        let mut second = patch_env("K", "b");
        second.labels.insert("x".into(), "y".into());
        let err = set
            .apply("other", &second, &mut spec)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"guard\"") && err.contains("\"other\"") && err.contains("env K"),
            "{err}"
        );
        assert!(!spec.labels.contains_key("x"));

        let mount = |src: &str| Patch {
            mounts: vec![Mount {
                source: src.into(),
                target: "/t".into(),
                readonly: false,
                owner: None,
            }],
            ..Patch::default()
        };
        set.apply("guard", &mount("/a"), &mut spec).unwrap();
        let err = set
            .apply("other", &mount("/b"), &mut spec)
            .unwrap_err()
            .to_string();
        assert!(err.contains("mount target /t"), "{err}");
    }
}
