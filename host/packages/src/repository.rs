//! Fetching a package archive from a repository: a directory, or an HTTP(S) server with the
//! same layout (`<name>/<id>.ipk`, else `<id>.ipk`).
//!
//! A download goes to a temporary file in 1 MiB chunks, as sysinner's hostlet does. When the
//! server publishes `<id>.ipk.crc32` (one CRC32-IEEE per chunk, 8 hex digits per line, as
//! [`chunk_sums`] writes it), every chunk is checked as it arrives, so a damaged transfer stops
//! at the first bad chunk. The data block's sha256 is verified afterwards either way.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_core::config::PackageRepository;
use berth_core::{Error, IoContext, Result};

/// Bytes per checked chunk.
pub const CHUNK: usize = 1 << 20;

/// The `.crc32` sidecar for `archive`: one line per 1 MiB chunk.
pub fn chunk_sums(archive: &[u8]) -> String {
    archive
        .chunks(CHUNK)
        .map(|chunk| format!("{:08x}\n", crc32fast::hash(chunk)))
        .collect()
}

/// Puts the archive `id` of package `name` from `repository` at `dest` (written to a
/// temporary file, synced, renamed). `Ok(false)`: the repository does not have it.
pub fn fetch(repository: &PackageRepository, name: &str, id: &str, dest: &Path) -> Result<bool> {
    let file = format!("{id}.ipk");
    let tmp = dest.with_extension("ipk.tmp");
    if let Some(parent) = dest.parent() {
        berth_core::store::create_dir_all(parent)?;
    }
    let fetched = match repository {
        PackageRepository::Dir(dir) => {
            let Some(source) = [dir.join(name).join(&file), dir.join(&file)]
                .into_iter()
                .find(|p| p.is_file())
            else {
                return Ok(false);
            };
            std::fs::copy(&source, &tmp)
                .map(|_| true)
                .context(|| format!("copying {}", source.display()))
        }
        PackageRepository::Http(base) => download_first(
            &[format!("{base}/{name}/{file}"), format!("{base}/{file}")],
            &tmp,
        ),
    };
    let fetched = fetched.and_then(|found| {
        if found {
            sync_and_rename(&tmp, dest)?;
        }
        Ok(found)
    });
    if !matches!(fetched, Ok(true)) {
        let _ = std::fs::remove_file(&tmp);
    }
    fetched
}

fn sync_and_rename(tmp: &Path, dest: &Path) -> Result<()> {
    std::fs::File::open(tmp)
        .and_then(|f| f.sync_all())
        .context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(tmp, dest).context(|| format!("renaming into {}", dest.display()))
}

/// Downloads the first of `urls` the server has into `tmp`; `Ok(false)` when none is there.
fn download_first(urls: &[String], tmp: &Path) -> Result<bool> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_recv_body(Some(Duration::from_secs(60)))
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::PlatformVerifier)
                .build(),
        )
        .build()
        .into();
    for url in urls {
        let Some(body) = get(&agent, url)? else {
            continue;
        };
        let sums = match get(&agent, &format!("{url}.crc32"))? {
            Some(mut sums) => Some(parse_sums(url, &read_text(url, &mut sums)?)?),
            None => None,
        };
        save_chunks(url, body, sums.as_deref(), tmp)?;
        return Ok(true);
    }
    Ok(false)
}

/// `GET url`: the body, or `None` on 404.
fn get(agent: &ureq::Agent, url: &str) -> Result<Option<ureq::Body>> {
    let response = agent.get(url).call().map_err(|e| Error::Unavailable {
        service: "package repository".into(),
        endpoint: url.to_string(),
        reason: e.to_string(),
        hint: "is the repository server up? check [packages].repository".into(),
    })?;
    match response.status().as_u16() {
        200 => Ok(Some(response.into_body())),
        404 => Ok(None),
        status => Err(Error::Unavailable {
            service: "package repository".into(),
            endpoint: url.to_string(),
            reason: format!("HTTP {status}"),
            hint: "check [packages].repository and the server's log".into(),
        }),
    }
}

fn read_text(url: &str, body: &mut ureq::Body) -> Result<String> {
    body.read_to_string()
        .map_err(|e| transfer_error(&format!("{url}.crc32"), e.into_io()))
}

fn transfer_error(url: &str, e: std::io::Error) -> Error {
    Error::io(format!("downloading {url}"), e)
}

fn corrupt(url: &str, message: String) -> Error {
    Error::Corrupt {
        what: "package download".into(),
        path: PathBuf::from(url),
        message,
        hint: "retry; if it persists, the repository's copy or its .crc32 is damaged".into(),
    }
}

fn parse_sums(url: &str, text: &str) -> Result<Vec<u32>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            u32::from_str_radix(line.trim(), 16).map_err(|_| {
                corrupt(
                    &format!("{url}.crc32"),
                    format!("line {} is not a hex CRC32: {line:?}", i + 1),
                )
            })
        })
        .collect()
}

/// Streams `body` into `tmp` one chunk at a time, checking each against `sums` when given.
fn save_chunks(url: &str, body: ureq::Body, sums: Option<&[u32]>, tmp: &Path) -> Result<()> {
    let mut reader = body.into_with_config().limit(u64::MAX).reader();
    let mut out = std::fs::File::create(tmp).context(|| format!("creating {}", tmp.display()))?;
    let mut chunk = vec![0u8; CHUNK];
    let mut index = 0;
    loop {
        let filled = fill(&mut reader, &mut chunk).map_err(|e| transfer_error(url, e))?;
        if filled == 0 {
            break;
        }
        if let Some(sums) = sums {
            let actual = crc32fast::hash(&chunk[..filled]);
            match sums.get(index) {
                Some(&expected) if expected == actual => {}
                Some(expected) => {
                    return Err(corrupt(
                        url,
                        format!(
                            "chunk {index} has CRC32 {actual:08x}, the repository says \
                             {expected:08x}"
                        ),
                    ));
                }
                None => {
                    return Err(corrupt(
                        url,
                        format!("more data than the {} chunks in its .crc32", sums.len()),
                    ));
                }
            }
        }
        out.write_all(&chunk[..filled])
            .context(|| format!("writing {}", tmp.display()))?;
        index += 1;
    }
    if let Some(sums) = sums
        && sums.len() != index
    {
        return Err(corrupt(
            url,
            format!("{index} chunks arrived, its .crc32 lists {}", sums.len()),
        ));
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends; the number of bytes read.
fn fill(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cover_every_chunk_and_parse_back() {
        let data: Vec<u8> = (0..CHUNK * 2 + 5).map(|i| (i % 251) as u8).collect();
        let text = chunk_sums(&data);
        assert_eq!(text.lines().count(), 3);
        let sums = parse_sums("u", &text).unwrap();
        assert_eq!(sums[2], crc32fast::hash(&data[CHUNK * 2..]));
        let e = parse_sums("u", "0000000g\n").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
