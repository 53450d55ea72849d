//! Which manifest of a multi-platform image this machine runs: `linux/<arch>` with the
//! architecture's variant where it has one (arm64 is `v8`, arm `v7` unless said otherwise), as
//! containerd's platform matcher normalises them. An arm machine also runs older arm variants;
//! every other mismatch is refused rather than run into an `exec format error`.

use berth_core::{Error, Result};
use oci_spec::image::{Arch, Descriptor, Os, Platform, PlatformBuilder};

/// This machine as an image platform.
pub fn host() -> Platform {
    let arch = berth_core::go_arch();
    let mut platform = PlatformBuilder::default()
        .os(Os::Linux)
        .architecture(Arch::from(arch));
    if let Some(variant) = default_variant(arch) {
        platform = platform.variant(variant);
    }
    platform.build().expect("os and architecture are set")
}

/// The variant an architecture means when none is written.
fn default_variant(arch: &str) -> Option<&'static str> {
    match arch {
        "arm64" => Some("v8"),
        "arm" => Some("v7"),
        _ => None,
    }
}

/// `v7` -> 7.
fn variant_number(variant: &str) -> Option<u32> {
    variant.strip_prefix('v')?.parse().ok()
}

/// How well `candidate` suits `wanted` (0 is an exact match, larger is worse); `None` when it
/// cannot run there.
fn rank(wanted: &Platform, candidate: &Platform) -> Option<u32> {
    if candidate.os() != wanted.os() || candidate.architecture() != wanted.architecture() {
        return None;
    }
    let arch = wanted.architecture().to_string();
    let normal = |variant: &Option<String>| match variant.as_deref() {
        // amd64's baseline is written both ways.
        None | Some("v1") if arch == "amd64" => None,
        None => default_variant(&arch).map(String::from),
        Some(v) => Some(v.to_string()),
    };
    let (want, have) = (normal(wanted.variant()), normal(candidate.variant()));
    if want == have {
        return Some(0);
    }
    // An armv7 machine runs armv6 and armv5 binaries.
    if arch == "arm"
        && let (Some(want), Some(have)) = (
            want.as_deref().and_then(variant_number),
            have.as_deref().and_then(variant_number),
        )
        && have < want
    {
        return Some(want - have);
    }
    None
}

/// The entry of an index's `manifests` this machine runs: the best platform match, else one
/// that names no platform (a single-image layout often does not). `image` names the image in
/// the error.
pub fn select<'a>(manifests: &'a [Descriptor], image: &str) -> Result<&'a Descriptor> {
    select_for(&host(), manifests, image)
}

fn select_for<'a>(
    wanted: &Platform,
    manifests: &'a [Descriptor],
    image: &str,
) -> Result<&'a Descriptor> {
    let best = manifests
        .iter()
        .filter_map(|d| match d.platform() {
            Some(p) => rank(wanted, p).map(|r| (r, d)),
            None => Some((u32::MAX, d)),
        })
        .min_by_key(|(r, _)| *r);
    if let Some((_, descriptor)) = best {
        return Ok(descriptor);
    }
    let offered: Vec<String> = manifests
        .iter()
        .filter_map(|d| d.platform().as_ref().map(display))
        .collect();
    Err(Error::NotFound {
        kind: berth_core::Object::ImagePlatform,
        name: format!("{} in {image}", display(wanted)),
        hint: if offered.is_empty() {
            "its index lists no manifest at all".into()
        } else {
            format!(
                "the image is built for {} only, not for this machine",
                offered.join(", ")
            )
        },
    })
}

/// `linux/arm64/v8`.
fn display(platform: &Platform) -> String {
    let mut text = format!("{}/{}", platform.os(), platform.architecture());
    if let Some(variant) = platform.variant() {
        text.push('/');
        text.push_str(variant);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    fn platform(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        let mut p = PlatformBuilder::default()
            .os(Os::from(os))
            .architecture(Arch::from(arch));
        if let Some(v) = variant {
            p = p.variant(v);
        }
        p.build().unwrap()
    }

    /// An index entry per platform (`None`: no platform field), digests 1, 2, 3… in order.
    fn index(platforms: &[Option<Platform>]) -> Vec<Descriptor> {
        platforms
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let digest = format!("sha256:{}", format!("{}", i + 1).repeat(64));
                let mut d = Descriptor::new(
                    MediaType::ImageManifest,
                    1,
                    oci_spec::image::Digest::try_from(digest).unwrap(),
                );
                d.set_platform(p.clone());
                d
            })
            .collect()
    }

    fn chosen(wanted: &Platform, manifests: &[Descriptor]) -> Option<usize> {
        let d = select_for(wanted, manifests, "x").ok()?;
        manifests.iter().position(|m| std::ptr::eq(m, d))
    }

    #[test]
    fn this_machines_platform_is_chosen() {
        let amd64 = platform("linux", "amd64", None);
        let list = index(&[
            Some(platform("linux", "s390x", None)),
            Some(platform("windows", "amd64", None)),
            Some(platform("linux", "amd64", None)),
        ]);
        assert_eq!(chosen(&amd64, &list), Some(2));
        // `v1` is amd64's baseline; `v3` needs a newer CPU than berth can assume.
        let list = index(&[
            Some(platform("linux", "amd64", Some("v3"))),
            Some(platform("linux", "amd64", Some("v1"))),
        ]);
        assert_eq!(chosen(&amd64, &list), Some(1));
        assert_eq!(chosen(&amd64, &list[..1]), None);

        // arm64 without a variant is v8; arm runs older variants when its own is missing.
        let arm64 = platform("linux", "arm64", Some("v8"));
        let list = index(&[
            Some(platform("linux", "arm", Some("v7"))),
            Some(platform("linux", "arm64", None)),
        ]);
        assert_eq!(chosen(&arm64, &list), Some(1));
        let armv7 = platform("linux", "arm", Some("v7"));
        let list = index(&[
            Some(platform("linux", "arm", Some("v5"))),
            Some(platform("linux", "arm", Some("v6"))),
            Some(platform("linux", "arm", Some("v8"))),
        ]);
        assert_eq!(chosen(&armv7, &list), Some(1));
        assert_eq!(chosen(&armv7, &list[2..]), None);
    }

    #[test]
    fn an_entry_without_a_platform_is_the_fallback() {
        let amd64 = platform("linux", "amd64", None);
        let list = index(&[None, Some(platform("linux", "amd64", None))]);
        assert_eq!(chosen(&amd64, &list), Some(1));
        assert_eq!(chosen(&amd64, &list[..1]), Some(0));

        let foreign = index(&[
            Some(platform("linux", "s390x", None)),
            Some(platform("linux", "ppc64le", None)),
        ]);
        let e = select_for(&amd64, &foreign, "app:1").unwrap_err();
        assert_eq!(e.kind(), berth_core::ErrorKind::NotFound);
        let message = e.to_string();
        assert!(
            message.contains("linux/amd64 in app:1")
                && message.contains("linux/s390x, linux/ppc64le"),
            "{message}"
        );
        assert!(select_for(&amd64, &[], "app:1").is_err());
    }

    #[test]
    fn the_host_platform_is_linux_on_this_architecture() {
        let host = host();
        assert_eq!(host.os(), &Os::Linux);
        assert_eq!(host.architecture().to_string(), berth_core::go_arch());
    }
}
