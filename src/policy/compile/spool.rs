//! Compiles `[spool]`: the durable write-ahead log between intake and output.

use std::time::Duration;

use super::{Compiler, FileUse};
use crate::policy::ast;
use crate::policy::compiled::*;
use crate::policy::diagnostics::{Code, Diagnostic};

/// Defaults: 1 GiB held, fsync each batch, 64 MiB files.
const DEFAULT_MAX_BYTES: u64 = 1 << 30;
const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// A segment must hold at least a few records of the largest size the intake produces.
const MIN_SEGMENT_BYTES: u64 = 1 << 20;

impl Compiler<'_> {
    /// `None` with an output that writes to disk itself (file) or keeps nothing (discard).
    pub(super) fn spool(
        &mut self,
        s: &ast::Spool,
        output: &OutputSettings,
    ) -> Option<SpoolSettings> {
        let why = match output {
            OutputSettings::Elasticsearch(_) => None,
            OutputSettings::File(_) => {
                Some("the file output writes accepted documents to disk itself")
            }
            OutputSettings::Discard => Some("the discard output keeps nothing"),
        };
        if let Some(why) = why {
            self.push(
                Diagnostic::new(
                    Code::UnusedSetting,
                    format!("`[spool]` has no effect: {why}"),
                    s.path.span.clone(),
                    "not used",
                )
                .with_help("the spool protects documents on their way to Elasticsearch; remove `[spool]` or use `[output.elasticsearch]`"),
            );
            return None;
        }
        let path = self.path(&s.path.value);
        self.facts
            .files
            .push((path.clone(), s.path.span.clone(), FileUse::SpoolDirectory));
        let max_bytes = self.positive_size(&s.max_bytes, DEFAULT_MAX_BYTES);
        let mut segment_bytes = self.positive_size(&s.segment_bytes, DEFAULT_SEGMENT_BYTES);
        if let Some(v) = &s.segment_bytes {
            if segment_bytes < MIN_SEGMENT_BYTES {
                self.push(
                    Diagnostic::new(
                        Code::ValueOutOfRange,
                        "`segment_bytes` must be at least 1MiB",
                        v.span.clone(),
                        "too small",
                    )
                    .with_help("leave it out for 64MiB"),
                );
                segment_bytes = MIN_SEGMENT_BYTES;
            }
        }
        let interval = self.positive_duration(&s.fsync_interval, DEFAULT_FSYNC_INTERVAL);
        let fsync_interval = match s.fsync.as_ref().map(|f| f.value) {
            Some(ast::FsyncMode::Interval) => Some(interval),
            Some(ast::FsyncMode::Batch) | None => {
                if let Some(i) = &s.fsync_interval {
                    self.push(
                        Diagnostic::new(
                            Code::UnusedSetting,
                            "`fsync_interval` is only read with `fsync = \"interval\"`",
                            i.span.clone(),
                            "not used",
                        )
                        .with_help("add `fsync = \"interval\"`, or remove `fsync_interval`"),
                    );
                }
                None
            }
        };
        Some(SpoolSettings {
            path,
            max_bytes,
            fsync_interval,
            segment_bytes,
        })
    }
}
