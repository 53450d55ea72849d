//! Media types and layer compression. OCI's types are `oci-spec`'s [`MediaType`]; Docker's
//! schema-2 types, which registries and `docker save` still produce, are constants here and
//! arrive as `MediaType::Other`.
//!
//! A layer is a tar, gzipped or not; berth unpacks those itself. zstd is recognised (by media
//! type or magic bytes) so that it can be refused by name where berth has to decompress, rather
//! than failing as a damaged tar.

use std::io::Read;

use berth_core::{Error, Result};
use oci_spec::image::MediaType;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_FOREIGN_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The manifest and index types a registry is asked for, most wanted first.
pub fn manifest_accept() -> String {
    [
        MediaType::ImageIndex.as_ref(),
        DOCKER_MANIFEST_LIST,
        MediaType::ImageManifest.as_ref(),
        DOCKER_MANIFEST,
    ]
    .join(", ")
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Uncompressed,
    Gzip,
    /// Recognised so it is refused by name; berth does not decompress it.
    Zstd,
}

impl Compression {
    /// What a layer's media type says; `None` for a type that is not a tar layer.
    pub fn of_media_type(media_type: &MediaType) -> Option<Compression> {
        match media_type {
            MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => {
                Some(Compression::Uncompressed)
            }
            MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
                Some(Compression::Gzip)
            }
            MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
                Some(Compression::Zstd)
            }
            MediaType::Other(other) => match other.as_str() {
                DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP => Some(Compression::Gzip),
                DOCKER_LAYER_TAR => Some(Compression::Uncompressed),
                _ => None,
            },
            _ => None,
        }
    }

    /// The compression a blob's first bytes show (docker archives do not say); anything
    /// without a known magic number is taken for a plain tar, which unpacking then checks.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::Uncompressed
        }
    }

    /// The OCI layer media type for this compression.
    pub fn layer_media_type(self) -> MediaType {
        match self {
            Compression::Uncompressed => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        }
    }

    /// A reader of the uncompressed tar; zstd is refused, naming `layer`.
    pub fn decoder<'a>(self, blob: impl Read + 'a, layer: &str) -> Result<Box<dyn Read + 'a>> {
        match self {
            Compression::Uncompressed => Ok(Box::new(blob)),
            Compression::Gzip => Ok(Box::new(flate2::read::MultiGzDecoder::new(blob))),
            Compression::Zstd => Err(zstd_unsupported(layer)),
        }
    }
}

/// The compression of a layer whose descriptor says `media_type`; an unknown type is refused.
pub fn layer_compression(media_type: &MediaType, layer: &str) -> Result<Compression> {
    Compression::of_media_type(media_type).ok_or_else(|| {
        Error::invalid(
            layer,
            format!("unsupported media type {:?}", media_type.to_string()),
        )
        .with_hint("berth imports tar layers, plain or gzipped")
    })
}

/// berth unpacks plain and gzipped tars only.
fn zstd_unsupported(layer: &str) -> Error {
    Error::invalid(layer, "zstd-compressed layers are not supported")
        .with_hint("re-export the image with gzip or uncompressed layers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_compression() {
        for (media_type, expected) in [
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar",
                Some(Compression::Uncompressed),
            ),
            (
                "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                Some(Compression::Gzip),
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Some(Compression::Zstd),
            ),
            (DOCKER_LAYER_GZIP, Some(Compression::Gzip)),
            (DOCKER_FOREIGN_LAYER_GZIP, Some(Compression::Gzip)),
            ("text/plain", None),
            ("application/vnd.oci.image.config.v1+json", None),
        ] {
            let media_type = MediaType::from(media_type);
            assert_eq!(
                Compression::of_media_type(&media_type),
                expected,
                "{media_type}"
            );
        }
        let refused = layer_compression(&MediaType::from("text/plain"), "layer x").unwrap_err();
        assert!(refused.to_string().contains("text/plain"), "{refused}");
    }

    #[test]
    fn compression_is_sniffed_from_magic_bytes() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"a tar, say").unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(Compression::sniff(&gz), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"etc/\0\0\0"), Compression::Uncompressed);
        assert_eq!(Compression::sniff(&[0x1f]), Compression::Uncompressed);
        assert_eq!(Compression::sniff(&[]), Compression::Uncompressed);

        let mut text = String::new();
        Compression::Gzip
            .decoder(&gz[..], "layer")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "a tar, say");
        let zstd = Compression::Zstd.decoder(&b""[..], "layer 3 of x.tar");
        let message = zstd.err().unwrap().to_string();
        assert!(
            message.contains("zstd") && message.contains("layer 3 of x.tar"),
            "{message}"
        );
    }
}
