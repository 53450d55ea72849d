//! `berth pkg build|install|inspect|ls|rm`: read-only software packages (.ipk).

use berth_core::Error;
use berth_packages::{Compression, repository};

use crate::cli::PkgCommand;
use crate::output;
use berth_engine::Engine;

pub fn dispatch(engine: &Engine, command: PkgCommand, json: bool) -> anyhow::Result<i32> {
    let packages = engine.packages();
    match command {
        PkgCommand::Build {
            dir,
            name,
            version,
            compression,
            output: out,
            chunk_sums,
        } => {
            let compression = match compression.as_str() {
                "xz" => Compression::Xz,
                "gzip" => Compression::Gzip,
                "none" => Compression::None,
                other => {
                    return Err(Error::invalid(format!("compression {other:?}"), "unknown")
                        .with_hint("use xz, gzip or none")
                        .into());
                }
            };
            let (header, bytes) = berth_packages::build(&dir, &name, &version, compression)?;
            let out = out.unwrap_or_else(|| format!("{}.ipk", header.id()).into());
            let write = |path: &std::path::Path, bytes: &[u8]| {
                std::fs::write(path, bytes)
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))
            };
            write(&out, &bytes)?;
            if chunk_sums {
                let mut sums = out.clone().into_os_string();
                sums.push(".crc32");
                write(sums.as_ref(), repository::chunk_sums(&bytes).as_bytes())?;
            }
            if json {
                output::json(&header);
            } else {
                println!("{}", out.display());
            }
        }
        PkgCommand::Install { package } => {
            let installed = if std::path::Path::new(&package).is_file() {
                packages.install_file(package.as_ref())?
            } else {
                let (name, version) = berth_packages::parse_ref(&package)?;
                packages.ensure(&name, &version, engine.config.packages.repository.as_ref())?
            };
            if json {
                output::json(&installed);
            } else {
                println!("{}", installed.path.display());
            }
        }
        PkgCommand::Inspect { file } => output::json(&berth_packages::inspect(&file)?),
        PkgCommand::Ls => {
            output::listing(json, &packages.list()?, &["NAME", "VERSION", "PATH"], |p| {
                vec![
                    p.name.clone(),
                    p.version.clone(),
                    p.path.display().to_string(),
                ]
            });
        }
        PkgCommand::Rm { packages: refs } => {
            for text in &refs {
                let (name, version) = berth_packages::parse_ref(text)?;
                packages.remove(&name, &version)?;
                println!("{text}");
            }
        }
    }
    Ok(0)
}
