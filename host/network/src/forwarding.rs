//! A network's own iptables rules, made once per network as docker makes them for a bridge:
//! masquerade for traffic leaving the subnet, and FORWARD accepts for traffic from its
//! containers and for replies and published ports (DNAT) to them (docker sets FORWARD's policy
//! to DROP). Per container, the CNI plugins then add only the interface, the address and any
//! published port, which keeps a container's start and removal short.
//!
//! iptables rules are volatile; so is the marker in the run dir that says a network's rules are
//! in place: after a reboot both are gone and the next attach makes them again.

use std::path::Path;

use berth_core::{Error, Result};

use crate::Network;

/// `(table, chain, rule)` for each rule of `network`, tagged with `tag`.
fn rules(network: &Network, tag: &str) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let comment = |mut rule: Vec<String>| {
        rule.extend(["-m", "comment", "--comment", tag].map(String::from));
        rule
    };
    let words = |text: &str| {
        text.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let bridge = &network.bridge;
    vec![
        (
            "nat",
            "POSTROUTING",
            comment(words(&format!("-s {} ! -o {bridge}", network.subnet)))
                .into_iter()
                .chain(words("-j MASQUERADE"))
                .collect(),
        ),
        (
            "filter",
            "FORWARD",
            comment(words(&format!("-i {bridge}")))
                .into_iter()
                .chain(words("-j ACCEPT"))
                .collect(),
        ),
        (
            "filter",
            "FORWARD",
            comment(words(&format!(
                "-o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED,DNAT"
            )))
            .into_iter()
            .chain(words("-j ACCEPT"))
            .collect(),
        ),
    ]
}

fn tag(install_id: &str, network: &Network) -> String {
    format!(
        "berth {} network {}",
        &install_id[..12.min(install_id.len())],
        network.name
    )
}

/// Makes `network`'s rules unless the marker says they are in place.
pub(crate) fn ensure(network: &Network, install_id: &str, markers: &Path) -> Result<()> {
    let marker = markers.join(&network.name);
    if marker.exists() {
        return Ok(());
    }
    let tag = tag(install_id, network);
    for (table, chain, rule) in rules(network, &tag) {
        let exists = apply(table, "-C", chain, &rule).is_ok();
        if !exists {
            let verb = if chain == "FORWARD" { "-I" } else { "-A" };
            apply(table, verb, chain, &rule)?;
        }
    }
    berth_core::store::atomic_write(&marker, b"", 0o644)
}

/// Removes `network`'s rules and marker (rules already gone are fine).
pub(crate) fn remove(network: &Network, install_id: &str, markers: &Path) -> Result<()> {
    let tag = tag(install_id, network);
    for (table, chain, rule) in rules(network, &tag) {
        while apply(table, "-C", chain, &rule).is_ok() {
            apply(table, "-D", chain, &rule)?;
        }
    }
    match std::fs::remove_file(markers.join(&network.name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("removing the rules marker of network {}", network.name),
            e,
        )),
        _ => Ok(()),
    }
}

/// `iptables -t TABLE VERB CHAIN RULE...`.
fn apply(table: &str, verb: &str, chain: &str, rule: &[String]) -> Result<()> {
    let mut args = vec!["-t", table, verb, chain];
    args.extend(rule.iter().map(String::as_str));
    crate::iptables(&args)
}
