//! The .ipk format: `IPK1`, a u32 little-endian header length, the header as JSON, then the
//! data block: a tar archive compressed with xz, gzip or nothing.

use std::io::{Read, Write};
use std::path::Path;

use berth_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 4] = b"IPK1";

/// Headers longer than this are not package headers.
const MAX_HEADER: u32 = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Xz,
    Gzip,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub version: String,
    pub os: String,
    pub arch: String,
    pub compression: Compression,
    /// sha256 (hex) of the data block as stored (compressed).
    pub sha256: String,
    /// Bytes of the data block.
    pub size: u64,
}

impl Header {
    /// `{name}_{version}_{os}_{arch}`, lower-cased.
    pub fn id(&self) -> String {
        package_id(&self.name, &self.version, &self.os, &self.arch)
    }
}

pub fn package_id(name: &str, version: &str, os: &str, arch: &str) -> String {
    format!("{name}_{version}_{os}_{arch}").to_lowercase()
}

/// Semantic versioning 2.0: `MAJOR.MINOR.PATCH[-pre][+build]`, no leading zeros, no `v`.
pub fn is_semver(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numeric = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
    };
    let ident =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| numeric(p))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|id| ident(id) && (!id.bytes().all(|b| b.is_ascii_digit()) || numeric(id)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

fn corrupt(path: &Path, message: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "package".into(),
        path: path.to_owned(),
        message: message.into(),
        hint: "rebuild it with `berth pkg build`, or fetch it again".into(),
    }
}

/// The whole package file for `header` (its sha256 and size filled in) and `data`.
pub fn encode(mut header: Header, data: &[u8]) -> Vec<u8> {
    header.sha256 = hex::encode(Sha256::digest(data));
    header.size = data.len() as u64;
    let json = serde_json::to_vec(&header).expect("headers serialise");
    let mut out = Vec::with_capacity(8 + json.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(data);
    out
}

/// Parses a package and verifies its data block against the header's sha256 (which upstream
/// never checked); returns the header and the data block.
pub fn decode<'a>(path: &Path, bytes: &'a [u8]) -> Result<(Header, &'a [u8])> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(corrupt(path, "not an .ipk file (no IPK1 magic)"));
    }
    let length = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if length > MAX_HEADER || 8 + length as usize > bytes.len() {
        return Err(corrupt(
            path,
            format!("header length {length} does not fit the file"),
        ));
    }
    let end = 8 + length as usize;
    let header: Header = serde_json::from_slice(&bytes[8..end])
        .map_err(|e| corrupt(path, format!("unreadable header: {e}")))?;
    let data = &bytes[end..];
    let actual = hex::encode(Sha256::digest(data));
    if actual != header.sha256 || data.len() as u64 != header.size {
        return Err(corrupt(
            path,
            format!(
                "data block sha256 {actual} ({} bytes) does not match the header's {} ({} bytes)",
                data.len(),
                header.sha256,
                header.size
            ),
        ));
    }
    Ok((header, data))
}

pub fn compress(tar: &[u8], compression: Compression) -> Result<Vec<u8>> {
    let io = |e| Error::io("compressing a package", e);
    Ok(match compression {
        Compression::None => tar.to_vec(),
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(tar).map_err(io)?;
            gz.finish().map_err(io)?
        }
        Compression::Xz => {
            // xz's default preset, as `tar -cJf` uses.
            let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
            xz.write_all(tar).map_err(io)?;
            xz.finish().map_err(io)?
        }
    })
}

pub fn decompress(path: &Path, data: &[u8], compression: Compression) -> Result<Vec<u8>> {
    let bad = |e: String| corrupt(path, format!("cannot decompress the data block: {e}"));
    Ok(match compression {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| bad(e.to_string()))?;
            out
        }
        Compression::Xz => {
            let mut out = Vec::new();
            liblzma::read::XzDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| bad(e.to_string()))?;
            out
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_as_the_spec_says() {
        for ok in [
            "1.0.0",
            "0.0.0",
            "0.1.0",
            "100.200.300",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-beta.1+build.123",
            "1.0.0+build.42",
            "1.0.0-alpha-beta",
        ] {
            assert!(is_semver(ok), "{ok}");
        }
        for bad in [
            "",
            "1.0",
            "1",
            "latest",
            "v1.0.0",
            "01.0.0",
            "1.01.0",
            "1.0.01",
            "1.0.0.0",
            " 1.0.0",
            "not-a-version",
        ] {
            assert!(!is_semver(bad), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_lower_case() {
        assert_eq!(
            package_id("Tool", "1.0.0-RC.1", "Linux", "X86_64"),
            "tool_1.0.0-rc.1_linux_x86_64"
        );
    }

    #[test]
    fn round_trips_in_every_compression_and_refuses_tampering() {
        let path = Path::new("t.ipk");
        for compression in [Compression::Xz, Compression::Gzip, Compression::None] {
            let data = compress(b"tar bytes", compression).unwrap();
            let header = Header {
                name: "t".into(),
                version: "1.0.0".into(),
                os: "linux".into(),
                arch: "x86_64".into(),
                compression,
                sha256: String::new(),
                size: 0,
            };
            let mut file = encode(header, &data);
            let (read, block) = decode(path, &file).unwrap();
            assert_eq!(
                decompress(path, block, read.compression).unwrap(),
                b"tar bytes"
            );
            let last = file.len() - 1;
            file[last] ^= 1;
            let e = decode(path, &file).unwrap_err();
            assert_eq!(e.kind(), berth_core::ErrorKind::Corrupt, "{e}");
        }
        assert!(decode(path, b"ZIP!....").is_err());
        assert!(decode(path, b"IPK1\xff\xff\xff\x00{}").is_err());
    }
}
