//! The spool's own tests: order, replay from the watermark, the memory tail, torn tails, a full
//! spool.

use super::*;

fn settings(dir: &Path, max_bytes: u64, segment_bytes: u64) -> SpoolSettings {
    SpoolSettings {
        path: dir.to_path_buf(),
        max_bytes,
        fsync_interval: None,
        segment_bytes,
    }
}

fn doc(i: usize) -> OutputDocument {
    OutputDocument {
        data_stream: "traces-apm-default".into(),
        body: format!(r#"{{"n":{i},"pad":"{}"}}"#, "x".repeat(i % 300)).into_bytes(),
    }
}

/// Takes everything the spool still holds, at most `max_bytes` a take, after `first`.
fn drain(spool: &Spool, max_bytes: u64, first: Vec<Entry>) -> Vec<Entry> {
    let mut all = first;
    while spool.stats().queued_docs > 0 {
        all.extend(spool.try_pop(max_bytes));
    }
    all
}

#[tokio::test]
async fn what_is_pushed_is_read_back_in_order_and_replayed_until_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1 << 30, 64 << 10);
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(&s, metrics.clone()).unwrap();
    for b in 0..100 {
        spool
            .push((b * 50..b * 50 + 50).map(doc).collect(), Duration::ZERO)
            .await
            .unwrap();
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() > 2,
        "several files"
    );
    let taken = spool.pop(64 << 10).await.unwrap();
    assert!(taken.len() > 1);
    for (i, e) in taken.iter().enumerate() {
        assert_eq!(e.doc, doc(i));
        assert_eq!(e.ticket.seq, i as u64);
    }
    // Acknowledge all but the first: the watermark stays at 0.
    let tickets: Vec<Ticket> = taken[1..].iter().map(|e| e.ticket).collect();
    spool.ack(&tickets);
    drop(spool);
    let again = Spool::open(&s, metrics.clone()).unwrap();
    assert_eq!(
        again.stats().queued_docs,
        5000,
        "everything from the watermark"
    );
    let first = again.pop(1).await.unwrap();
    assert_eq!(first[0].doc, doc(0));
    // Acknowledge everything taken in order: files below the watermark go.
    let all = drain(&again, 1 << 20, first);
    assert_eq!(all.len(), 5000);
    assert!(all.iter().enumerate().all(|(i, e)| e.doc == doc(i)));
    again.ack(&all.iter().map(|e| e.ticket).collect::<Vec<_>>());
    assert_eq!(again.stats().used_bytes(), 0);
    drop(again);
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, 2, "the last file and the watermark");
    let last = Spool::open(&s, metrics).unwrap();
    assert_eq!(last.stats().queued_docs, 0);
    last.push(vec![doc(1)], Duration::ZERO).await.unwrap();
    assert_eq!(
        last.pop(1).await.unwrap()[0].ticket.seq,
        5000,
        "numbering goes on"
    );
}

#[tokio::test]
async fn a_reader_behind_the_memory_tail_reads_the_files_then_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1 << 30, 64 << 10);
    let mut spool = Spool::open(&s, Arc::new(Metrics::default())).unwrap();
    spool.tail_limit = 4 << 10;
    for b in 0..40 {
        spool
            .push((b * 25..b * 25 + 25).map(doc).collect(), Duration::ZERO)
            .await
            .unwrap();
    }
    let mut all = drain(&spool, 3000, Vec::new());
    assert_eq!(all.len(), 1000);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, e)| e.doc == doc(i) && e.ticket.seq == i as u64)
    );
    // Interleaved: write, take some, write more.
    for b in 40..60 {
        spool
            .push((b * 25..b * 25 + 25).map(doc).collect(), Duration::ZERO)
            .await
            .unwrap();
        all.extend(spool.try_pop(1500));
    }
    let all = drain(&spool, 1 << 20, all);
    assert_eq!(all.len(), 1500);
    assert!(all.iter().enumerate().all(|(i, e)| e.doc == doc(i)));
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_everything_before_it_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1 << 30, 1 << 20);
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(&s, metrics.clone()).unwrap();
    spool
        .push((0..10).map(doc).collect(), Duration::ZERO)
        .await
        .unwrap();
    drop(spool);
    let path = segment_path(dir.path(), 0);
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    let mut torn = Vec::new();
    encode(&mut torn, 10, 0, &doc(10));
    f.write_all(&torn[..torn.len() / 2]).unwrap();
    drop(f);
    let again = Spool::open(&s, metrics.clone()).unwrap();
    assert_eq!(again.stats().queued_docs, 10);
    assert!(
        metrics
            .render()
            .lines()
            .any(|l| l == "apmgate_spool_corrupt_records_total 1"),
        "{}",
        metrics.render()
    );
    again.push(vec![doc(10)], Duration::ZERO).await.unwrap();
    let all = again.try_pop(u64::MAX);
    assert_eq!(all.len(), 11);
    assert_eq!(
        all[10].doc,
        doc(10),
        "appends after the cut read back whole"
    );
}

#[tokio::test]
async fn full_spool_refuses_then_accepts_after_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let one = doc(1).bulk_len() as u64;
    let s = settings(dir.path(), one * 4, 1 << 20);
    let spool = Spool::open(&s, Arc::new(Metrics::default())).unwrap();
    spool
        .push(vec![doc(1), doc(1), doc(1)], Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        spool
            .push(vec![doc(1), doc(1)], Duration::from_millis(5))
            .await,
        Err(PublishError::QueueFull)
    );
    let taken = spool.pop(u64::MAX).await.unwrap();
    spool.ack(&taken.iter().map(|e| e.ticket).collect::<Vec<_>>());
    spool
        .push(vec![doc(1), doc(1)], Duration::ZERO)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pushes_are_written_whole_numbered_without_gaps_and_replayed() {
    let dir = tempfile::tempdir().unwrap();
    // Small files: rounds of the writer rotate often.
    let s = settings(dir.path(), 1 << 30, 16 << 10);
    let metrics = Arc::new(Metrics::default());
    let spool = Arc::new(Spool::open(&s, metrics.clone()).unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let spool = spool.clone();
            tokio::spawn(async move {
                for b in 0..50 {
                    let i = (t * 50 + b) * 3;
                    spool
                        .push((i..i + 3).map(doc).collect(), Duration::ZERO)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() > 5,
        "rotated"
    );
    let check = |all: &[Entry]| {
        assert_eq!(all.len(), 2400);
        let mut seen = vec![false; 2400];
        let mut last = vec![None; 16];
        for (i, e) in all.iter().enumerate() {
            assert_eq!(e.ticket.seq, i as u64, "numbered in order, no gap");
            let body = String::from_utf8(e.doc.body.clone()).unwrap();
            let n: usize = body[5..body.find(',').unwrap()].parse().unwrap();
            assert_eq!(e.doc, doc(n));
            assert!(!std::mem::replace(&mut seen[n], true), "{n} twice");
            // One task's batches in the order it pushed them, each batch whole.
            let (t, k) = (n / 150, n % 150);
            assert!(
                last[t].is_none_or(|p| p + 1 == k),
                "task {t}: {last:?} then {k}"
            );
            last[t] = Some(k);
        }
    };
    let all = drain(&spool, 5000, Vec::new());
    check(&all);
    drop(all);
    drop(spool);
    let again = Spool::open(&s, metrics).unwrap();
    let all = drain(&again, 1 << 20, Vec::new());
    check(&all);
}

#[tokio::test]
async fn a_failed_write_refuses_its_batch_and_leaves_no_gap() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1 << 30, 1 << 20);
    let metrics = Arc::new(Metrics::default());
    let spool = Spool::open(&s, metrics.clone()).unwrap();
    spool
        .push((0..3).map(doc).collect(), Duration::ZERO)
        .await
        .unwrap();
    // The file can no longer be written (a read-only handle stands for a failing disk).
    let path = segment_path(dir.path(), 0);
    let writable = std::mem::replace(
        &mut spool.lock().segments.back_mut().unwrap().file,
        File::open(&path).unwrap(),
    );
    let before = spool.stats();
    assert_eq!(
        spool.push((3..6).map(doc).collect(), Duration::ZERO).await,
        Err(PublishError::QueueFull)
    );
    assert_eq!(
        spool.stats(),
        before,
        "nothing of the refused batch counted"
    );
    assert!(
        metrics
            .render()
            .lines()
            .any(|l| l == "apmgate_spool_write_failures_total 1"),
        "{}",
        metrics.render()
    );
    spool.lock().segments.back_mut().unwrap().file = writable;
    spool
        .push((6..9).map(doc).collect(), Duration::ZERO)
        .await
        .unwrap();
    let all = spool.try_pop(u64::MAX);
    let expect = [0, 1, 2, 6, 7, 8];
    assert_eq!(all.len(), 6);
    for (i, e) in all.iter().enumerate() {
        assert_eq!((e.ticket.seq, &e.doc), (i as u64, &doc(expect[i])));
    }
    drop(all);
    drop(spool);
    let again = Spool::open(&s, metrics).unwrap();
    let all = again.try_pop(u64::MAX);
    assert_eq!(all.len(), 6);
    for (i, e) in all.iter().enumerate() {
        assert_eq!((e.ticket.seq, &e.doc), (i as u64, &doc(expect[i])));
    }
}
