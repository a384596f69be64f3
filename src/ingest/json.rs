//! JSON records from a file in bounded memory, each with the line it starts on.
//!
//! Provider exports come in three shapes: JSON lines (one record per line), a JSON array of
//! records (LiteLLM's export), and whole documents one after another (an API page as
//! returned, possibly pretty-printed). All three are read without holding more than one
//! record: a record over [`MAX_RECORD_BYTES`] is an error, as is nesting deeper than
//! serde_json's limit of 128 or invalid UTF-8.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::{self, BufRead, Read};
use std::rc::Rc;

use serde::de::{DeserializeSeed, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;

/// The largest record (one line, one array element, one document) read into memory.
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// What the caller decides after each record.
pub type Step<E> = Result<(), E>;

/// [`for_each_raw_record`] with each record parsed into a `Value` (what the tests check).
#[cfg(test)]
fn for_each_record<R: BufRead, E>(
    input: R,
    mut record: impl FnMut(u64, Result<Value, String>) -> Step<E>,
    on_progress: impl FnMut(u64),
) -> Result<Result<(), E>, io::Error> {
    for_each_raw_record(
        input,
        |line, text| {
            let value = text.and_then(|text| {
                serde_json::from_slice::<Value>(&text).map_err(|e| format!("invalid JSON: {e}"))
            });
            record(line, value)
        },
        on_progress,
    )
}

/// Calls `record(line, Ok(text))` with each record of `input`'s JSON text, and
/// `record(line, Err(reason))` for each record that cannot be read; it may stop the file by
/// returning `Err`. In JSON lines the file goes on after a bad line; in an array or a stream
/// of documents a syntax error ends the file, since nothing after it can be trusted to start a
/// record. `on_progress(bytes)` reports how far the file has been read.
///
/// In JSON lines the text is the line as it is (a line that is not JSON is for the caller's
/// parser to find); records of an array or of a document stream are parsed and written back.
pub fn for_each_raw_record<R: BufRead, E>(
    mut input: R,
    mut record: impl FnMut(u64, Result<Cow<'_, [u8]>, String>) -> Step<E>,
    mut on_progress: impl FnMut(u64),
) -> Result<Result<(), E>, io::Error> {
    let first = loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok(Ok(()));
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break buf[i],
            None => {
                let n = buf.len();
                input.consume(n);
            }
        }
    };
    if first == b'[' {
        let as_text = |line, value| record(line, value_text(value));
        return Ok(read_array(input, as_text, on_progress));
    }
    // JSON lines when the first line is a whole JSON value; otherwise documents.
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut bytes = 0u64;
    let mut first_line = true;
    loop {
        line.clear();
        let read = read_line_capped(&mut input, &mut line, MAX_RECORD_BYTES)?;
        let (n, too_long) = match read {
            LineRead::Eof => return Ok(Ok(())),
            LineRead::Line(n) => (n, false),
            LineRead::TooLong(n) => (n, true),
        };
        line_no += 1;
        bytes += n;
        if too_long {
            let reason = format!("a record is longer than {MAX_RECORD_BYTES} bytes");
            if let Err(e) = record(line_no, Err(reason)) {
                return Ok(Err(e));
            }
            continue;
        }
        let text = trim_ascii(&line);
        if text.is_empty() {
            continue;
        }
        if first_line {
            first_line = false;
            // JSON lines when the first line is a whole value; a document spread over lines
            // otherwise: read the rest as a stream of documents.
            if let Err(e) = serde_json::from_slice::<IgnoredAny>(text)
                && e.is_eof()
            {
                let head = std::mem::take(&mut line);
                let chained = io::Cursor::new(head).chain(input);
                let as_text = |line, value| record(line, value_text(value));
                return Ok(read_documents(chained, as_text, on_progress));
            }
        }
        if let Err(stop) = record(line_no, Ok(Cow::Borrowed(text))) {
            return Ok(Err(stop));
        }
        on_progress(bytes);
    }
}

/// A parsed record written back as JSON text.
fn value_text(value: Result<Value, String>) -> Result<Cow<'static, [u8]>, String> {
    value.and_then(|v| {
        serde_json::to_vec(&v)
            .map(Cow::Owned)
            .map_err(|e| e.to_string())
    })
}

enum LineRead {
    Eof,
    Line(u64),
    /// The line was longer than the cap; its bytes were skipped.
    TooLong(u64),
}

/// Reads one line into `buf` (newline included), but never more than `cap` bytes of it: a
/// longer line is consumed and dropped.
fn read_line_capped(input: &mut impl BufRead, buf: &mut Vec<u8>, cap: u64) -> io::Result<LineRead> {
    let mut total = 0u64;
    let mut too_long = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(match (total, too_long) {
                (0, _) => LineRead::Eof,
                (n, true) => LineRead::TooLong(n),
                (n, false) => LineRead::Line(n),
            });
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        total += take as u64;
        if total > cap {
            too_long = true;
            buf.clear();
        } else {
            buf.extend_from_slice(&chunk[..take]);
        }
        input.consume(take);
        if done {
            return Ok(if too_long {
                LineRead::TooLong(total)
            } else {
                LineRead::Line(total)
            });
        }
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Counts lines and caps the bytes of one record, between `mark`s.
struct Tracker<R> {
    inner: R,
    state: Rc<TrackState>,
}

#[derive(Default)]
struct TrackState {
    /// Newlines read so far.
    lines: Cell<u64>,
    /// Bytes read since the last mark.
    since_mark: Cell<u64>,
    /// Line of the first byte after the last mark that starts a value.
    start_line: Cell<Option<u64>>,
    total: Cell<u64>,
}

impl TrackState {
    fn mark(&self) {
        self.since_mark.set(0);
        self.start_line.set(None);
    }

    fn record_line(&self) -> u64 {
        self.start_line.get().unwrap_or(self.lines.get() + 1)
    }
}

impl<R: Read> Read for Tracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let s = &self.state;
        for &b in &buf[..n] {
            if s.start_line.get().is_none()
                && !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b',' | b'[' | b']')
            {
                s.start_line.set(Some(s.lines.get() + 1));
            }
            if b == b'\n' {
                s.lines.set(s.lines.get() + 1);
            }
        }
        s.since_mark.set(s.since_mark.get() + n as u64);
        s.total.set(s.total.get() + n as u64);
        if s.since_mark.get() > MAX_RECORD_BYTES {
            return Err(io::Error::other(format!(
                "a record is longer than {MAX_RECORD_BYTES} bytes"
            )));
        }
        Ok(n)
    }
}

/// A syntax (or read) error as the record callback gets it: the line and the reason.
fn syntax_error(e: &serde_json::Error, state: &TrackState) -> (u64, Result<Value, String>) {
    let line = if e.line() > 0 {
        e.line() as u64
    } else {
        state.record_line()
    };
    let reason = if e.is_io() {
        e.to_string()
    } else {
        format!("invalid JSON: {e}")
    };
    (line, Err(reason))
}

/// A reader that counts lines and caps records, and the state it shares with its caller.
fn tracked<R: Read>(input: R) -> (Tracker<R>, Rc<TrackState>) {
    let state = Rc::new(TrackState::default());
    let tracker = Tracker {
        inner: input,
        state: Rc::clone(&state),
    };
    (tracker, state)
}

/// Whole documents one after another.
fn read_documents<R: Read, E>(
    input: R,
    mut record: impl FnMut(u64, Result<Value, String>) -> Step<E>,
    mut on_progress: impl FnMut(u64),
) -> Result<(), E> {
    let (tracker, state) = tracked(input);
    let mut stream = serde_json::Deserializer::from_reader(tracker).into_iter::<Value>();
    loop {
        state.mark();
        match stream.next() {
            None => return Ok(()),
            Some(Ok(value)) => {
                record(state.record_line(), Ok(value))?;
                on_progress(state.total.get());
            }
            Some(Err(e)) => {
                let (line, error) = syntax_error(&e, &state);
                return record(line, error);
            }
        }
    }
}

/// A top-level array, element by element.
fn read_array<R: Read, E>(
    input: R,
    mut record: impl FnMut(u64, Result<Value, String>) -> Step<E>,
    mut on_progress: impl FnMut(u64),
) -> Result<(), E> {
    let (tracker, state) = tracked(input);
    let mut deserializer = serde_json::Deserializer::from_reader(tracker);
    let mut stopped: Option<E> = None;
    let progress_state = Rc::clone(&state);
    let seed = EachElement {
        record: |line, value| {
            record(line, Ok(value))?;
            on_progress(progress_state.total.get());
            Ok(())
        },
        state: Rc::clone(&state),
        stopped: &mut stopped,
    };
    let result = seed.deserialize(&mut deserializer);
    if let Some(e) = stopped {
        return Err(e);
    }
    match result.and_then(|()| deserializer.end()) {
        Ok(()) => Ok(()),
        Err(e) => {
            let (line, error) = syntax_error(&e, &state);
            record(line, error)
        }
    }
}

struct EachElement<'a, F, E> {
    record: F,
    state: Rc<TrackState>,
    stopped: &'a mut Option<E>,
}

impl<'de, F, E> DeserializeSeed<'de> for EachElement<'_, F, E>
where
    F: FnMut(u64, Value) -> Step<E>,
{
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, F, E> Visitor<'de> for EachElement<'_, F, E>
where
    F: FnMut(u64, Value) -> Step<E>,
{
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of records")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        loop {
            self.state.mark();
            let Some(value) = seq.next_element::<Value>()? else {
                return Ok(());
            };
            if let Err(e) = (self.record)(self.state.record_line(), value) {
                *self.stopped = Some(e);
                return Err(serde::de::Error::custom("stopped"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Lines<T> = Vec<(u64, T)>;

    fn collect(text: &str) -> (Lines<Value>, Lines<String>) {
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for_each_record::<_, ()>(
            text.as_bytes(),
            |line, v| {
                match v {
                    Ok(v) => good.push((line, v)),
                    Err(reason) => bad.push((line, reason)),
                }
                Ok(())
            },
            |_| {},
        )
        .expect("io")
        .expect("not stopped");
        (good, bad)
    }

    #[test]
    fn json_lines_report_their_line_and_go_on_after_a_bad_one() {
        let (good, bad) = collect("{\"a\":1}\n\n{\"a\":\n{\"a\":3}\n");
        assert_eq!(good.len(), 2);
        assert_eq!(good[0].0, 1);
        assert_eq!(good[1].0, 4);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 3);
    }

    #[test]
    fn pretty_printed_documents_are_read_whole() {
        let (good, bad) = collect("{\n  \"page\": 1\n}\n\n{\n \"page\": 2\n}\n");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(good.len(), 2);
        assert_eq!(good[0].1["page"], 1);
        assert_eq!(good[1].0, 5);
    }

    #[test]
    fn arrays_stream_element_by_element_with_lines() {
        let (good, bad) = collect("[\n {\"x\": 1},\n {\"x\": 2}\n]\n");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(good.iter().map(|g| g.0).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn a_truncated_array_is_one_error() {
        let (good, bad) = collect("[{\"x\": 1}, {\"x\": ");
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let (good, bad) = collect(&format!("{{\"a\":1}}\n{{\"b\":{}}}\n", deep.trim_end()));
        assert_eq!(good.len(), 1);
        assert_eq!(bad.len(), 1);
        let (_, bad) = collect(&deep);
        assert_eq!(bad.len(), 1);
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut bytes = b"{\"a\":\"".to_vec();
        bytes.extend_from_slice(&[0xff, 0xfe]);
        bytes.extend_from_slice(b"\"}\n");
        let mut bad = 0;
        for_each_record::<_, ()>(
            &bytes[..],
            |_, v| {
                bad += usize::from(v.is_err());
                Ok(())
            },
            |_| {},
        )
        .expect("io")
        .expect("not stopped");
        assert_eq!(bad, 1);
    }

    #[test]
    fn an_overlong_line_is_skipped_in_bounded_memory() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"a\":1}\n");
        input.extend(std::iter::repeat_n(b'x', 1000));
        input.extend_from_slice(b"\n{\"a\":2}\n");
        let mut reader = &input[..];
        let mut buf = Vec::new();
        assert!(matches!(
            read_line_capped(&mut reader, &mut buf, 100).expect("io"),
            LineRead::Line(8)
        ));
        buf.clear();
        assert!(matches!(
            read_line_capped(&mut reader, &mut buf, 100).expect("io"),
            LineRead::TooLong(1001)
        ));
        assert!(buf.is_empty());
        buf.clear();
        assert!(matches!(
            read_line_capped(&mut reader, &mut buf, 100).expect("io"),
            LineRead::Line(8)
        ));
    }
}
