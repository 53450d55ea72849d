//! Content addresses: sha256 digests of blobs and the chain ids that name unpacked layer stacks
//! (containerd's snapshots, native's layer snapshots). berth reads and writes sha256 only.

use sha2::{Digest, Sha256};

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// The lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `sha256:0123456789ab…` (or bare hex) -> `0123456789ab`, as docker shows layers.
pub fn short(digest: &str) -> String {
    let hex = digest.split_once(':').map_or(digest, |(_, hex)| hex);
    hex.chars().take(12).collect()
}

/// The hex of a well-formed `sha256:<64 lowercase hex digits>`, else `None`.
pub fn sha256_hex_of(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|hex| is_sha256_hex(hex))
}

/// Whether `hex` is 64 lowercase hex digits, as a sha256 is written in digests.
pub fn is_sha256_hex(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `chain(n) = sha256(chain(n-1) + " " + diff(n))` over `sha256:` diff ids, base first, as the
/// OCI image spec defines it; `None` for an image without layers.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    let mut ids = diff_ids.iter();
    let mut chain = ids.next()?.clone();
    for diff in ids {
        chain = sha256_digest(format!("{chain} {diff}").as_bytes());
    }
    Some(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_digest_is_docker_s_twelve_digits() {
        assert_eq!(short("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "sha256:aaaa".to_string();
        let b = "sha256:bbbb".to_string();
        let c = "sha256:cccc".to_string();
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(std::slice::from_ref(&a)).unwrap(), a);
        let ab = sha256_digest(b"sha256:aaaa sha256:bbbb");
        assert_eq!(chain_id(&[a.clone(), b.clone()]).unwrap(), ab);
        // Each step hashes the previous chain id, not the previous diff id.
        let abc = sha256_digest(format!("{ab} sha256:cccc").as_bytes());
        assert_eq!(chain_id(&[a, b, c]).unwrap(), abc);
        // The empty layer's well-known digest, as a check on the hashing itself.
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn only_well_formed_sha256_digests_have_a_hex() {
        let hex = "a".repeat(64);
        assert_eq!(sha256_hex_of(&format!("sha256:{hex}")), Some(hex.as_str()));
        for bad in [
            hex.clone(),
            format!("sha512:{hex}"),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            "sha256:../../etc".into(),
        ] {
            assert_eq!(sha256_hex_of(&bad), None, "{bad}");
        }
    }
}
