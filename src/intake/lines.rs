//! NDJSON framing with a per-line limit.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::body::BodyError;

/// What `next` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A line (without its newline) is in the buffer.
    Complete,
    /// A blank line (skipped by callers).
    Empty,
    /// The line was longer than the limit: the buffer holds its first `limit` bytes, the rest
    /// of it has been skipped.
    TooLarge,
    /// End of the stream.
    Eof,
}

/// Reads lines of at most `limit` bytes from a buffered reader.
pub struct LineReader<R> {
    reader: R,
    limit: usize,
    bytes: u64,
    max_total: u64,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    /// A reader with a per-line limit and a limit on the whole stream.
    pub fn new(reader: R, limit: usize, max_total: u64) -> Self {
        Self {
            reader,
            limit,
            bytes: 0,
            max_total,
        }
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// Reads the next line into `buf` (cleared first).
    pub async fn next(&mut self, buf: &mut Vec<u8>) -> Result<Line, BodyError> {
        self.next_within(buf, |_| true).await
    }

    /// Reads the next line into `buf` (cleared first), asking `room` before `buf` grows: it is
    /// given the capacity the buffer is about to have, and a `false` ends the read with
    /// [`BodyError::MemoryBudget`] (the intake's memory budget is spent). The buffer grows by
    /// doubling, up to the line limit.
    pub async fn next_within(
        &mut self,
        buf: &mut Vec<u8>,
        mut room: impl FnMut(usize) -> bool,
    ) -> Result<Line, BodyError> {
        buf.clear();
        let mut too_large = false;
        let mut saw_any = false;
        loop {
            let chunk = self.reader.fill_buf().await.map_err(BodyError::from_io)?;
            if chunk.is_empty() {
                return Ok(if too_large {
                    Line::TooLarge
                } else if !saw_any {
                    Line::Eof
                } else {
                    classify(buf)
                });
            }
            saw_any = true;
            let (take, done) = match memchr(chunk) {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            if !too_large {
                let left = self.limit - buf.len();
                let add = take.min(left);
                let need = buf.len() + add;
                if need > buf.capacity() {
                    let capacity = need.next_power_of_two().clamp(need, self.limit.max(need));
                    if !room(capacity) {
                        return Err(BodyError::MemoryBudget);
                    }
                    buf.reserve_exact(capacity - buf.len());
                }
                buf.extend_from_slice(&chunk[..add]);
                too_large = take > left;
            }
            let consumed = if done { take + 1 } else { take };
            self.reader.consume(consumed);
            self.bytes += consumed as u64;
            if self.bytes > self.max_total {
                return Err(BodyError::TooLarge(self.max_total));
            }
            if done {
                return Ok(if too_large {
                    Line::TooLarge
                } else {
                    classify(buf)
                });
            }
        }
    }
}

fn classify(buf: &mut Vec<u8>) -> Line {
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        Line::Empty
    } else {
        Line::Complete
    }
}

/// The first newline (SIMD search: this runs over every byte of every body).
fn memchr(haystack: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', haystack)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], limit: usize) -> Vec<(Line, String)> {
        // A tiny buffer exercises lines split across reads.
        let reader = tokio::io::BufReader::with_capacity(3, input);
        let mut lines = LineReader::new(reader, limit, u64::MAX);
        let mut out = Vec::new();
        let mut buf = Vec::new();
        loop {
            let l = lines.next(&mut buf).await.unwrap();
            out.push((l, String::from_utf8_lossy(&buf).into_owned()));
            if l == Line::Eof {
                return out;
            }
        }
    }

    #[tokio::test]
    async fn splits_lines_skips_blank_and_truncates_long_ones() {
        let got = all(b"{\"a\":1}\n\n0123456789abc\r\n{\"b\":2}", 10).await;
        assert_eq!(
            got,
            vec![
                (Line::Complete, "{\"a\":1}".into()),
                (Line::Empty, String::new()),
                (Line::TooLarge, "0123456789".into()),
                (Line::Complete, "{\"b\":2}".into()),
                (Line::Eof, String::new()),
            ]
        );
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_fits() {
        let got = all(b"0123456789\n", 10).await;
        assert_eq!(got[0], (Line::Complete, "0123456789".into()));
    }

    #[tokio::test]
    async fn the_line_buffer_asks_before_it_grows_and_doubles_up_to_the_limit() {
        let input = vec![b'x'; 5000];
        let mut lines = LineReader::new(&input[..], 4500, u64::MAX);
        let mut buf = Vec::new();
        let mut asked = Vec::new();
        let read = lines
            .next_within(&mut buf, |capacity| {
                asked.push(capacity);
                true
            })
            .await
            .unwrap();
        assert_eq!(read, Line::TooLarge);
        assert_eq!(buf.len(), 4500);
        assert_eq!(
            asked.last(),
            Some(&4500),
            "never more than the limit: {asked:?}"
        );
        assert!(asked.windows(2).all(|w| w[1] > w[0]), "{asked:?}");

        let mut lines = LineReader::new(&input[..], 4500, u64::MAX);
        let refused = lines.next_within(&mut Vec::new(), |_| false).await;
        assert_eq!(refused, Err(BodyError::MemoryBudget));
    }
}
