//! Read-only software packages for containers, from sysinner's hostlet (.ipk): build one from
//! a directory, verify it (the data block's sha256, which upstream skipped), install it
//! idempotently and atomically with a confined extraction, and find it again for a mount.
//!
//! Layout, as upstream: archives at `<state>/var/ipk/<name>/<id>.ipk`, installs at
//! `<state>/var/ipk_install/<name>/<id>/`, where id is `{name}_{version}_{os}_{arch}` lower-cased.

pub mod extract;
pub mod format;
pub mod repository;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_core::config::PackageRepository;
use berth_core::{Error, IoContext, Result, store};
use serde::Serialize;

pub use format::{Compression, Header, is_semver, package_id};

/// The os and arch berth installs for.
pub const OS: &str = std::env::consts::OS;
pub const ARCH: &str = std::env::consts::ARCH;

/// An installed package as `berth pkg ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub id: String,
    pub path: PathBuf,
}

/// `name@version`, checked.
pub fn parse_ref(text: &str) -> Result<(String, String)> {
    let bad = || {
        Error::invalid(format!("package {text:?}"), "expected NAME@VERSION")
            .with_hint("e.g. --pkg tools@1.2.0")
    };
    let (name, version) = text.split_once('@').ok_or_else(bad)?;
    if name.is_empty() || !is_semver(version) {
        return Err(bad());
    }
    Ok((name.to_string(), version.to_string()))
}

/// Packs `dir` into an .ipk for this os/arch.
pub fn build(
    dir: &Path,
    name: &str,
    version: &str,
    compression: Compression,
) -> Result<(Header, Vec<u8>)> {
    if !is_semver(version) {
        return Err(
            Error::invalid(format!("version {version:?}"), "not a semantic version")
                .with_hint("use MAJOR.MINOR.PATCH, e.g. 1.0.0, 1.0.0-alpha.1 or 1.0.0+build.42"),
        );
    }
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(Error::invalid(
            format!("package name {name:?}"),
            "use letters, digits, '-', '_' and '.'",
        ));
    }
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    tar.append_dir_all(".", dir)
        .and_then(|()| tar.finish())
        .context(|| format!("packing {}", dir.display()))?;
    let data = format::compress(&tar.into_inner().context(|| "packing".into())?, compression)?;
    let header = Header {
        name: name.into(),
        version: version.into(),
        os: OS.into(),
        arch: ARCH.into(),
        compression,
        sha256: String::new(),
        size: 0,
    };
    let file = format::encode(header, &data);
    let (header, _) = format::decode(Path::new(name), &file)?;
    Ok((header, file))
}

/// Reads and verifies the package at `path`.
pub fn inspect(path: &Path) -> Result<Header> {
    let bytes = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
    Ok(format::decode(path, &bytes)?.0)
}

pub struct Packages {
    state_dir: PathBuf,
}

impl Packages {
    pub fn new(state_dir: &Path) -> Packages {
        Packages {
            state_dir: state_dir.to_owned(),
        }
    }

    fn archive_path(&self, name: &str, id: &str) -> PathBuf {
        self.state_dir
            .join("var/ipk")
            .join(name)
            .join(format!("{id}.ipk"))
    }

    /// Unpack directories of installs that died (`.ID.tmp-PID`, the process gone): such an
    /// install never happened, and its directory goes. One line per directory (with
    /// `dry_run`, that would go).
    pub fn collect_garbage(&self, dry_run: bool) -> Result<Vec<String>> {
        let root = self.state_dir.join("var/ipk_install");
        let mut done = Vec::new();
        for name in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for entry in std::fs::read_dir(name.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let file = entry.file_name().to_string_lossy().into_owned();
                let dead = file
                    .strip_prefix('.')
                    .and_then(|f| f.rsplit_once(".tmp-"))
                    .and_then(|(_, pid)| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if dead {
                    done.push(format!("package unpack {}", entry.path().display()));
                    if !dry_run {
                        let _ = std::fs::remove_dir_all(entry.path());
                    }
                }
            }
        }
        Ok(done)
    }

    fn install_path(&self, name: &str, id: &str) -> PathBuf {
        self.state_dir.join("var/ipk_install").join(name).join(id)
    }

    /// Installs the package file at `path`; an existing install is returned as it is.
    pub fn install_file(&self, path: &Path) -> Result<Installed> {
        let bytes = std::fs::read(path).context(|| format!("reading {}", path.display()))?;
        self.install(path, &bytes, None)
    }

    /// Installs the package `bytes` read from `source` (which must be package `expected_id`
    /// when given), keeping them in the archive cache unless that is where they came from.
    /// Nothing is left behind when it fails.
    fn install(&self, source: &Path, bytes: &[u8], expected_id: Option<&str>) -> Result<Installed> {
        let (header, data) = format::decode(source, bytes)?;
        let id = header.id();
        if let Some(expected) = expected_id.filter(|e| *e != id) {
            return Err(Error::Corrupt {
                what: "package".into(),
                path: source.to_owned(),
                message: format!("its header says {id}, not {expected}"),
                hint: "the repository file is misnamed".into(),
            });
        }
        let dest = self.install_path(&header.name, &id);
        let archive = self.archive_path(&header.name, &id);
        let installed = Installed {
            name: header.name.clone(),
            version: header.version.clone(),
            id: id.clone(),
            path: dest.clone(),
        };
        if dest.is_dir() {
            return Ok(installed);
        }
        if source != archive {
            store::atomic_write(&archive, bytes, 0o644)?;
        }
        // Unpack beside the final place, then rename: an install is whole or absent.
        let unpacked = format::decompress(source, data, header.compression).and_then(|tar| {
            let parent = dest.parent().expect("install paths have a parent");
            store::create_dir_all(parent)?;
            let tmp = parent.join(format!(".{id}.tmp-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir(&tmp).context(|| format!("creating {}", tmp.display()))?;
            let moved = extract::unpack(source, &tar, &tmp).and_then(|()| {
                berth_core::crash::point("packages.install.unpacked");
                std::fs::rename(&tmp, &dest)
                    .context(|| format!("installing into {}", dest.display()))
            });
            if moved.is_err() {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            moved
        });
        match unpacked {
            Ok(()) => Ok(installed),
            // A racing install that won is fine.
            Err(_) if dest.is_dir() => Ok(installed),
            Err(e) => {
                let _ = std::fs::remove_file(&archive);
                Err(e)
            }
        }
    }

    /// Installs `name@version` for this os/arch: already installed, else from the archive cache,
    /// else fetched from `repository` into the cache.
    pub fn ensure(
        &self,
        name: &str,
        version: &str,
        repository: Option<&PackageRepository>,
    ) -> Result<Installed> {
        let id = package_id(name, version, OS, ARCH);
        let dest = self.install_path(name, &id);
        if dest.is_dir() {
            return Ok(Installed {
                name: name.into(),
                version: version.into(),
                id,
                path: dest,
            });
        }
        let archive = self.archive_path(name, &id);
        let cached = archive.is_file()
            || match repository {
                Some(repository) => repository::fetch(repository, name, &id, &archive)?,
                None => false,
            };
        if !cached {
            return Err(Error::not_found(
                berth_core::Object::Package,
                format!("{name}@{version} ({id})"),
            )
            .with_hint(match repository {
                Some(repository) => format!(
                    "{repository} has no {id}.ipk; install it with `berth pkg install FILE`"
                ),
                None => {
                    "install it with `berth pkg install FILE`, or set [packages].repository".into()
                }
            }));
        }
        let installed = std::fs::read(&archive)
            .context(|| format!("reading {}", archive.display()))
            .and_then(|bytes| self.install(&archive, &bytes, Some(&id)));
        if installed.is_err() {
            // A damaged or misnamed archive must not be found again next time.
            let _ = std::fs::remove_file(&archive);
        }
        installed
    }

    /// `ensure` for each distinct `name@version`; name -> install path. The first failure stops.
    pub fn ensure_all(
        &self,
        refs: &[(String, String)],
        repository: Option<&PackageRepository>,
    ) -> Result<BTreeMap<String, PathBuf>> {
        let mut paths = BTreeMap::new();
        let mut seen = std::collections::HashSet::new();
        for (name, version) in refs {
            if seen.insert(format!("{name}:{version}")) {
                paths.insert(name.clone(), self.ensure(name, version, repository)?.path);
            }
        }
        Ok(paths)
    }

    pub fn list(&self) -> Result<Vec<Installed>> {
        let mut found = Vec::new();
        let root = self.state_dir.join("var/ipk_install");
        let Ok(names) = std::fs::read_dir(&root) else {
            return Ok(found);
        };
        for name in names.flatten() {
            for install in std::fs::read_dir(name.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let id = install.file_name().to_string_lossy().into_owned();
                if id.starts_with('.') {
                    continue;
                }
                let archive = self.archive_path(&name.file_name().to_string_lossy(), &id);
                if let Ok(header) = inspect(&archive) {
                    found.push(Installed {
                        name: header.name,
                        version: header.version,
                        id,
                        path: install.path(),
                    });
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// Removes the install and archive of `name@version`.
    pub fn remove(&self, name: &str, version: &str) -> Result<()> {
        let id = package_id(name, version, OS, ARCH);
        let dest = self.install_path(name, &id);
        if !dest.is_dir() {
            return Err(
                Error::not_found(berth_core::Object::Package, format!("{name}@{version}"))
                    .with_hint("see `berth pkg ls`"),
            );
        }
        std::fs::remove_dir_all(&dest).context(|| format!("removing {}", dest.display()))?;
        let _ = std::fs::remove_file(self.archive_path(name, &id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_install_is_idempotent_and_a_bad_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::write(src.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
        assert!(build(&src, "tool", "1.0", Compression::Gzip).is_err());
        let (header, bytes) = build(&src, "tool", "1.0.0", Compression::Xz).unwrap();
        let file = dir.path().join("tool.ipk");
        std::fs::write(&file, &bytes).unwrap();
        let packages = Packages::new(&dir.path().join("state"));
        let first = packages.install_file(&file).unwrap();
        assert_eq!(first.id, header.id());
        assert!(
            first
                .path
                .ends_with(format!("var/ipk_install/tool/{}", header.id()))
        );
        assert_eq!(
            std::fs::read(first.path.join("bin/tool")).unwrap(),
            b"#!/bin/sh\necho tool\n"
        );
        assert_eq!(packages.install_file(&file).unwrap(), first);
        let refs = vec![("tool".to_string(), "1.0.0".to_string()); 2];
        assert_eq!(
            packages.ensure_all(&refs, None).unwrap()["tool"],
            first.path
        );
        assert_eq!(packages.list().unwrap(), vec![first.clone()]);
        packages.remove("tool", "1.0.0").unwrap();
        assert!(!first.path.exists());
        let e = packages.ensure("tool", "1.0.0", None).unwrap_err();
        assert_eq!(e.kind(), berth_core::ErrorKind::NotFound);
    }

    #[test]
    fn a_corrupt_package_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("f"), b"x").unwrap();
        let (_, mut bytes) = build(&src, "t", "1.0.0", Compression::None).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        let file = dir.path().join("t.ipk");
        std::fs::write(&file, &bytes).unwrap();
        let state = dir.path().join("state");
        let e = Packages::new(&state).install_file(&file).unwrap_err();
        assert_eq!(e.kind(), berth_core::ErrorKind::Corrupt);
        assert!(!state.join("var").exists(), "nothing left behind");
    }

    #[test]
    fn refs_need_a_semantic_version() {
        assert_eq!(
            parse_ref("tool@1.2.0").unwrap(),
            ("tool".into(), "1.2.0".into())
        );
        for bad in ["tool", "tool@", "@1.0.0", "tool@v1.0.0"] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
    }
}
