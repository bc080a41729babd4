//! A worker sends one request at a time to one source: it takes the most urgent pending request
//! that source may serve, checks the answer, writes and records verified chunks, and finishes
//! objects whose chunks are all verified.

use super::chunking::{
    chunk_count, chunk_span, create_partial, remove_if_present, write_chunk_durably, Bitmap,
};
use super::error::FetchError;
use super::fetcher::{Connector, FetchEvent};
use super::link::Link;
use super::protocol::{exchange, FetchRequest, FetchResponse, DIGEST_WIRE_BYTES, FRAME_OVERHEAD};
use super::queue::{WorkItem, WorkKind};
use super::shared::Shared;
use crate::digest::Digest;
use crate::store::Store;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Serve pending requests through `link` until the task is aborted.
pub(crate) async fn run_link<C: Connector>(shared: Arc<Shared<C>>, link: Arc<Link>) {
    loop {
        wait_for_work(&shared, &link).await;
        let conn = link.connection(shared.connector.as_ref(), &shared.counters).await;
        let Some(item) = shared.sched().take_for(&link.source) else { continue };
        match item.kind {
            WorkKind::List => fetch_list(&shared, &link, &conn, item).await,
            WorkKind::Chunk(index) => fetch_chunk(&shared, &link, &conn, item, index).await,
        }
    }
}

async fn wait_for_work<C: Connector>(shared: &Shared<C>, link: &Link) {
    loop {
        let notified = shared.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.sched().has_work_for(&link.source) {
            return;
        }
        notified.await;
    }
}

async fn request<C: Connector>(
    shared: &Shared<C>,
    conn: &quinn::Connection,
    req: &FetchRequest,
    max_reply: usize,
) -> Result<FetchResponse, String> {
    match tokio::time::timeout(shared.cfg.request_timeout, exchange(conn, req, max_reply)).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", shared.cfg.request_timeout)),
    }
}

/// A request failed on the way: put it back and wait before using this link again.
async fn transport_failed<C: Connector>(shared: &Shared<C>, link: &Link, item: WorkItem, error: String) {
    shared.counters.request_failures.fetch_add(1, Ordering::Relaxed);
    let delay = link.next_delay();
    tracing::info!(source = %link.source, %error, retry_in_ms = delay.as_millis() as u64, "fetch request failed; retrying");
    shared.requeue(item);
    tokio::time::sleep(delay).await;
}

async fn fetch_list<C: Connector>(
    shared: &Arc<Shared<C>>,
    link: &Link,
    conn: &quinn::Connection,
    item: WorkItem,
) {
    let Some((digest, size, partial)) =
        shared.sched().obj_mut(&item.job, item.obj).map(|o| (o.digest, o.size, o.partial.clone()))
    else {
        return;
    };
    let chunk_size = shared.cfg.chunk_size;
    let expected = chunk_count(size, chunk_size);
    let max_reply = (expected as usize).saturating_mul(DIGEST_WIRE_BYTES).saturating_add(FRAME_OVERHEAD);
    let list = match request(shared, conn, &FetchRequest::ChunkList { digest, chunk_size }, max_reply).await {
        Err(e) => return transport_failed(shared, link, item, e).await,
        Ok(FetchResponse::Refused(reason)) => {
            return shared.source_failed(item, &link.source, reason, true).await
        }
        Ok(FetchResponse::ChunkList(list))
            if list.size == size && list.chunk_size == chunk_size && list.hashes.len() as u64 == expected =>
        {
            list
        }
        Ok(_) => {
            let reason =
                format!("sent a chunk list for {digest} that does not match the manifest ({size} bytes)");
            return shared.source_failed(item, &link.source, reason, false).await;
        }
    };
    link.succeeded();
    link.answered(conn);
    shared.counters.chunk_lists_fetched.fetch_add(1, Ordering::Relaxed);
    let job = item.job.clone();
    let to_store = list.clone();
    let stored = shared
        .blocking(move |db| {
            create_partial(&partial, size).map_err(|source| FetchError::Io {
                op: "create partial file",
                path: partial,
                source,
            })?;
            db.put_list(&job, &digest, &to_store).map_err(FetchError::from)
        })
        .await;
    if let Err(e) = stored {
        return shared.fail_job(&item.job, format!("object {digest}: {e}")).await;
    }
    let n = list.hashes.len() as u32;
    let empty = {
        let mut sched = shared.sched();
        let Some(obj) = sched.obj_mut(&item.job, item.obj) else { return };
        obj.list = Some(list);
        obj.list_source = Some(link.source.clone());
        obj.bitmap = Bitmap::new(n);
        obj.finalizing = n == 0;
        for i in 0..n {
            sched.push(&item.job, item.obj, WorkKind::Chunk(i));
        }
        n == 0
    };
    shared.work.notify_waiters();
    if empty {
        finalize(shared, &item.job, item.obj).await;
    }
}

async fn fetch_chunk<C: Connector>(
    shared: &Arc<Shared<C>>,
    link: &Link,
    conn: &quinn::Connection,
    item: WorkItem,
    index: u32,
) {
    let found = shared.sched().obj_mut(&item.job, item.obj).and_then(|o| {
        let list = o.list.as_ref()?;
        let hash = *list.hashes.get(index as usize)?;
        let (offset, len) = chunk_span(o.size, list.chunk_size, index);
        Some((o.digest, list.chunk_size, hash, offset, len, o.partial.clone(), o.whole))
    });
    let Some((digest, chunk_size, hash, offset, len, partial, whole)) = found else { return };
    if let Some(throttle) = &link.throttle {
        throttle.acquire(len as u64).await;
    }
    let req = FetchRequest::Chunk { digest, chunk_size, index };
    let bytes = match request(shared, conn, &req, len.saturating_add(FRAME_OVERHEAD)).await {
        Err(e) => return transport_failed(shared, link, item, e).await,
        Ok(FetchResponse::Refused(reason)) => {
            return shared.source_failed(item, &link.source, reason, true).await
        }
        Ok(FetchResponse::Chunk(bytes)) => bytes,
        Ok(FetchResponse::ChunkList(_)) => {
            let reason = "answered a chunk request with a chunk list".to_owned();
            return shared.source_failed(item, &link.source, reason, false).await;
        }
    };
    link.succeeded();
    link.answered(conn);
    let keep = match whole {
        true => Keep::Store(shared.store.clone()),
        false => Keep::Partial { path: partial, offset },
    };
    match shared.blocking(move |_| keep_if_valid(&bytes, len, &hash, &keep)).await {
        Ok(true) => {}
        Ok(false) => {
            shared.counters.chunks_corrupt.fetch_add(1, Ordering::Relaxed);
            let reason = format!("chunk {index} of {digest} failed its hash check and was discarded");
            return shared.source_failed(item, &link.source, reason, false).await;
        }
        Err(e) => return shared.fail_job(&item.job, format!("object {digest}: {e}")).await,
    }
    if whole {
        count_chunk(shared, len as u64);
        return object_stored(shared, &item.job, item.obj, digest).await;
    }
    record_chunk(shared, item, index, len as u64).await;
}

/// Count one verified chunk of `len` bytes.
fn count_chunk<C: Connector>(shared: &Shared<C>, len: u64) {
    shared.counters.chunks_fetched.fetch_add(1, Ordering::Relaxed);
    shared.counters.bytes_fetched.fetch_add(len, Ordering::Relaxed);
}

/// Where a verified chunk goes.
enum Keep {
    /// At `offset` of the object's partial file, fsynced.
    Partial { path: PathBuf, offset: u64 },
    /// Into the store as the whole object: the chunk is all of it, and its hash is the object's
    /// digest ([`ObjRun::fetch_whole`](super::queue::ObjRun::fetch_whole)).
    Store(Arc<Store>),
}

/// Keep a chunk as `keep` says, if it has the expected length and hash.
fn keep_if_valid(bytes: &[u8], len: usize, hash: &Digest, keep: &Keep) -> Result<bool, FetchError> {
    if bytes.len() != len || Digest::of_bytes(bytes) != *hash {
        return Ok(false);
    }
    match keep {
        Keep::Store(store) => {
            store.put_verified(bytes, hash)?;
        }
        Keep::Partial { path, offset } => {
            write_chunk_durably(path, *offset, bytes).map_err(|source| FetchError::Io {
                op: "write chunk to",
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(true)
}

/// Mark a durably written chunk as verified, make the bitmap durable, and finish the object if
/// it was the last chunk. Commits are grouped: whoever commits writes every bit set so far, so a
/// worker whose bit was already covered by another's commit skips its own.
async fn record_chunk<C: Connector>(shared: &Arc<Shared<C>>, item: WorkItem, index: u32, len: u64) {
    let (digest, mine, last) = {
        let mut sched = shared.sched();
        let Some(obj) = sched.obj_mut(&item.job, item.obj) else { return };
        obj.bitmap.set(index);
        obj.bitmap_version += 1;
        let last = obj.bitmap.is_complete() && !obj.finalizing;
        obj.finalizing |= last;
        (obj.digest, obj.bitmap_version, last)
    };
    let commit_order = shared.bitmap_commit.lock().await;
    let pending = shared.sched().obj_mut(&item.job, item.obj).and_then(|obj| {
        (obj.persisted_version < mine).then(|| (obj.bitmap.as_bytes().to_vec(), obj.bitmap_version))
    });
    if let Some((bitmap, version)) = pending {
        let job = item.job.clone();
        if let Err(e) =
            shared.blocking(move |db| db.put_bitmap(&job, &digest, &bitmap).map_err(FetchError::from)).await
        {
            drop(commit_order);
            return shared.fail_job(&item.job, format!("object {digest}: {e}")).await;
        }
        if let Some(obj) = shared.sched().obj_mut(&item.job, item.obj) {
            obj.persisted_version = obj.persisted_version.max(version);
        }
    }
    drop(commit_order);
    count_chunk(shared, len);
    if last {
        finalize(shared, &item.job, item.obj).await;
    }
}

/// Check a complete object against its manifest digest and put it into the store; start it
/// over if the whole does not match (the chunk list lied).
pub(crate) async fn finalize<C: Connector>(shared: &Arc<Shared<C>>, job: &str, obj: usize) {
    let Some((digest, size, partial)) =
        shared.sched().obj_mut(job, obj).map(|o| (o.digest, o.size, o.partial.clone()))
    else {
        return;
    };
    let store = shared.store.clone();
    let job_id = job.to_owned();
    let checked = shared
        .blocking(move |db| {
            let io = |op: &'static str| {
                let path = &partial;
                move |source| FetchError::Io { op, path: path.clone(), source }
            };
            let file = std::fs::File::open(&partial).map_err(io("open partial file"))?;
            let (actual, n) = Digest::of_reader(file).map_err(io("read partial file"))?;
            if actual != digest || n != size {
                remove_if_present(&partial).map_err(io("remove partial file"))?;
                db.forget_partial(&job_id, &digest)?;
                return Ok(Some(actual));
            }
            store.put_file(&partial)?;
            remove_if_present(&partial).map_err(io("remove partial file"))?;
            db.forget_partial(&job_id, &digest)?;
            Ok(None)
        })
        .await;
    match checked {
        Ok(None) => object_stored(shared, job, obj, digest).await,
        Ok(Some(actual)) => restart_object(shared, job, obj, digest, actual).await,
        Err(e) => shared.fail_job(job, format!("object {digest}: {e}")).await,
    }
}

async fn object_stored<C: Connector>(shared: &Arc<Shared<C>>, job: &str, obj: usize, digest: Digest) {
    let all_stored = {
        let mut sched = shared.sched();
        let Some(o) = sched.obj_mut(job, obj) else { return };
        o.stored = true;
        o.finalizing = false;
        sched.jobs.get(job).is_some_and(|run| run.all_stored())
    };
    shared.counters.objects_stored.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(%job, %digest, "object verified and stored");
    shared.emit(FetchEvent::ObjectStored { job: job.to_owned(), digest });
    if all_stored {
        shared.complete_job(job).await;
    }
}

async fn restart_object<C: Connector>(
    shared: &Arc<Shared<C>>,
    job: &str,
    obj: usize,
    digest: Digest,
    actual: Digest,
) {
    shared.counters.objects_restarted.fetch_add(1, Ordering::Relaxed);
    let max = shared.cfg.max_failures_per_source;
    let give_up = {
        let mut sched = shared.sched();
        let Some(run) = sched.jobs.get_mut(job) else { return };
        let sources = run.job.sources.clone();
        let Some(o) = run.objects.get_mut(obj) else { return };
        o.restarts += 1;
        o.list = None;
        o.bitmap = Bitmap::new(0);
        o.finalizing = false;
        if let Some(source) = o.list_source.take() {
            let n = o.failures.entry(source.clone()).or_insert(0);
            *n += 1;
            if *n >= max {
                o.excluded.insert(source);
            }
        }
        let give_up = o.restarts > max || sources.iter().all(|s| o.excluded.contains(s));
        if !give_up {
            sched.push(job, obj, WorkKind::List);
        }
        give_up
    };
    tracing::warn!(%job, %digest, %actual, "assembled object does not match its digest; starting it over");
    if give_up {
        let error = format!(
            "object {digest}: the assembled bytes hash to {actual} every time; the sources' copies are \
             damaged, re-verify them (Store::verify) and submit the job again"
        );
        shared.fail_job(job, error).await;
    } else {
        shared.work.notify_waiters();
    }
}
