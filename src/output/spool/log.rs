//! The spool's files: records (length, CRC-32, payload) and the acknowledgement watermark.
//!
//! A record is `length (u32 LE) | CRC-32 of the payload (u32 LE) | payload`, the payload
//! `sequence number (u64 LE) | written at, ms since the epoch (u64 LE) | data stream length
//! (u16 LE) | data stream | document`. The watermark file holds the sequence number below which
//! every record is acknowledged, and its CRC-32.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use crate::output::OutputDocument;

/// Bytes before a record's payload: its length and CRC.
pub(super) const RECORD_HEADER: usize = 8;
/// Bytes of a payload before the data stream name.
pub(super) const PAYLOAD_HEADER: usize = 8 + 8 + 2;
/// No record is larger (a corrupt length is recognised as such).
pub(super) const MAX_RECORD: usize = 256 << 20;
/// Bytes read from a log file at once when documents are taken.
pub(super) const READ_CHUNK: u64 = 1 << 20;
pub(super) const WATERMARK_FILE: &str = "acknowledged";

pub(super) fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("segment-{first_seq:020}.log"))
}

/// Encodes one record.
pub(super) fn encode(out: &mut Vec<u8>, seq: u64, written_ms: u64, doc: &OutputDocument) {
    let ds = doc.data_stream.as_bytes();
    let ds_len = u16::try_from(ds.len()).unwrap_or(u16::MAX);
    let ds = &ds[..usize::from(ds_len)];
    let payload_len = PAYLOAD_HEADER + ds.len() + doc.body.len();
    let start = out.len();
    out.extend_from_slice(&u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&written_ms.to_le_bytes());
    out.extend_from_slice(&ds_len.to_le_bytes());
    out.extend_from_slice(ds);
    out.extend_from_slice(&doc.body);
    let crc = crc32fast::hash(&out[start + RECORD_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A record read back.
pub(super) struct Record {
    pub(super) seq: u64,
    pub(super) written_ms: u64,
    pub(super) doc: OutputDocument,
    /// Bytes it takes in the file.
    pub(super) size: u64,
}

/// Decodes the record at the start of `buf`: `Ok(None)` when `buf` holds only part of it,
/// `Err` when it is corrupt.
pub(super) fn decode(buf: &[u8]) -> Result<Option<Record>, &'static str> {
    if buf.len() < RECORD_HEADER {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(PAYLOAD_HEADER..=MAX_RECORD).contains(&len) {
        return Err("impossible record length");
    }
    if buf.len() < RECORD_HEADER + len {
        return Ok(None);
    }
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let payload = &buf[RECORD_HEADER..RECORD_HEADER + len];
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch");
    }
    let u64_at = |i: usize| {
        let mut b = [0; 8];
        b.copy_from_slice(&payload[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let ds_len = usize::from(u16::from_le_bytes([payload[16], payload[17]]));
    if PAYLOAD_HEADER + ds_len > len {
        return Err("impossible data stream length");
    }
    let data_stream = std::str::from_utf8(&payload[PAYLOAD_HEADER..PAYLOAD_HEADER + ds_len])
        .map_err(|_| "data stream name not UTF-8")?
        .to_owned();
    Ok(Some(Record {
        seq: u64_at(0),
        written_ms: u64_at(8),
        doc: OutputDocument {
            data_stream,
            body: payload[PAYLOAD_HEADER + ds_len..].to_vec(),
        },
        size: (RECORD_HEADER + len) as u64,
    }))
}

impl Record {
    /// The buffer entry of this record: its document, ticketed by sequence number and size in
    /// a bulk body.
    pub(super) fn into_entry(self) -> crate::output::buffer::Entry {
        crate::output::buffer::Entry {
            ticket: crate::output::buffer::Ticket {
                seq: self.seq,
                bytes: self.doc.bulk_len() as u64,
            },
            doc: self.doc,
        }
    }
}

/// What the scan of one file at start found.
pub(super) struct Scanned {
    /// Bytes of whole, valid records.
    pub(super) valid: u64,
    /// Whether something followed them that is not a whole valid record.
    pub(super) corrupt: Option<&'static str>,
    pub(super) records: Vec<(u64, u64, u64, u64)>, // (seq, written_ms, offset, bulk bytes)
}

pub(super) fn scan(file: &File) -> std::io::Result<Scanned> {
    let size = file.metadata()?.len();
    let mut out = Scanned {
        valid: 0,
        corrupt: None,
        records: Vec::new(),
    };
    let mut offset = 0u64;
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64;
    while offset < size {
        let in_buf = (offset - buf_start) as usize;
        match decode(&buf[in_buf.min(buf.len())..]) {
            Ok(Some(r)) => {
                out.records
                    .push((r.seq, r.written_ms, offset, r.doc.bulk_len() as u64));
                offset += r.size;
                out.valid = offset;
            }
            Ok(None) => {
                // Read more: at least the whole record whose header is here.
                let want = READ_CHUNK.max(if buf.len() - in_buf.min(buf.len()) >= 4 {
                    let b = &buf[in_buf..];
                    u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])) + RECORD_HEADER as u64
                } else {
                    0
                });
                let n = want.min(size - offset) as usize;
                if n == 0 || (buf.len() - in_buf.min(buf.len())) >= n {
                    out.corrupt = Some("torn record at the end");
                    break;
                }
                buf = vec![0; n];
                file.read_exact_at(&mut buf, offset)?;
                buf_start = offset;
            }
            Err(why) => {
                out.corrupt = Some(why);
                break;
            }
        }
    }
    Ok(out)
}

pub(super) fn read_watermark(dir: &Path) -> Option<u64> {
    let b = std::fs::read(dir.join(WATERMARK_FILE)).ok()?;
    if b.len() != 12 {
        return None;
    }
    let mut seq = [0; 8];
    seq.copy_from_slice(&b[..8]);
    let crc = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    (crc32fast::hash(&seq) == crc).then(|| u64::from_le_bytes(seq))
}

pub(super) fn write_watermark(dir: &Path, seq: u64) -> std::io::Result<()> {
    let mut b = seq.to_le_bytes().to_vec();
    b.extend_from_slice(&crc32fast::hash(&seq.to_le_bytes()).to_le_bytes());
    let tmp = dir.join(format!("{WATERMARK_FILE}.tmp"));
    std::fs::write(&tmp, &b)?;
    std::fs::rename(&tmp, dir.join(WATERMARK_FILE))
}
