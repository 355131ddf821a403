//! API key verification with bounded work: a few threads hash, a short queue waits, the rest
//! are refused at once.
//!
//! Verifying a declared key costs one Argon2 hash (19 MiB and tens of milliseconds with the
//! parameters `apmgate keys new` writes), and anyone who knows a key id can ask for one with a
//! made-up secret. So hashing happens on [`Argon2Pool::WORKERS`]-many threads of its own, each
//! reusing one block buffer while it has work and freeing it when idle; at most
//! [`Argon2Pool::QUEUE`] more requests wait for a worker, and a request beyond that is told
//! "busy" without any work done. Memory for verification is therefore bounded by
//! `WORKERS x m_cost`, whatever the request rate, and CPU by `WORKERS` cores. Results, failures
//! included, are remembered by the caller (see [`super::cache`]), keyed on the whole
//! credential, so an honest agent pays for one hash per cache lifetime.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// One verification waiting for a worker.
struct Job {
    hash: Arc<str>,
    key: String,
    reply: oneshot::Sender<bool>,
    /// Held until the job is done: the queue bound counts jobs in progress too.
    _permit: OwnedSemaphorePermit,
}

/// Why a verification was not done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// Every worker is hashing and the queue is full.
    Saturated,
}

/// The verification threads and their queue.
pub struct Argon2Pool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The workers' end of the queue, kept so that sending works whatever the workers do.
    _queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    slots: Arc<Semaphore>,
}

impl Argon2Pool {
    /// Threads that hash.
    pub const WORKERS: usize = 2;
    /// Verifications that may wait for a thread.
    pub const QUEUE: usize = 14;

    /// Starts the worker threads.
    pub fn start() -> std::io::Result<Self> {
        Self::with_workers(Self::WORKERS)
    }

    fn with_workers(workers: usize) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("apikey-verify-{i}"))
                .spawn(move || work(&rx))?;
        }
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            _queue: rx,
            slots: Arc::new(Semaphore::new(Self::WORKERS + Self::QUEUE)),
        })
    }

    /// Verifies `key` against the PHC `hash`, waiting for a worker if one is free soon;
    /// [`Busy`] at once when the workers and the queue are all taken.
    pub async fn verify(&self, hash: Arc<str>, key: &str) -> Result<bool, Busy> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Saturated)?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            hash,
            key: key.to_string(),
            reply,
            _permit: permit,
        };
        let sent = self
            .jobs
            .lock()
            .ok()
            .and_then(|jobs| jobs.as_ref().map(|tx| tx.send(job).is_ok()))
            .unwrap_or(false);
        if !sent {
            return Err(Busy::Saturated);
        }
        answer.await.map_err(|_| Busy::Saturated)
    }
}

impl Drop for Argon2Pool {
    fn drop(&mut self) {
        // Closing the channel ends the workers once they finish what they hold.
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
    }
}

fn work(jobs: &Mutex<mpsc::Receiver<Job>>) {
    let mut blocks: Vec<Block> = Vec::new();
    loop {
        let next = {
            let Ok(rx) = jobs.lock() else { return };
            // Keep the buffer while work is queued; give it back before sleeping.
            match rx.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::TryRecvError::Empty) => {
                    blocks = Vec::new();
                    rx.recv().ok()
                }
                Err(mpsc::TryRecvError::Disconnected) => None,
            }
        };
        let Some(job) = next else { return };
        if job.reply.is_closed() {
            // The request is gone (its client hung up or it timed out): no work for nobody.
            continue;
        }
        let ok = verify_with_memory(&job.hash, &job.key, &mut blocks);
        let _ = job.reply.send(ok);
    }
}

/// Verifies a secret against an Argon2 PHC hash using `blocks` as the algorithm's memory
/// (grown as the hash's parameters need, never shrunk here).
pub fn verify_with_memory(hash: &str, key: &str, blocks: &mut Vec<Block>) -> bool {
    let Ok(phc) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(phc.algorithm) else {
        return false;
    };
    let Ok(version) = phc
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&phc) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let needed = params.block_count();
    if blocks.len() < needed {
        blocks.resize(needed, Block::default());
    }
    let mut computed = vec![0u8; expected.len()];
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        key.as_bytes(),
        salt,
        &mut computed,
        &mut blocks[..needed],
    );
    hashed.is_ok() && bool::from(computed.ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    fn hash(secret: &str) -> String {
        let salt = SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap();
        let params = Params::new(1024, 1, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(secret.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn agrees_with_the_reference_verifier() {
        let h = hash("right");
        let mut blocks = Vec::new();
        assert!(verify_with_memory(&h, "right", &mut blocks));
        assert!(!verify_with_memory(&h, "wrong", &mut blocks));
        assert!(!verify_with_memory("not a hash", "right", &mut blocks));
        assert_eq!(
            blocks.len(),
            1024,
            "the buffer is the hash's m_cost in blocks"
        );
        assert!(super::super::identity::verify_api_key(&h, "right"));
        assert!(!super::super::identity::verify_api_key(&h, "wrong"));
    }

    fn pending<F: std::future::Future>(f: &mut std::pin::Pin<Box<F>>) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.as_mut().poll(&mut cx).is_pending()
    }

    #[tokio::test]
    async fn refuses_at_once_beyond_workers_and_queue() {
        // No threads: every request stays in its slot, so the bound is seen exactly.
        let stalled = Argon2Pool::with_workers(0).unwrap();
        let h: Arc<str> = hash("k").into();
        let mut held = Vec::new();
        for _ in 0..Argon2Pool::WORKERS + Argon2Pool::QUEUE {
            let mut verdict = Box::pin(stalled.verify(h.clone(), "k"));
            assert!(pending(&mut verdict), "queued");
            held.push(verdict);
        }
        assert_eq!(stalled.verify(h.clone(), "k").await, Err(Busy::Saturated));

        let pool = Argon2Pool::start().unwrap();
        assert_eq!(pool.verify(h.clone(), "k").await, Ok(true));
        assert_eq!(pool.verify(h, "not k").await, Ok(false));
    }
}
