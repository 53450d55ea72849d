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
            let image = if json || quiet {
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

/// A pull's progress as `docker pull` shows it: on a terminal a bar per layer and one for the
/// total, with speed (indicatif); off one, a line per layer and step, without byte counts.
struct Progress {
    bars: Option<Bars>,
}

struct Bars {
    all: MultiProgress,
    total: ProgressBar,
    layers: HashMap<String, ProgressBar>,
}

impl Progress {
    fn new() -> Progress {
        let bars = std::io::stderr().is_terminal().then(|| {
            let all = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let total = all.add(bar("total"));
            Bars {
                all,
                total,
                layers: HashMap::new(),
            }
        });
        Progress { bars }
    }

    fn finish(&mut self) {
        if let Some(bars) = self.bars.take() {
            // Finished bars stay on the screen, as docker's last lines do.
            for layer in bars.layers.values() {
                layer.finish();
            }
            bars.total.finish();
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
        // What a daemon sends is shown, never obeyed: no escapes reach the terminal.
        let status = output::escaped(&event.status);
        let Some(bars) = &mut self.bars else {
            // Byte counts without a terminal would be a flood of lines: keep the steps only.
            if event.current.is_none() {
                match &event.layer {
                    Some(layer) => eprintln!("{}: {status}", output::escaped(layer)),
                    None => eprintln!("{status}"),
                }
            }
            return;
        };
        let Some(layer) = &event.layer else {
            bars.all.suspend(|| eprintln!("{status}"));
            return;
        };
        let layer_bar = bars.layers.entry(layer.clone()).or_insert_with(|| {
            bars.all
                .insert_before(&bars.total, bar(&output::escaped(layer)))
        });
        if let Some(total) = event.total {
            layer_bar.set_length(total);
        }
        if let Some(current) = event.current {
            layer_bar.set_position(current);
        }
        layer_bar.set_message(status.into_owned());
        let (done, expected) = bars.layers.values().fold((0, 0), |(done, expected), b| {
            (done + b.position(), expected + b.length().unwrap_or(0))
        });
        bars.total.set_length(expected);
        bars.total.set_position(done);
    }
}
