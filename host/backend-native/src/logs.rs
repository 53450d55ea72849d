//! The container log file: one JSON object per chunk of output.
//!
//! The supervisor appends `{"time", "stream", "log"}` lines (or `"hex"` instead of `"log"` when a
//! chunk is not valid UTF-8, so bytes survive exactly), and `logs` replays them into a
//! [`LogSink`] with stdout and stderr kept apart. A reader only consumes complete lines, so it
//! can follow a file the supervisor is still writing.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use berth_core::logs::Shaper;
use berth_core::{IoContext, LogStream, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
            return Err(berth_core::Error::io(
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_core::LogSink;

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
}
