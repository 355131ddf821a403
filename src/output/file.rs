//! The file output: the `_bulk` NDJSON the Elasticsearch output would send, written to a local
//! file, so a file replays into Elasticsearch with one
//! `curl -H 'Content-Type: application/x-ndjson' --data-binary @FILE http://es:9200/_bulk`.
//!
//! A single writer task owns the file; batches reach it through a bounded channel, which is the
//! buffer and the backpressure. Files rotate by size: `events.ndjson` becomes
//! `events.ndjson.1`, older ones shift up, and at most `keep_files` rotated files are kept.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

use super::{Output, OutputDocument, PublishError, PublishFuture};
use crate::policy::compiled::FileOutputSettings;

/// Batches the channel holds before `publish` waits.
const CHANNEL_BATCHES: usize = 64;

enum Command {
    Batch(Vec<OutputDocument>),
    /// New rotation settings (a reload that keeps the path).
    Rotation {
        rotate_bytes: u64,
        keep_files: u64,
    },
    /// Open the file again at its path (after it was moved away by log rotation).
    Reopen,
    Close(oneshot::Sender<u64>),
}

/// The file output.
pub struct FileOutput {
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    queue_timeout: Duration,
}

/// Errors opening the output.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the file output `{path}`: {source}")]
pub struct OpenError {
    path: String,
    source: std::io::Error,
}

impl FileOutput {
    /// Opens (appends to) the file and starts the writer task.
    pub async fn open(
        settings: &FileOutputSettings,
        queue_timeout: Duration,
    ) -> Result<Self, OpenError> {
        let err = |source| OpenError {
            path: settings.path.display().to_string(),
            source,
        };
        if let Some(dir) = settings.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(err)?;
        }
        let file = open_append(&settings.path).await.map_err(err)?;
        let size = file.metadata().await.map_err(err)?.len();
        let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
        let writer = Writer {
            path: settings.path.clone(),
            file: tokio::io::BufWriter::new(file),
            size,
            rotate_bytes: settings.rotate_bytes,
            keep_files: settings.keep_files,
            failed: 0,
        };
        tokio::spawn(writer.run(rx));
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            queue_timeout,
        })
    }

    fn sender(&self) -> Option<mpsc::Sender<Command>> {
        self.tx.lock().ok().and_then(|g| g.clone())
    }

    /// Rotates by `settings` from the next batch on (the path stays the one opened).
    pub async fn set_rotation(&self, settings: &FileOutputSettings) {
        if let Some(tx) = self.sender() {
            let _ = tx
                .send(Command::Rotation {
                    rotate_bytes: settings.rotate_bytes,
                    keep_files: settings.keep_files,
                })
                .await;
        }
    }

    /// Opens the file again at its path before the next batch (log rotation by another
    /// program: the moved file is let go, a new one created).
    pub async fn reopen(&self) {
        if let Some(tx) = self.sender() {
            let _ = tx.send(Command::Reopen).await;
        }
    }
}

async fn open_append(path: &Path) -> std::io::Result<tokio::fs::File> {
    tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}

impl Output for FileOutput {
    fn publish(&self, batch: Vec<OutputDocument>) -> PublishFuture<'_> {
        Box::pin(async move {
            let tx = self.sender().ok_or(PublishError::Closed)?;
            match tokio::time::timeout(self.queue_timeout, tx.reserve()).await {
                Ok(Ok(permit)) => {
                    permit.send(Command::Batch(batch));
                    Ok(())
                }
                Ok(Err(_)) => Err(PublishError::Closed),
                Err(_) => Err(PublishError::QueueFull),
            }
        })
    }

    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send + '_>> {
        Box::pin(async move {
            let tx = self.tx.lock().ok().and_then(|mut g| g.take());
            let Some(tx) = tx else { return 0 };
            let (done, wait) = oneshot::channel();
            if tx.send(Command::Close(done)).await.is_err() {
                return 0;
            }
            wait.await.unwrap_or(0)
        })
    }
}

struct Writer {
    path: PathBuf,
    file: tokio::io::BufWriter<tokio::fs::File>,
    size: u64,
    rotate_bytes: u64,
    keep_files: u64,
    failed: u64,
}

/// The writer's batch buffer starts at this size (a batch of agent events fits).
const BATCH_BUFFER_BYTES: usize = 64 * 1024;

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let mut buf = Vec::with_capacity(BATCH_BUFFER_BYTES);
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Batch(batch) => {
                    buf.clear();
                    for doc in &batch {
                        doc.write_bulk(&mut buf);
                    }
                    if let Err(e) = self.write(&buf).await {
                        self.failed += batch.len() as u64;
                        tracing::error!(error = %e, documents = batch.len(), path = %self.path.display(), "file output write failed");
                    }
                }
                Command::Rotation {
                    rotate_bytes,
                    keep_files,
                } => {
                    self.rotate_bytes = rotate_bytes;
                    self.keep_files = keep_files;
                }
                Command::Reopen => {
                    if let Err(e) = self.reopen().await {
                        tracing::error!(error = %e, path = %self.path.display(), "file output cannot open its file again; writing on to the file it had");
                    }
                }
                Command::Close(done) => {
                    rx.close();
                    // Batches accepted before the close are still in the channel: write them.
                    while let Ok(cmd) = rx.try_recv() {
                        let Command::Batch(batch) = cmd else { continue };
                        buf.clear();
                        for doc in &batch {
                            doc.write_bulk(&mut buf);
                        }
                        if self.write(&buf).await.is_err() {
                            self.failed += batch.len() as u64;
                        }
                    }
                    if let Err(e) = self.file.flush().await {
                        tracing::error!(error = %e, "file output flush failed");
                    }
                    let _ = done.send(self.failed);
                    return;
                }
            }
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + bytes.len() as u64 > self.rotate_bytes {
            self.rotate().await?;
        }
        self.file.write_all(bytes).await?;
        // Each accepted batch reaches the kernel before the next is taken: a crash of the
        // process loses nothing that was written.
        self.file.flush().await?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    async fn reopen(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        let file = open_append(&self.path).await?;
        self.size = file.metadata().await?.len();
        self.file = tokio::io::BufWriter::new(file);
        Ok(())
    }

    async fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        let name = |i: u64| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.keep_files == 0 {
            tokio::fs::remove_file(&self.path).await?;
        } else {
            let _ = tokio::fs::remove_file(name(self.keep_files)).await;
            for i in (1..self.keep_files).rev() {
                let from = name(i);
                if tokio::fs::try_exists(&from).await.unwrap_or(false) {
                    tokio::fs::rename(&from, name(i + 1)).await?;
                }
            }
            tokio::fs::rename(&self.path, name(1)).await?;
        }
        self.file = tokio::io::BufWriter::new(open_append(&self.path).await?);
        self.size = 0;
        tracing::info!(path = %self.path.display(), "file output rotated");
        Ok(())
    }
}
