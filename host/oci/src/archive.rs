//! Random access to the files of an image archive, whatever its packaging.
//!
//! `docker save` output and OCI layouts arrive as a directory, a tar, or a gzipped tar; the
//! manifest is often the last member. Indexing the tar once (offset and size of every member)
//! lets the importer read members in any order straight from the file, without unpacking the
//! whole archive first. A gzipped tar is decompressed once into a temporary file and indexed
//! like a plain one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use berth_core::{Error, IoContext, Result};

/// The member files of an archive, by normalised path.
pub struct Source {
    origin: PathBuf,
    kind: Kind,
}

enum Kind {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        members: HashMap<String, Member>,
        /// Deleted on drop: the decompressed copy of a gzipped archive.
        _scratch: Option<Scratch>,
    },
}

#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// A file removed when dropped: the decompressed copy of a gzipped archive, or a tar an
/// importer writes for the while it needs it.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Source {
    /// Opens `path` (a directory, a tar or a gzipped tar); `scratch_dir` holds temporary files.
    pub fn open(path: &Path, scratch_dir: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::not_found(berth_core::Object::ImageArchive, path.display().to_string())
            } else {
                Error::io(format!("reading {}", path.display()), e)
            }
        })?;
        if meta.is_dir() {
            return Ok(Source {
                origin: path.to_path_buf(),
                kind: Kind::Dir(path.to_path_buf()),
            });
        }
        let mut file = File::open(path).context(|| format!("opening {}", path.display()))?;
        let mut magic = [0u8; 2];
        let n = file
            .read(&mut magic)
            .context(|| format!("reading {}", path.display()))?;
        let (tar_path, scratch) = if n == 2 && magic == [0x1f, 0x8b] {
            let scratch = Scratch(scratch_dir.join(format!("archive-{}.tar", std::process::id())));
            file.seek(SeekFrom::Start(0))
                .context(|| format!("reading {}", path.display()))?;
            let mut out =
                File::create(&scratch.0).context(|| format!("creating {}", scratch.0.display()))?;
            io::copy(
                &mut flate2::read::MultiGzDecoder::new(BufReader::new(file)),
                &mut out,
            )
            .map_err(|e| corrupt(path, format!("the gzip stream is damaged: {e}")))?;
            (scratch.0.clone(), Some(scratch))
        } else {
            (path.to_path_buf(), None)
        };
        let members = index(&tar_path).map_err(|e| {
            corrupt(
                path,
                format!("not a readable tar archive (truncated?): {e}"),
            )
        })?;
        Ok(Source {
            origin: path.to_path_buf(),
            kind: Kind::Tar {
                file: tar_path,
                members,
                _scratch: scratch,
            },
        })
    }

    /// The path it was opened from, which errors name.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Whether the archive holds member `name`.
    pub fn exists(&self, name: &str) -> bool {
        match &self.kind {
            Kind::Dir(dir) => normalise(name).is_some_and(|n| dir.join(n).is_file()),
            Kind::Tar { members, .. } => normalise(name).is_some_and(|n| members.contains_key(&n)),
        }
    }

    /// A reader over member `name`; a missing member is a corrupt archive.
    pub fn read(&self, name: &str) -> Result<Box<dyn Read>> {
        let clean = normalise(name)
            .ok_or_else(|| corrupt(&self.origin, format!("member {name:?} escapes the archive")))?;
        match &self.kind {
            Kind::Dir(dir) => {
                let path = dir.join(&clean);
                match File::open(&path) {
                    Ok(f) => Ok(Box::new(BufReader::new(f))),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        Err(corrupt(&self.origin, format!("{clean} is missing")))
                    }
                    Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
                }
            }
            Kind::Tar { file, members, .. } => {
                let mut key = clean;
                // docker save links duplicate layers to the first copy; follow a few hops.
                for _ in 0..8 {
                    match members.get(&key) {
                        Some(Member::File { offset, size }) => {
                            let mut f = File::open(file)
                                .context(|| format!("opening {}", file.display()))?;
                            f.seek(SeekFrom::Start(*offset))
                                .context(|| format!("reading {}", file.display()))?;
                            return Ok(Box::new(BufReader::new(f).take(*size)));
                        }
                        Some(Member::Link(target)) => key = target.clone(),
                        None => break,
                    }
                }
                Err(corrupt(&self.origin, format!("{key} is missing")))
            }
        }
    }

    /// The size of member `name`, when it is there.
    pub fn size(&self, name: &str) -> Option<u64> {
        let mut key = normalise(name)?;
        match &self.kind {
            Kind::Dir(dir) => dir.join(&key).metadata().ok().map(|m| m.len()),
            Kind::Tar { members, .. } => {
                for _ in 0..8 {
                    match members.get(&key)? {
                        Member::File { size, .. } => return Some(*size),
                        Member::Link(target) => key = target.clone(),
                    }
                }
                None
            }
        }
    }

    /// Reads a small member (a manifest or config) whole.
    pub fn read_all(&self, name: &str) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        self.read(name)?
            .take(64 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(&self.origin, format!("reading {name}: {e}")))?;
        Ok(bytes)
    }
}

/// A damaged or inconsistent archive.
pub fn corrupt(archive: &Path, message: impl Into<String>) -> Error {
    Error::Corrupt {
        what: "image archive".into(),
        path: archive.to_path_buf(),
        message: message.into(),
        hint: "re-create the archive (e.g. `docker save IMAGE -o FILE`) and import it again".into(),
    }
}

/// Turns an archive or layer path into a safe relative one, or `None` if it climbs out (`..`).
pub fn sanitize(path: &Path) -> Option<PathBuf> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(clean)
}

fn normalise(name: &str) -> Option<String> {
    let clean = sanitize(Path::new(name))?;
    let text = clean.to_str()?.to_string();
    (!text.is_empty()).then_some(text)
}

fn index(tar_path: &Path) -> io::Result<HashMap<String, Member>> {
    let file = File::open(tar_path)?;
    let len = file.metadata()?.len();
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    for entry in archive.entries_with_seek()? {
        let entry = entry?;
        let Some(name) = normalise(&entry.path()?.to_string_lossy()) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(link) = entry.link_name()? else {
                continue;
            };
            // Symlinks are relative to their directory, hard links to the archive root.
            let target = if kind.is_symlink() {
                Path::new(&name)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(link)
            } else {
                link.into_owned()
            };
            if let Some(target) = normalise_lexically(&target) {
                members.insert(name, Member::Link(target));
            }
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let (offset, size) = (entry.raw_file_position(), entry.size());
            if offset + size > len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{name} is cut short"),
                ));
            }
            members.insert(name, Member::File { offset, size });
        }
    }
    Ok(members)
}

/// Resolves `..` lexically (inside the archive), refusing to climb above its root.
fn normalise_lexically(path: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_stay_inside_the_archive() {
        assert_eq!(sanitize(Path::new("/./a/b")).unwrap(), PathBuf::from("a/b"));
        assert_eq!(sanitize(Path::new("a/../b")), None);
        assert_eq!(
            normalise("./manifest.json").as_deref(),
            Some("manifest.json")
        );
        assert_eq!(normalise("."), None);
    }

    #[test]
    fn a_gzipped_tar_is_read_like_a_plain_one_and_links_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "a/layer.tar", &b"first"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "b/layer.tar", "../a/layer.tar")
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let archive = dir.path().join("image.tar.gz");
        std::fs::write(&archive, gz.finish().unwrap()).unwrap();

        let source = Source::open(&archive, dir.path()).unwrap();
        assert!(source.exists("./a/layer.tar"));
        assert_eq!(source.read_all("b/layer.tar").unwrap(), b"first");
        let missing = source.read_all("c").unwrap_err();
        assert_eq!(missing.kind(), berth_core::ErrorKind::Corrupt, "{missing}");
        assert!(source.read("../x").is_err());
        // The decompressed copy goes with the source.
        drop(source);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn links_resolve_inside_the_archive() {
        assert_eq!(
            normalise_lexically(Path::new("a/../b/layer.tar")).as_deref(),
            Some("b/layer.tar")
        );
        assert_eq!(normalise_lexically(Path::new("../x")), None);
    }
}
