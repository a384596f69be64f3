//! The write-ahead log for `usage`.
//!
//! A segment is `wal/<seq>.wal`: an 8-byte magic, then records framed as
//! `len: u32 LE | crc32(payload): u32 LE | payload`. A payload is one committed statement's
//! rows as an Arrow IPC stream, so a record is all of a statement or none of it.
//!
//! On start every segment newer than the manifest's checkpoint is replayed. A short or
//! checksum-failing record at the end of the newest segment is a torn write from a crash:
//! the tail is truncated and the rows before it are kept. The same damage anywhere else
//! means the log is corrupt, and opening fails with an error naming the file.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;

use super::durable;
use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"SPQLWAL1";
const HEADER_LEN: usize = 8;
/// A record larger than this is treated as damage rather than allocated.
const MAX_RECORD_LEN: usize = 1 << 30;

/// One replayed record: the segment it came from and its rows.
#[derive(Debug)]
pub struct Replayed {
    pub segment: u64,
    pub batch: RecordBatch,
}

/// What replay found.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub records: Vec<Replayed>,
    /// Bytes cut from a torn tail, if any.
    pub truncated_bytes: u64,
    pub truncated_file: Option<PathBuf>,
}

/// The appender for the current segment.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segment: u64,
    file: File,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

/// Segment numbers present in `dir`, ascending.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(seqs),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".wal")
            && let Ok(seq) = stem.parse::<u64>()
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// Replay every segment after `checkpoint`, truncating a torn tail of the newest one.
pub fn replay(dir: &Path, checkpoint: u64, schema: &SchemaRef) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let segments: Vec<u64> = list_segments(dir)?
        .into_iter()
        .filter(|s| *s > checkpoint)
        .collect();
    for (i, seq) in segments.iter().enumerate() {
        let newest = i + 1 == segments.len();
        let path = segment_path(dir, *seq);
        let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if bytes.len() < HEADER_LEN {
            if newest {
                // The crash happened while the segment was being created.
                truncate(&path, 0)?;
                report.truncated_bytes += bytes.len() as u64;
                report.truncated_file = Some(path.clone());
                write_header(&path)?;
                continue;
            }
            return Err(Error::corrupt(
                &path,
                "write-ahead log segment has no header",
            ));
        }
        if &bytes[..HEADER_LEN] != MAGIC {
            return Err(Error::corrupt(
                &path,
                "not a SpendQL write-ahead log segment",
            ));
        }
        let mut pos = HEADER_LEN;
        while pos < bytes.len() {
            match decode_record(&bytes[pos..]) {
                Some((payload, used)) => {
                    let batch = decode_batch(payload, schema).map_err(|reason| {
                        Error::corrupt(&path, format!("record at byte {pos}: {reason}"))
                    })?;
                    report.records.push(Replayed {
                        segment: *seq,
                        batch,
                    });
                    pos += used;
                }
                None if newest => {
                    report.truncated_bytes += (bytes.len() - pos) as u64;
                    report.truncated_file = Some(path.clone());
                    truncate(&path, pos as u64)?;
                    break;
                }
                None => {
                    return Err(Error::corrupt(
                        &path,
                        format!("damaged record at byte {pos} in a segment that is not the newest"),
                    ));
                }
            }
        }
    }
    Ok(report)
}

/// A framed record at the start of `bytes`: its payload and the bytes it takes, or None if
/// it is short or its checksum fails.
fn decode_record(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    if len > MAX_RECORD_LEN {
        return None;
    }
    let payload = bytes.get(8..8 + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, 8 + len))
}

fn decode_batch(payload: &[u8], schema: &SchemaRef) -> std::result::Result<RecordBatch, String> {
    let reader = StreamReader::try_new(payload, None).map_err(|e| e.to_string())?;
    let mut batches = Vec::new();
    for batch in reader {
        batches.push(batch.map_err(|e| e.to_string())?);
    }
    let batch = arrow::compute::concat_batches(schema, &batches).map_err(|e| e.to_string())?;
    Ok(batch)
}

fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() + 1024);
    let mut writer = StreamWriter::try_new(&mut buf, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(buf)
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_len(len).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

fn write_header(path: &Path) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(MAGIC).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

impl Wal {
    /// Open segment `seq` for appending, creating it (durably) if needed.
    pub fn open(dir: &Path, seq: u64) -> Result<Self> {
        durable::create_dir_durable(dir)?;
        let path = segment_path(dir, seq);
        let existed = path.exists();
        if !existed {
            write_header(&path)?;
            durable::sync_dir(dir)?;
        } else {
            let mut head = [0u8; HEADER_LEN];
            let mut f = File::open(&path).map_err(|e| Error::io(&path, e))?;
            f.read_exact(&mut head)
                .map_err(|_| Error::corrupt(&path, "write-ahead log segment has no header"))?;
            if &head != MAGIC {
                return Err(Error::corrupt(
                    &path,
                    "not a SpendQL write-ahead log segment",
                ));
            }
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            segment: seq,
            file,
        })
    }

    /// The segment new records go to.
    pub fn segment(&self) -> u64 {
        self.segment
    }

    /// Append one statement's rows and fsync before returning.
    pub fn append(&mut self, batch: &RecordBatch) -> Result<()> {
        let payload = encode_batch(batch)?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| (*l as usize) <= MAX_RECORD_LEN)
            .ok_or_else(|| Error::Invalid("a single INSERT is limited to 1 GiB of rows".into()))?;
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        let path = segment_path(&self.dir, self.segment);
        self.file
            .write_all(&frame)
            .map_err(|e| Error::io(&path, e))?;
        self.file.sync_data().map_err(|e| Error::io(&path, e))
    }

    /// Start a new segment; records appended from now on go there.
    pub fn rotate(&mut self) -> Result<u64> {
        let next = Wal::open(&self.dir, self.segment + 1)?;
        let sealed = self.segment;
        *self = next;
        Ok(sealed)
    }

    /// Delete segments up to and including `through` (already in Parquet).
    pub fn remove_through(&self, through: u64) -> Result<()> {
        for seq in list_segments(&self.dir)? {
            if seq <= through && seq != self.segment {
                durable::remove_durable(&segment_path(&self.dir, seq))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]))
    }

    fn batch(ids: &[&str]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from(ids.to_vec())),
                Arc::new(Int64Array::from(vec![1i64; ids.len()])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn append_then_replay_returns_every_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path(), 1).expect("open");
        wal.append(&batch(&["a", "b"])).expect("append");
        wal.append(&batch(&["c"])).expect("append");
        drop(wal);
        let report = replay(dir.path(), 0, &schema()).expect("replay");
        assert_eq!(report.records.len(), 2);
        assert_eq!(report.records[0].batch.num_rows(), 2);
        assert_eq!(report.truncated_bytes, 0);
    }

    #[test]
    fn torn_tail_is_truncated_and_earlier_records_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path(), 1).expect("open");
        wal.append(&batch(&["a"])).expect("append");
        wal.append(&batch(&["b"])).expect("append");
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let full = fs::metadata(&path).expect("meta").len();
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(full - 5).expect("cut");
        let report = replay(dir.path(), 0, &schema()).expect("replay");
        assert_eq!(report.records.len(), 1);
        assert!(report.truncated_bytes > 0);
        // The file is now clean: a second replay truncates nothing and appends work.
        let again = replay(dir.path(), 0, &schema()).expect("replay");
        assert_eq!(again.truncated_bytes, 0);
        let mut wal = Wal::open(dir.path(), 1).expect("reopen");
        wal.append(&batch(&["c"])).expect("append");
        assert_eq!(
            replay(dir.path(), 0, &schema())
                .expect("replay")
                .records
                .len(),
            2
        );
    }

    #[test]
    fn bit_flip_in_older_segment_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path(), 1).expect("open");
        wal.append(&batch(&["a"])).expect("append");
        wal.rotate().expect("rotate");
        wal.append(&batch(&["b"])).expect("append");
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).expect("write");
        let err = replay(dir.path(), 0, &schema()).expect_err("corrupt");
        assert!(
            err.to_string().contains("00000000000000000001.wal"),
            "{err}"
        );
    }

    #[test]
    fn checkpointed_segments_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut wal = Wal::open(dir.path(), 1).expect("open");
        wal.append(&batch(&["a"])).expect("append");
        let sealed = wal.rotate().expect("rotate");
        wal.append(&batch(&["b"])).expect("append");
        let report = replay(dir.path(), sealed, &schema()).expect("replay");
        assert_eq!(report.records.len(), 1);
        assert_eq!(report.records[0].segment, 2);
        wal.remove_through(sealed).expect("remove");
        assert_eq!(list_segments(dir.path()).expect("list"), vec![2]);
    }
}
