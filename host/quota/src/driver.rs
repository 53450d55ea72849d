//! What enforces a volume's size: one implementation per `[quota].type`.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_core::config::{QuotaConfig, QuotaKind};
use berth_core::{Error, IoContext, Result};

/// XFS refuses tiny project limits in practice; sysinner's floor.
pub const XFS_MIN_LIMIT: u64 = 100 << 20;

pub trait QuotaDriver: Send + Sync {
    fn kind(&self) -> QuotaKind;
    /// Creates the volume directory `dir` as project `id`, limited to `limit` bytes.
    fn create(&self, dir: &Path, id: u32, limit: Option<u64>) -> Result<()>;
    /// Bytes the volume uses.
    fn usage(&self, dir: &Path, id: u32) -> Result<u64>;
    /// Lifts the limit and removes the directory.
    fn remove(&self, dir: &Path, id: u32) -> Result<()>;
}

/// The driver `[quota].type` names.
pub fn driver(config: &QuotaConfig) -> Box<dyn QuotaDriver> {
    match config.kind {
        QuotaKind::None => Box::new(Plain),
        QuotaKind::Btrfs => Box::new(Btrfs),
        QuotaKind::Xfs => Box::new(Xfs {
            program: config.xfs_quota.clone(),
        }),
    }
}

/// Runs `program` with `args` (no shell: each argument is one argv entry); its stdout.
pub fn run(program: &Path, args: &[&str]) -> Result<String> {
    let shown = format!("{} {}", program.display(), args.join(" "));
    let out = Command::new(program).args(args).output().map_err(|e| {
        Error::io(format!("running {shown}"), e)
            .with_hint("is it installed? (scripts/setup.sh installs btrfs-progs)")
    })?;
    if !out.status.success() {
        return Err(Error::backend(
            "quota",
            "run",
            shown,
            String::from_utf8_lossy(&out.stderr).trim(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn make_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir(dir).context(|| format!("creating volume directory {}", dir.display()))
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
            format!("removing volume directory {}", dir.display()),
            e,
        )),
        _ => Ok(()),
    }
}

/// Bytes in the regular files under `dir`, symlinks not followed.
fn measure(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.file_type() {
            Ok(t) if t.is_dir() => measure(&entry.path()),
            Ok(t) if t.is_file() => entry.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// `none`: plain directories.
struct Plain;

impl QuotaDriver for Plain {
    fn kind(&self) -> QuotaKind {
        QuotaKind::None
    }

    fn create(&self, dir: &Path, _id: u32, limit: Option<u64>) -> Result<()> {
        if limit.is_some() {
            return Err(Error::Config {
                path: "[quota].type".into(),
                message: "the \"none\" driver measures volumes but cannot limit their size: set \
                          type = \"btrfs\" or \"xfs\", or create the volume without --size"
                    .into(),
            });
        }
        make_dir(dir)
    }

    fn usage(&self, dir: &Path, _id: u32) -> Result<u64> {
        Ok(measure(dir))
    }

    fn remove(&self, dir: &Path, _id: u32) -> Result<()> {
        remove_dir(dir)
    }
}

/// `btrfs`: a subvolume per volume, limited by its qgroup.
struct Btrfs;

const BTRFS: &str = "btrfs";

impl QuotaDriver for Btrfs {
    fn kind(&self) -> QuotaKind {
        QuotaKind::Btrfs
    }

    fn create(&self, dir: &Path, _id: u32, limit: Option<u64>) -> Result<()> {
        let path = dir.to_string_lossy();
        run(Path::new(BTRFS), &["subvolume", "create", &path])?;
        if let Some(limit) = limit
            && let Err(e) = run(
                Path::new(BTRFS),
                &["qgroup", "limit", &limit.to_string(), &path],
            )
        {
            let _ = run(Path::new(BTRFS), &["subvolume", "delete", &path]);
            return Err(e.with_hint(format!(
                "quotas must be enabled on that file system: btrfs quota enable {}",
                dir.parent().unwrap_or(dir).display()
            )));
        }
        Ok(())
    }

    fn usage(&self, dir: &Path, _id: u32) -> Result<u64> {
        // qgroups count committed data: commit first, or recent writes do not show.
        run(
            Path::new(BTRFS),
            &["filesystem", "sync", &dir.to_string_lossy()],
        )?;
        let out = run(
            Path::new(BTRFS),
            &["qgroup", "show", "--raw", "-f", &dir.to_string_lossy()],
        )?;
        // qgroupid  rfer  excl ...: the referenced bytes of the subvolume's own qgroup.
        Ok(out
            .lines()
            .filter(|l| l.starts_with("0/"))
            .find_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0))
    }

    fn remove(&self, dir: &Path, _id: u32) -> Result<()> {
        if dir.exists() {
            run(
                Path::new(BTRFS),
                &["subvolume", "delete", &dir.to_string_lossy()],
            )?;
        }
        Ok(())
    }
}

/// `xfs`: project quotas through `xfs_quota`, each command one argv entry (upstream passed
/// `project -s -p DIR ID` unquoted through a shell).
struct Xfs {
    program: PathBuf,
}

impl Xfs {
    fn xfs_quota(&self, command: String, mount: &Path) -> Result<String> {
        run(
            &self.program,
            &["-x", "-c", &command, &mount.to_string_lossy()],
        )
    }

    /// xfs_quota splits its command on blanks: a path with any cannot be passed through it.
    fn checked(dir: &Path) -> Result<String> {
        let text = dir.to_string_lossy().into_owned();
        if text
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '\'')
        {
            return Err(Error::invalid(
                format!("volume path {text:?}"),
                "xfs_quota cannot take a path with blanks or quotes",
            )
            .with_hint("choose a [quota].path without them"));
        }
        Ok(text)
    }
}

impl QuotaDriver for Xfs {
    fn kind(&self) -> QuotaKind {
        QuotaKind::Xfs
    }

    fn create(&self, dir: &Path, id: u32, limit: Option<u64>) -> Result<()> {
        let path = Self::checked(dir)?;
        let mount = mount_point(dir);
        make_dir(dir)?;
        let result = self
            .xfs_quota(format!("project -s -p {path} {id}"), &mount)
            .and_then(|_| match limit {
                Some(limit) => {
                    let n = limit.max(XFS_MIN_LIMIT);
                    self.xfs_quota(format!("limit -p bsoft={n} bhard={n} {id}"), &mount)
                }
                None => Ok(String::new()),
            });
        if let Err(e) = result {
            let _ = std::fs::remove_dir(dir);
            return Err(e);
        }
        Ok(())
    }

    fn usage(&self, dir: &Path, _id: u32) -> Result<u64> {
        let out = self.xfs_quota("df".into(), &mount_point(dir))?;
        // Filesystem 1K-blocks Used Available Use% Pathname: the line naming this volume.
        Ok(out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() == 6 && Path::new(f[5]) == dir)
            .find_map(|f| f[2].parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024))
    }

    fn remove(&self, dir: &Path, id: u32) -> Result<()> {
        let mount = mount_point(dir);
        self.xfs_quota(format!("limit -p bsoft=0 bhard=0 {id}"), &mount)?;
        self.xfs_quota(format!("project -C {id}"), &mount)?;
        remove_dir(dir)
    }
}

/// The mount point holding `path` (the longest mounted prefix), `/` when unknown.
pub fn mount_point(path: &Path) -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(PathBuf::from)
        .filter(|m| path.starts_with(m))
        .max_by_key(|m| m.as_os_str().len())
        .unwrap_or_else(|| PathBuf::from("/"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in `xfs_quota` that records each invocation's argv, one entry per line.
    fn recorder(dir: &Path) -> (PathBuf, PathBuf) {
        let log = dir.join("argv.log");
        let program = dir.join("xfs_quota");
        std::fs::write(
            &program,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{}'; done\necho -- >> '{}'\n",
                log.display(),
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        (program, log)
    }

    #[test]
    fn xfs_passes_each_command_as_one_argument() {
        let dir = tempfile::tempdir().unwrap();
        let (program, log) = recorder(dir.path());
        let xfs = Xfs { program };
        let volume = dir.path().join("vol");
        xfs.create(&volume, 123, Some(10 << 20)).unwrap();
        xfs.remove(&volume, 123).unwrap();
        let mount = mount_point(&volume).display().to_string();
        let expected = [
            "-x".to_string(),
            "-c".into(),
            format!("project -s -p {} 123", volume.display()),
            mount.clone(),
            "--".into(),
            "-x".into(),
            "-c".into(),
            // The 100 MiB floor.
            "limit -p bsoft=104857600 bhard=104857600 123".into(),
            mount.clone(),
            "--".into(),
            "-x".into(),
            "-c".into(),
            "limit -p bsoft=0 bhard=0 123".into(),
            mount.clone(),
            "--".into(),
            "-x".into(),
            "-c".into(),
            "project -C 123".into(),
            mount,
            "--".into(),
        ];
        let recorded: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(recorded, expected);
        assert!(!volume.exists());
    }

    #[test]
    fn xfs_refuses_paths_it_cannot_quote_and_keeps_limits_above_the_floor() {
        let dir = tempfile::tempdir().unwrap();
        let (program, log) = recorder(dir.path());
        let xfs = Xfs { program };
        let e = xfs.create(&dir.path().join("a b"), 1, None).unwrap_err();
        assert_eq!(e.kind(), berth_core::ErrorKind::Invalid);
        assert!(!log.exists(), "nothing ran");
        xfs.create(&dir.path().join("big"), 7, Some(200 << 20))
            .unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.contains("limit -p bsoft=209715200 bhard=209715200 7"),
            "{text}"
        );
    }

    #[test]
    fn none_measures_and_refuses_limits() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("v");
        let e = Plain.create(&volume, 1, Some(1 << 20)).unwrap_err();
        assert_eq!(e.kind(), berth_core::ErrorKind::Config);
        Plain.create(&volume, 1, None).unwrap();
        std::fs::create_dir(volume.join("sub")).unwrap();
        std::fs::write(volume.join("sub/f"), vec![0u8; 5000]).unwrap();
        std::fs::write(volume.join("g"), vec![0u8; 100]).unwrap();
        assert_eq!(Plain.usage(&volume, 1).unwrap(), 5100);
        Plain.remove(&volume, 1).unwrap();
        assert!(!volume.exists());
    }
}
