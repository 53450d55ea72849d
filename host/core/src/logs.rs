//! Container logs kept with their times, for every backend that writes them itself (native's
//! supervisor, containerd's logging binary): the file is one JSON object per chunk of output,
//! `{"time", "stream", "log"}` (or `"hex"` instead of `"log"` when a chunk is not valid UTF-8,
//! so bytes survive exactly), and a reader consumes complete lines only, so it can follow a
//! file still being written.
//!
//! `logs --tail/--since/--until/--timestamps` are applied to such timed chunks in one place: a
//! [`Shaper`] takes the history (the chunks written so far), keeps what the window and the tail
//! let through, and then passes live chunks on as they come.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::backend::LogOptions;
use crate::error::{IoContext, Result};
use crate::types::{LogSink, LogStream};

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    time: DateTime<Utc>,
    stream: LogStream,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

/// One log line (with its newline) for a chunk of output.
pub fn encode(stream: LogStream, data: &[u8]) -> Vec<u8> {
    let (log, hex) = match std::str::from_utf8(data) {
        Ok(text) => (Some(text.to_string()), None),
        Err(_) => (None, Some(hex::encode(data))),
    };
    let line = Line {
        time: Utc::now(),
        stream,
        log,
        hex,
    };
    let mut bytes = serde_json::to_vec(&line).expect("log lines serialise");
    bytes.push(b'\n');
    bytes
}

/// The time, stream and bytes of one line; `None` for a line that does not parse (skipped).
pub fn decode(line: &[u8]) -> Option<(DateTime<Utc>, LogStream, Vec<u8>)> {
    let line: Line = serde_json::from_slice(line).ok()?;
    let data = match (line.log, line.hex) {
        (Some(text), _) => text.into_bytes(),
        (None, Some(hex)) => hex::decode(hex).ok()?,
        (None, None) => Vec::new(),
    };
    Some((line.time, line.stream, data))
}

/// Replays complete lines from `offset` into `shaper`; returns the offset after the last
/// complete line.
pub fn replay(path: &Path, offset: u64, shaper: &mut Shaper) -> Result<u64> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(offset),
        Err(e) => {
            return Err(crate::error::Error::io(
                format!("opening {}", path.display()),
                e,
            ));
        }
    };
    file.seek(SeekFrom::Start(offset))
        .context(|| format!("reading {}", path.display()))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .context(|| format!("reading {}", path.display()))?;
    let mut consumed = 0;
    while let Some(end) = bytes[consumed..].iter().position(|&b| b == b'\n') {
        let line = &bytes[consumed..consumed + end];
        if let Some((time, stream, data)) = decode(line) {
            shaper
                .chunk(time, stream, &data)
                .context(|| "writing container logs".to_string())?;
        }
        consumed += end + 1;
    }
    Ok(offset + consumed as u64)
}

/// One line of output and when it was written.
type TimedLine = (DateTime<Utc>, LogStream, Vec<u8>);

/// Shapes chunks of output into `sink` as `options` ask.
pub struct Shaper<'a> {
    options: LogOptions,
    sink: &'a mut dyn LogSink,
    /// The last lines of the history, while it is read and a tail is asked.
    held: Option<VecDeque<TimedLine>>,
}

impl<'a> Shaper<'a> {
    pub fn new(options: LogOptions, sink: &'a mut dyn LogSink) -> Shaper<'a> {
        Shaper {
            held: options.tail.map(|_| VecDeque::new()),
            options,
            sink,
        }
    }

    /// One chunk, written at `time`.
    pub fn chunk(
        &mut self,
        time: DateTime<Utc>,
        stream: LogStream,
        data: &[u8],
    ) -> std::io::Result<()> {
        let o = &self.options;
        if o.since.is_some_and(|since| time < since) || o.until.is_some_and(|until| time > until) {
            return Ok(());
        }
        if let (Some(held), Some(tail)) = (&mut self.held, o.tail) {
            for line in lines(data) {
                held.push_back((time, stream, line.to_vec()));
                if held.len() > tail {
                    held.pop_front();
                }
            }
            return Ok(());
        }
        if !o.timestamps {
            return self.sink.write(stream, data);
        }
        for line in lines(data) {
            self.write_line(time, stream, line)?;
        }
        Ok(())
    }

    /// The history is read: its tail is written, and chunks from here on pass straight on.
    pub fn end_of_history(&mut self) -> std::io::Result<()> {
        for (time, stream, line) in self.held.take().unwrap_or_default() {
            self.write_line(time, stream, &line)?;
        }
        Ok(())
    }

    fn write_line(
        &mut self,
        time: DateTime<Utc>,
        stream: LogStream,
        line: &[u8],
    ) -> std::io::Result<()> {
        if !self.options.timestamps {
            return self.sink.write(stream, line);
        }
        let mut stamped = time
            .to_rfc3339_opts(SecondsFormat::Nanos, true)
            .into_bytes();
        stamped.push(b' ');
        stamped.extend_from_slice(line);
        self.sink.write(stream, &stamped)
    }
}

/// `data` cut after each newline (a last piece without one is a line too).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split_inclusive(|&b| b == b'\n')
}

/// A container's output as the kubelet reads it, at the path it gave (`log_path`): a line
/// `<RFC3339Nano> <stream> <F|P> <text>` per line of output, `P` (partial) for the piece of a
/// line a chunk ends inside of, `F` for a line's end. The file is reopened when its path no
/// longer names it: the kubelet rotated it and asked for a new one (ReopenContainerLog).
#[derive(Debug)]
pub struct CriLog {
    path: std::path::PathBuf,
    file: Option<(File, u64)>,
}

impl CriLog {
    /// The log at `path`, created now (the kubelet may read it before any output), with its
    /// directory.
    pub fn new(path: impl Into<std::path::PathBuf>) -> CriLog {
        let mut log = CriLog {
            path: path.into(),
            file: None,
        };
        log.reopen_if_moved();
        log
    }

    fn reopen_if_moved(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if current.is_some() && self.file.as_ref().map(|(_, ino)| *ino) == current {
            return;
        }
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let opened = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        self.file = opened.ok().and_then(|f| {
            let ino = f.metadata().ok()?.ino();
            Some((f, ino))
        });
    }

    /// Appends one chunk; a file that cannot be written drops it (output never stops the
    /// container).
    pub fn write(&mut self, stream: LogStream, data: &[u8]) {
        use std::io::Write;
        self.reopen_if_moved();
        if let Some((file, _)) = &mut self.file {
            let _ = file.write_all(&cri_lines(Utc::now(), stream, data));
        }
    }
}

/// The CRI log lines of one chunk of output written at `time`.
pub fn cri_lines(time: DateTime<Utc>, stream: LogStream, data: &[u8]) -> Vec<u8> {
    let stamp = time.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let stream = match stream {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
    };
    let mut out = Vec::with_capacity(data.len() + 48);
    let mut rest = data;
    while !rest.is_empty() {
        let (line, tag, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(end) => (&rest[..end], 'F', &rest[end + 1..]),
            None => (rest, 'P', &rest[rest.len()..]),
        };
        out.extend_from_slice(format!("{stamp} {stream} {tag} ").as_bytes());
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect(Vec<(LogStream, String)>);

    impl LogSink for Collect {
        fn write(&mut self, stream: LogStream, data: &[u8]) -> std::io::Result<()> {
            self.0
                .push((stream, String::from_utf8_lossy(data).into_owned()));
            Ok(())
        }
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + second, 0).unwrap()
    }

    fn history(options: LogOptions) -> Vec<(LogStream, String)> {
        let mut out = Collect::default();
        let mut shaper = Shaper::new(options, &mut out);
        shaper.chunk(at(0), LogStream::Stdout, b"a1\na2\n").unwrap();
        shaper.chunk(at(1), LogStream::Stderr, b"b1\n").unwrap();
        shaper.chunk(at(2), LogStream::Stdout, b"c1\nc2").unwrap();
        shaper.end_of_history().unwrap();
        shaper.chunk(at(3), LogStream::Stdout, b"live\n").unwrap();
        out.0
    }

    #[test]
    fn without_options_chunks_pass_as_written() {
        let out = history(LogOptions::default());
        assert_eq!(out.len(), 4);
        assert_eq!(out[0], (LogStream::Stdout, "a1\na2\n".into()));
    }

    #[test]
    fn the_tail_counts_lines_across_streams_and_live_output_follows() {
        let out = history(LogOptions {
            tail: Some(2),
            ..LogOptions::default()
        });
        let text: Vec<&str> = out.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(text, ["c1\n", "c2", "live\n"]);
        let none = history(LogOptions {
            tail: Some(0),
            ..LogOptions::default()
        });
        assert_eq!(none, [(LogStream::Stdout, "live\n".to_string())]);
    }

    #[test]
    fn the_window_and_timestamps_apply_per_chunk() {
        let out = history(LogOptions {
            since: Some(at(1)),
            until: Some(at(2)),
            timestamps: true,
            ..LogOptions::default()
        });
        assert_eq!(
            out,
            [
                (
                    LogStream::Stderr,
                    "2023-11-14T22:13:21.000000000Z b1\n".to_string()
                ),
                (
                    LogStream::Stdout,
                    "2023-11-14T22:13:22.000000000Z c1\n".to_string()
                ),
                (
                    LogStream::Stdout,
                    "2023-11-14T22:13:22.000000000Z c2".to_string()
                ),
            ]
        );
    }

    #[test]
    fn round_trips_text_and_bytes() {
        let line = encode(LogStream::Stderr, b"hello\n");
        let (_, stream, data) = decode(&line[..line.len() - 1]).unwrap();
        assert_eq!((stream, data), (LogStream::Stderr, b"hello\n".to_vec()));
        let line = encode(LogStream::Stdout, &[0xff, 0x00]);
        let (_, stream, data) = decode(&line[..line.len() - 1]).unwrap();
        assert_eq!((stream, data), (LogStream::Stdout, vec![0xff, 0x00]));
    }

    #[test]
    fn replay_stops_at_a_partial_line() {
        struct Collect(Vec<(LogStream, Vec<u8>)>);
        impl LogSink for Collect {
            fn write(&mut self, stream: LogStream, data: &[u8]) -> std::io::Result<()> {
                self.0.push((stream, data.to_vec()));
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut bytes = encode(LogStream::Stdout, b"a");
        let first = bytes.len() as u64;
        bytes.extend_from_slice(b"{\"partial");
        std::fs::write(&path, &bytes).unwrap();
        let mut sink = Collect(Vec::new());
        let mut shaper = Shaper::new(Default::default(), &mut sink);
        assert_eq!(replay(&path, 0, &mut shaper).unwrap(), first);
        drop(shaper);
        assert_eq!(sink.0, [(LogStream::Stdout, b"a".to_vec())]);
    }

    #[test]
    fn cri_lines_tag_whole_lines_full_and_a_trailing_piece_partial() {
        let time = DateTime::parse_from_rfc3339("2026-12-03T06:00:00.000000001Z")
            .unwrap()
            .with_timezone(&Utc);
        let lines = cri_lines(time, LogStream::Stderr, b"one\ntwo\npart");
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            "2026-12-03T06:00:00.000000001Z stderr F one\n\
             2026-12-03T06:00:00.000000001Z stderr F two\n\
             2026-12-03T06:00:00.000000001Z stderr P part\n"
        );
        let empty_line = cri_lines(time, LogStream::Stdout, b"\n");
        assert!(
            String::from_utf8(empty_line)
                .unwrap()
                .ends_with("stdout F \n")
        );
    }

    #[test]
    fn a_cri_log_moved_away_is_reopened_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = CriLog::new(&path);
        log.write(LogStream::Stdout, b"before\n");
        std::fs::rename(&path, dir.path().join("0.log.1")).unwrap();
        log.write(LogStream::Stdout, b"after\n");
        let rotated = std::fs::read_to_string(dir.path().join("0.log.1")).unwrap();
        let fresh = std::fs::read_to_string(&path).unwrap();
        assert!(rotated.ends_with(" stdout F before\n"), "{rotated}");
        assert!(fresh.ends_with(" stdout F after\n"), "{fresh}");
        assert_eq!(fresh.lines().count(), 1);
    }
}
