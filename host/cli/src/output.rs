//! Tables for people, JSON for scripts.
//!
//! Text for people is escaped: table cells, decisions and errors quote plugin answers and
//! records (names, labels, reasons), and none of it may drive the terminal. JSON is exact.

use berth_core::{ContainerInfo, ContainerState};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// `text` with terminal controls written out (`\x1b`, `\r`, ...), for any line a person
/// reads that carries plugin- or record-supplied text.
pub fn escaped(text: &str) -> std::borrow::Cow<'_, str> {
    berth_core::text::escaped(text)
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) {
    let text = serde_json::to_string_pretty(value).expect("output always serialises");
    println!("{text}");
}

/// A listing: JSON for scripts, else a table with one `row` per item.
pub fn listing<T: Serialize>(
    json: bool,
    items: &[T],
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) {
    if json {
        self::json(items);
    } else {
        table(header, &items.iter().map(row).collect::<Vec<_>>());
    }
}

/// Prints rows under a header, each column as wide as its widest cell; cells are escaped.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| escaped(cell).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}   ", width = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// Bytes as docker prints them: `1.5MiB`, `512B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// "3 seconds", "5 minutes", ... as docker prints durations.
pub fn human_since(at: DateTime<Utc>) -> String {
    let secs = (Utc::now() - at).num_seconds().max(0);
    match secs {
        0..=1 => "1 second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "1 minute".into(),
        120..=3599 => format!("{} minutes", secs / 60),
        3600..=7199 => "1 hour".into(),
        7200..=86399 => format!("{} hours", secs / 3600),
        _ => format!("{} days", secs / 86400),
    }
}

/// The STATUS column of `berth ps`.
pub fn status(info: &ContainerInfo) -> String {
    match info.state {
        ContainerState::Running => {
            format!("up {}", human_since(info.started.unwrap_or(info.created)))
        }
        ContainerState::Stopped => format!(
            "exited ({}) {} ago",
            info.exit_code.map_or("?".to_string(), |c| c.to_string()),
            human_since(info.finished.unwrap_or(info.created))
        ),
        // docker's "Restarting (1) 2 seconds ago": the last exit code.
        ContainerState::Restarting => format!(
            "restarting ({}) {} ago",
            info.exit_code.map_or("?".to_string(), |c| c.to_string()),
            human_since(info.finished.unwrap_or(info.created))
        ),
        ContainerState::Dead => match &info.status_detail {
            Some(detail) => format!("dead: {detail}"),
            None => "dead".into(),
        },
        other => other.to_string(),
    }
}

pub fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}
