//! `berth image import|ls|rm`: the native backend's content-addressed image store.

use berth_backend_native::images::ImageStore;
use berth_core::Error;

use crate::cli::ImageCommand;
use crate::host::Host;
use crate::output;

pub fn dispatch(host: &Host, command: ImageCommand, json: bool) -> anyhow::Result<i32> {
    let images = ImageStore::open(&host.store)?;
    match command {
        ImageCommand::Import {
            rootfs,
            source,
            name,
        } => {
            let image = if rootfs {
                let name = name.ok_or_else(|| {
                    Error::invalid("image import --rootfs", "a name is required")
                        .with_hint("e.g. `berth image import --rootfs ./rootfs busybox:local`")
                })?;
                images.import_rootfs(&source, &name)?
            } else {
                images.import_archive(&source, name.as_deref())?
            };
            if json {
                output::json(&image);
            } else {
                println!(
                    "Loaded image: {} ({})",
                    image.names.join(", "),
                    image.short_id()
                );
            }
        }
        ImageCommand::Ls => {
            let list = images.list()?;
            if json {
                output::json(&list);
            } else {
                // One row per name, like `docker images`; an image without names shows <none>.
                let mut rows = Vec::new();
                for image in &list {
                    let none = ["<none>".to_string()];
                    let names = if image.names.is_empty() {
                        &none[..]
                    } else {
                        &image.names[..]
                    };
                    for name in names {
                        rows.push(vec![
                            name.clone(),
                            image.short_id().to_string(),
                            image.layers.len().to_string(),
                            format!("{:.1}MB", image.size as f64 / 1e6),
                            format!("{} ago", output::human_since(image.created)),
                        ]);
                    }
                }
                output::table(&["NAME", "IMAGE ID", "LAYERS", "SIZE", "CREATED"], &rows);
            }
        }
        ImageCommand::Rm {
            force,
            images: names,
        } => {
            for name in &names {
                images.remove(name, force)?;
                println!("{name}");
            }
        }
    }
    Ok(0)
}
