//! What a spec needs of a backend, by the feature names backends declare in `backend-info`:
//! a selector that picks "the first healthy backend" should pick one that can run the spec.

/// The features a spec with these networking fields needs.
pub fn needed(
    networks: &[String],
    ports: usize,
    static_address: bool,
    dns: bool,
) -> Vec<&'static str> {
    let mut needed = Vec::new();
    if networks.iter().any(|n| n != "none" && n != "host") {
        needed.push("networks");
    }
    if ports > 0 {
        needed.push("publish-ports");
    }
    if static_address {
        needed.push("static-address");
    }
    if dns {
        needed.push("dns");
    }
    needed
}

/// Candidates in their order, those with every `needed` feature first: the rules' fallback
/// takes the first healthy one, which is then one that can run the spec if any can.
pub fn capable_first<'a>(
    candidates: &[(&'a str, bool, Vec<String>)],
    needed: &[&str],
) -> Vec<(&'a str, bool)> {
    let capable = |features: &[String]| needed.iter().all(|n| features.iter().any(|f| f == n));
    let (mut first, rest): (Vec<_>, Vec<_>) = candidates
        .iter()
        .partition(|(_, _, features)| capable(features));
    first.extend(rest);
    first
        .into_iter()
        .map(|(name, ok, _)| (*name, *ok))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networking_fields_need_their_features() {
        let named = vec!["backend".to_string()];
        assert_eq!(
            needed(&named, 1, true, true),
            ["networks", "publish-ports", "static-address", "dns"]
        );
        assert!(needed(&["none".into()], 0, false, false).is_empty());
        assert!(needed(&["host".into()], 0, false, false).is_empty());
    }

    #[test]
    fn capable_candidates_come_first_in_their_order() {
        let features = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let candidates = [
            ("apple", true, features(&["exec"])),
            ("native", true, features(&["networks", "publish-ports"])),
            ("docker", true, features(&["publish-ports"])),
        ];
        assert_eq!(
            capable_first(&candidates, &["publish-ports"]),
            [("native", true), ("docker", true), ("apple", true)]
        );
        assert_eq!(
            capable_first(&candidates, &[]),
            [("apple", true), ("native", true), ("docker", true)]
        );
    }
}
