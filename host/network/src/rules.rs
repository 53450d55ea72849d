//! iptables rules a CNI DEL left behind. The plugins tag every rule they add for a container
//! with `id: "<container id>"`; the bridge plugin skips its masquerade teardown when the
//! container's interface is already gone (it finds the addresses to untag on the interface),
//! so after DEL berth removes whatever still carries the tag, and the per-container chains
//! those rules jumped to.

use std::process::Command;

use berth_core::{IoContext, Result};

use crate::iptables;

const TABLES: [&str; 2] = ["nat", "filter"];

/// A tagged rule: its chain, its position in it (1-based), and the chain it jumps to.
#[derive(Debug, PartialEq, Eq)]
struct Tagged {
    chain: String,
    position: usize,
    target: Option<String>,
}

/// Removes every rule tagged with container `id` and the per-container chains they used;
/// what was removed, one line each.
pub fn remove_tagged(id: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for table in TABLES {
        let saved = iptables_save(table)?;
        let mut tagged = tagged_rules(&saved, id);
        // Last first, so the positions of the others stay right.
        tagged.sort_by(|a, b| (&a.chain, b.position).cmp(&(&b.chain, a.position)));
        for rule in &tagged {
            iptables(&["-t", table, "-D", &rule.chain, &rule.position.to_string()])?;
            removed.push(format!(
                "iptables rule {table}/{} #{}",
                rule.chain, rule.position
            ));
        }
        let mut chains: Vec<&str> = tagged
            .iter()
            .filter_map(|r| r.target.as_deref())
            .filter(|t| is_container_chain(t))
            .collect();
        chains.sort();
        chains.dedup();
        for chain in chains {
            iptables(&["-t", table, "-F", chain])?;
            iptables(&["-t", table, "-X", chain])?;
            removed.push(format!("iptables chain {table}/{chain}"));
        }
    }
    Ok(removed)
}

/// `CNI-<24 hex>` (bridge's masquerade chain) or `CNI-DN-<hex>` (portmap's DNAT chain): made
/// for one container, unlike the shared `CNI-HOSTPORT-*`, `CNI-FORWARD` and `CNI-ADMIN`.
fn is_container_chain(chain: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    chain
        .strip_prefix("CNI-DN-")
        .or_else(|| chain.strip_prefix("CNI-"))
        .is_some_and(hex)
}

fn tagged_rules(saved: &str, id: &str) -> Vec<Tagged> {
    let tag = format!("id: \\\"{id}\\\"");
    let mut positions: std::collections::HashMap<&str, usize> = Default::default();
    let mut tagged = Vec::new();
    for line in saved.lines() {
        let Some(rule) = line.strip_prefix("-A ") else {
            continue;
        };
        let chain = rule.split_whitespace().next().unwrap_or_default();
        let position = positions.entry(chain).or_insert(0);
        *position += 1;
        if line.contains(&tag) {
            let mut words = rule.split_whitespace();
            let target = words
                .by_ref()
                .skip_while(|w| *w != "-j")
                .nth(1)
                .map(str::to_string);
            tagged.push(Tagged {
                chain: chain.to_string(),
                position: *position,
                target,
            });
        }
    }
    tagged
}

fn iptables_save(table: &str) -> Result<String> {
    let output = Command::new("iptables-save")
        .args(["-t", table])
        .output()
        .context(|| "running iptables-save (install iptables)".to_string())?;
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_tagged_with_the_id_are_found_with_their_positions_and_chains() {
        let saved = r#"*nat
:POSTROUTING ACCEPT [0:0]
:CNI-0123456789abcdef01234567 - [0:0]
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.1.0.2/32 -m comment --comment "name: \"web\" id: \"other\"" -j CNI-aaaaaaaaaaaaaaaaaaaaaaaa
-A POSTROUTING -s 10.1.0.3/32 -m comment --comment "name: \"web\" id: \"abc\"" -j CNI-0123456789abcdef01234567
-A CNI-0123456789abcdef01234567 -d 10.1.0.0/24 -m comment --comment "name: \"web\" id: \"abc\"" -j ACCEPT
COMMIT
"#;
        let found = tagged_rules(saved, "abc");
        assert_eq!(
            found,
            [
                Tagged {
                    chain: "POSTROUTING".into(),
                    position: 3,
                    target: Some("CNI-0123456789abcdef01234567".into())
                },
                Tagged {
                    chain: "CNI-0123456789abcdef01234567".into(),
                    position: 1,
                    target: Some("ACCEPT".into())
                },
            ]
        );
        assert!(
            tagged_rules(saved, "ab").is_empty(),
            "a whole id, not a prefix"
        );
    }

    #[test]
    fn only_per_container_chains_are_removed() {
        assert!(is_container_chain("CNI-0123456789abcdef01234567"));
        assert!(is_container_chain("CNI-DN-0123456789abcdef0123"));
        for shared in [
            "CNI-HOSTPORT-MASQ",
            "CNI-FORWARD",
            "CNI-ADMIN",
            "ACCEPT",
            "CNI-",
        ] {
            assert!(!is_container_chain(shared), "{shared}");
        }
    }
}
