//! `berth image pull|import|ls|inspect|rm`, on one backend's image store (`--backend`, default
//! the first configured backend).

use std::collections::HashMap;
use std::io::IsTerminal;

use berth_core::{Error, PullEvent, PullProgress};

use crate::cli::{ImageArgs, ImageCommand};
use crate::output;
use berth_engine::Engine;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub async fn dispatch(
    engine: &std::sync::Arc<Engine>,
    args: ImageArgs,
    json: bool,
) -> anyhow::Result<i32> {
    let backend = args.backend.as_deref();
    match args.command {
        ImageCommand::Pull { quiet, reference } => {
            let mut progress = Progress::unless(json || quiet);
            let image = engine
                .pull_image(backend, &reference, None, &mut progress)
                .await;
            progress.finish();
            let image = image?;
            if json {
                output::json(&image);
            } else {
                println!("Pulled {} ({})", image.names.join(", "), image.short_id());
            }
        }
        ImageCommand::Import {
            rootfs,
            quiet,
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
                let mut progress = Progress::unless(json || quiet);
                let image = engine
                    .import_image(backend, &source, image_name.as_deref(), &mut progress)
                    .await;
                progress.finish();
                image?
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

/// A pull's or import's progress as `docker pull` shows it: on a terminal a bar per layer and
/// one for the total, with speed (indicatif); off one, a line per layer and step, without byte
/// counts; nothing when `quiet` (`-q`, `--json`).
struct Progress {
    quiet: bool,
    bars: Option<Bars>,
}

struct Bars {
    all: MultiProgress,
    /// Made with the first layer that counts bytes, so a pull that has none shows no bar.
    total: Option<ProgressBar>,
    layers: HashMap<String, ProgressBar>,
}

impl Progress {
    fn unless(quiet: bool) -> Progress {
        let bars = (!quiet && std::io::stderr().is_terminal()).then(|| Bars {
            all: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            total: None,
            layers: HashMap::new(),
        });
        Progress { quiet, bars }
    }

    fn finish(&mut self) {
        if let Some(bars) = self.bars.take() {
            // Finished bars stay on the screen, as docker's last lines do.
            for bar in bars.layers.values().chain(&bars.total) {
                bar.finish();
            }
        }
    }
}

fn bar(prefix: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>12} {msg:<18} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    ProgressBar::new(0)
        .with_style(style)
        .with_prefix(prefix.to_string())
}

impl PullProgress for Progress {
    fn event(&mut self, event: &PullEvent) {
        if self.quiet {
            return;
        }
        // What a daemon sends is shown, never obeyed: no escapes reach the terminal.
        let status = output::escaped(&event.status);
        let line = || match &event.layer {
            Some(layer) => format!("{}: {status}", output::escaped(layer)),
            None => status.to_string(),
        };
        let counts = event.current.is_some() || event.total.is_some();
        let Some(bars) = &mut self.bars else {
            // Byte counts without a terminal would be a flood of lines: keep the steps only.
            if event.current.is_none() {
                eprintln!("{}", line());
            }
            return;
        };
        // A step of a layer that has no bar (yet): a line above the bars.
        let known = event.layer.as_ref().and_then(|l| bars.layers.get(l));
        let (Some(layer), true) = (&event.layer, counts || known.is_some()) else {
            bars.all.suspend(|| eprintln!("{}", line()));
            return;
        };
        let total = bars
            .total
            .get_or_insert_with(|| bars.all.add(bar("total")))
            .clone();
        let layer_bar = bars
            .layers
            .entry(layer.clone())
            .or_insert_with(|| bars.all.insert_before(&total, bar(&output::escaped(layer))));
        if let Some(expected) = event.total {
            layer_bar.set_length(expected);
        }
        if let Some(current) = event.current {
            layer_bar.set_position(current);
        }
        layer_bar.set_message(status.into_owned());
        let (done, expected) = bars.layers.values().fold((0, 0), |(done, expected), b| {
            (done + b.position(), expected + b.length().unwrap_or(0))
        });
        total.set_length(expected);
        total.set_position(done);
    }
}
