//! `berth image pull|import|ls|inspect|rm`, on one backend's image store (`--backend`, default
//! the first configured backend).

use std::io::{IsTerminal, Write};

use berth_core::{Error, PullEvent, PullProgress};

use crate::cli::{ImageArgs, ImageCommand};
use crate::output;
use berth_engine::Engine;

pub async fn dispatch(
    engine: &std::sync::Arc<Engine>,
    args: ImageArgs,
    json: bool,
) -> anyhow::Result<i32> {
    let backend = args.backend.as_deref();
    match args.command {
        ImageCommand::Pull { reference } => {
            let image = if json {
                engine.pull_image(backend, &reference, &mut Quiet).await?
            } else {
                let mut progress = Progress::new();
                let image = engine.pull_image(backend, &reference, &mut progress).await;
                progress.finish();
                image?
            };
            if json {
                output::json(&image);
            } else {
                println!("Pulled {} ({})", image.names.join(", "), image.short_id());
            }
        }
        ImageCommand::Import {
            rootfs,
            source,
            name: image_name,
        } => {
            let image = if rootfs {
                let image_name = image_name.ok_or_else(|| {
                    Error::invalid("image import --rootfs", "a name is required")
                        .with_hint("e.g. `berth image import --rootfs ./rootfs busybox:local`")
                })?;
                engine.import_rootfs(backend, &source, &image_name).await?
            } else {
                engine
                    .import_image(backend, &source, image_name.as_deref())
                    .await?
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
            let list = engine.list_images(backend).await?;
            if json {
                output::json(&list);
            } else {
                // One row per name, like `docker images`.
                let mut rows = Vec::new();
                for image in &list {
                    for image_name in &image.names {
                        rows.push(vec![
                            image_name.clone(),
                            image.short_id().to_string(),
                            format!("{:.1}MB", image.size as f64 / 1e6),
                            image
                                .created
                                .map(|at| format!("{} ago", output::human_since(at)))
                                .unwrap_or_default(),
                        ]);
                    }
                }
                output::table(&["NAME", "IMAGE ID", "SIZE", "CREATED"], &rows);
            }
        }
        ImageCommand::Inspect { images } => {
            let mut found = Vec::with_capacity(images.len());
            for reference in &images {
                found.push(engine.inspect_image(backend, reference).await?);
            }
            output::json(&found);
        }
        ImageCommand::Rm { force, images } => {
            for reference in &images {
                engine.remove_image(backend, reference, force).await?;
                println!("{reference}");
            }
        }
    }
    Ok(0)
}

/// `--json` pulls print only the result.
struct Quiet;

impl PullProgress for Quiet {
    fn event(&mut self, _: &PullEvent) {}
}

/// A line per layer and step like `docker pull`; on a terminal, the current line is redrawn
/// with a progress bar instead of scrolling.
struct Progress {
    terminal: bool,
    open_line: bool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            terminal: std::io::stderr().is_terminal(),
            open_line: false,
        }
    }

    fn finish(&mut self) {
        if self.open_line {
            eprintln!();
            self.open_line = false;
        }
    }
}

impl PullProgress for Progress {
    fn event(&mut self, event: &PullEvent) {
        let prefix = event
            .layer
            .as_deref()
            .map(|layer| format!("{layer}: "))
            .unwrap_or_default();
        let mut stderr = std::io::stderr().lock();
        match (self.terminal, event.current, event.total) {
            (true, Some(current), Some(total)) if total > 0 => {
                const WIDTH: u64 = 30;
                let done = (current.min(total) * WIDTH / total) as usize;
                let bar = format!(
                    "[{}>{}]",
                    "=".repeat(done),
                    " ".repeat(WIDTH as usize - done)
                );
                let _ = write!(
                    stderr,
                    "\r\x1b[2K{prefix}{} {bar} {:.1}/{:.1}MB",
                    event.status,
                    current as f64 / 1e6,
                    total as f64 / 1e6
                );
                self.open_line = true;
            }
            // Byte counts without a terminal would be a flood of lines: keep the steps only.
            (false, Some(_), _) => {}
            _ => {
                if self.open_line {
                    let _ = write!(stderr, "\r\x1b[2K");
                }
                let _ = writeln!(stderr, "{prefix}{}", event.status);
                self.open_line = false;
            }
        }
    }
}
