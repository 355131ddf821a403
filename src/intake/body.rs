//! Request bodies: compression detected as APM Server does, and a cap on decompressed bytes.
//!
//! `Content-Encoding: gzip` means gzip and `deflate` means zlib (RFC 1950), as in Go's readers;
//! any other or no value sniffs the first two bytes: `1f 8b` is gzip, a low nibble of 8 in the
//! first byte is zlib, anything else is plain. The decompressed stream is capped at
//! `max_body_size`, which APM Server lacks (a small gzip bomb can expand to gigabytes).

use std::io;

use async_compression::tokio::bufread::{GzipDecoder, ZlibDecoder};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};

/// Buffer between a decompressor and the line reader. Small on purpose: every stream in flight
/// holds one (besides the decompressor's own 32 KiB window), so it sets memory per concurrent
/// decoder; plain bodies need none, their frames are read in place.
const DECOMPRESSED_BUFFER: usize = 8 * 1024;

/// A body that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Compressed data is corrupt (`data decoding error: ...`).
    #[error("data decoding error: {0}")]
    Decode(String),
    /// The decompressed body passed the limit.
    #[error("request body too large: more than {0} bytes after decompression (max_body_size)")]
    TooLarge(u64),
    /// The transport failed (client went away, read timeout).
    #[error("data read error: {0}")]
    Read(String),
    /// The intake's memory budget (`max_intake_memory`) could not hold what the request needs
    /// next.
    #[error("{MEMORY_BUDGET_SPENT}")]
    MemoryBudget,
}

/// What a request refused for the intake's memory budget is told (with 503 and `Retry-After`).
pub const MEMORY_BUDGET_SPENT: &str =
    "cannot handle stream: the intake's memory budget is spent (max_intake_memory), retry later";

impl BodyError {
    /// The message reported to the client.
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Classifies an I/O error from the body pipeline: transport errors are marked with
    /// [`TransportError`]; anything else comes from a decompressor.
    pub fn from_io(e: io::Error) -> Self {
        if let Some(t) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TransportError>())
        {
            return BodyError::Read(t.0.clone());
        }
        BodyError::Decode(e.to_string())
    }
}

/// Marks errors of the transport under the body (client gone, read timeout), so they are not
/// mistaken for corrupt compressed data.
#[derive(Debug)]
pub struct TransportError(pub String);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TransportError {}

/// How a body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Plain NDJSON.
    Identity,
    /// gzip.
    Gzip,
    /// zlib (what `deflate` means in HTTP, and in Go).
    Zlib,
}

fn zlib_header_ok(b: [u8; 2]) -> bool {
    b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

/// The decoded body: a buffered reader of NDJSON.
pub type DecodedBody = Box<dyn AsyncBufRead + Unpin + Send>;

/// Wraps a raw body in the right decoder, checking the compression header first so a bad one
/// is reported as APM Server reports it (`gzip: invalid header`). The raw body is read in
/// place (no copy): `raw` is already buffered (the request's frames).
pub async fn decode<R>(
    mut raw: R,
    content_encoding: Option<&str>,
) -> Result<(DecodedBody, Encoding), BodyError>
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    // The first two bytes, without consuming them when they arrive together (the usual case).
    let mut head = [0u8; 2];
    let mut got = 0;
    let mut split_head = false;
    loop {
        let chunk = raw.fill_buf().await.map_err(BodyError::from_io)?;
        if chunk.is_empty() {
            break;
        }
        if got == 0 && chunk.len() >= 2 {
            head.copy_from_slice(&chunk[..2]);
            got = 2;
            break;
        }
        // A one-byte frame: take it and look at the next.
        head[got] = chunk[0];
        got += 1;
        raw.consume(1);
        split_head = true;
        if got == 2 {
            break;
        }
    }
    let declared = content_encoding.map(|v| v.trim().to_ascii_lowercase());
    let encoding = match declared.as_deref() {
        Some("gzip") => {
            if got == 2 && head != [0x1f, 0x8b] || got == 1 {
                return Err(BodyError::Decode("gzip: invalid header".into()));
            }
            Encoding::Gzip
        }
        Some("deflate") => {
            if got == 2 && !zlib_header_ok(head) || got == 1 {
                return Err(BodyError::Decode("zlib: invalid header".into()));
            }
            Encoding::Zlib
        }
        _ if got == 2 && head == [0x1f, 0x8b] => Encoding::Gzip,
        _ if got >= 1 && head[0] & 0x0f == 8 => {
            if got < 2 || !zlib_header_ok(head) {
                return Err(BodyError::Decode("zlib: invalid header".into()));
            }
            Encoding::Zlib
        }
        _ => Encoding::Identity,
    };
    if got == 0 {
        return Ok((Box::new(tokio::io::empty()), Encoding::Identity));
    }
    // Bytes consumed while sniffing (only when they came one per frame) go back in front.
    let prefix = std::io::Cursor::new(if split_head {
        head[..got].to_vec()
    } else {
        Vec::new()
    });
    let stream = prefix.chain(raw);
    let decoded: DecodedBody = match encoding {
        Encoding::Identity => Box::new(stream),
        Encoding::Gzip => {
            let mut d = GzipDecoder::new(stream);
            d.multiple_members(true);
            Box::new(BufReader::with_capacity(DECOMPRESSED_BUFFER, d))
        }
        Encoding::Zlib => Box::new(BufReader::with_capacity(
            DECOMPRESSED_BUFFER,
            ZlibDecoder::new(stream),
        )),
    };
    Ok((decoded, encoding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Reads a body delivered whole and delivered one byte per frame; both must agree.
    async fn read_all(body: &[u8], enc: Option<&str>, max: u64) -> Result<Vec<u8>, BodyError> {
        let whole = read_framed(body, enc, max, body.len().max(1)).await;
        let bytewise = read_framed(body, enc, max, 1).await;
        match (&whole, &bytewise) {
            // The decompressor words a corrupt stream differently depending on where it
            // stopped; the kind of error must not change.
            (Err(a), Err(b)) => assert_eq!(
                std::mem::discriminant(a),
                std::mem::discriminant(b),
                "one-byte frames change the result: {a} / {b}"
            ),
            _ => assert_eq!(whole, bytewise, "one-byte frames change the result"),
        }
        whole
    }

    async fn read_framed(
        body: &[u8],
        enc: Option<&str>,
        max: u64,
        frame: usize,
    ) -> Result<Vec<u8>, BodyError> {
        let raw = BufReader::with_capacity(frame, std::io::Cursor::new(body.to_vec()));
        let (r, _) = decode(raw, enc).await?;
        let mut lines = crate::intake::lines::LineReader::new(r, 1 << 30, max);
        let mut out = Vec::new();
        let mut line = Vec::new();
        while lines.next(&mut line).await? != crate::intake::lines::Line::Eof {
            out.extend_from_slice(&line);
            out.push(b'\n');
        }
        Ok(out)
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[tokio::test]
    async fn sniffs_with_or_without_content_encoding() {
        let data = b"{\"metadata\":{}}\n".repeat(100);
        assert_eq!(
            read_all(&gzip(&data), Some("gzip"), 1 << 20).await.unwrap(),
            data
        );
        assert_eq!(read_all(&gzip(&data), None, 1 << 20).await.unwrap(), data);
        assert_eq!(
            read_all(&zlib(&data), Some("deflate"), 1 << 20)
                .await
                .unwrap(),
            data
        );
        assert_eq!(
            read_all(&zlib(&data), Some("identity"), 1 << 20)
                .await
                .unwrap(),
            data
        );
        assert_eq!(read_all(&data, None, 1 << 20).await.unwrap(), data);
        assert_eq!(read_all(b"", Some("gzip"), 1 << 20).await.unwrap(), b"");
    }

    #[tokio::test]
    async fn bad_headers_are_reported_as_apm_server_does() {
        let data = b"{\"metadata\":{}}\n";
        assert_eq!(
            read_all(data, Some("gzip"), 100)
                .await
                .unwrap_err()
                .message(),
            "data decoding error: gzip: invalid header"
        );
        assert_eq!(
            read_all(data, Some("deflate"), 100)
                .await
                .unwrap_err()
                .message(),
            "data decoding error: zlib: invalid header"
        );
    }

    #[tokio::test]
    async fn a_gzip_bomb_stops_at_the_cap() {
        let bomb = gzip(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 20_000);
        assert_eq!(
            read_all(&bomb, None, 1 << 20).await.unwrap_err(),
            BodyError::TooLarge(1 << 20)
        );
    }

    #[tokio::test]
    async fn corrupt_gzip_is_a_decoding_error() {
        let mut g = gzip(&b"x".repeat(1000));
        let n = g.len();
        g[n / 2] ^= 0xff;
        g[n / 2 + 1] ^= 0xff;
        let err = read_all(&g, None, 1 << 20).await.unwrap_err();
        assert!(err.message().starts_with("data decoding error: "), "{err}");
    }
}
