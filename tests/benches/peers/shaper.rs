//! A user-space link shaper: a TCP proxy on loopback that paces each direction to a fixed rate
//! (one token bucket per direction, shared by every connection, as one full-duplex link), so a
//! transfer can be measured as goodput against a known link rate without root or a qdisc, whether
//! the client pushes (C-STORE) or pulls (C-GET). A one-way delay can be added to each direction
//! (a delay line after the pacing, as a long path holds a link's bytes in flight), so a protocol
//! that waits for an answer per object pays the path's round trip as it would between two sites.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore};

/// Bytes read and released at a time.
const CHUNK: usize = 16 * 1024;

/// How late a chunk may be read after the previous one was due and still keep the link's
/// schedule. Timers fire on a 1 ms tick, so each wake-up is up to a tick late, and the next chunk
/// is only read after the previous one is written: restarting the schedule from every late
/// wake-up took up to a tick from each 1.3 ms chunk and held a sender to about half the rate
/// (the kernel's `tbf` does not). Beyond this the link was idle and starts again from now: the
/// largest burst above the rate is this long (about 25 KB at 100 Mbit/s, like a `tbf` burst).
const SLACK: Duration = Duration::from_millis(2);

/// A running shaper; stops when dropped.
pub struct Shaper {
    /// Port clients connect to on 127.0.0.1.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Shaper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One direction of the link: when it is next free to send.
type Bucket = Arc<Mutex<Instant>>;

/// Forward connections on a new loopback port to `target`, pacing each direction to `mbit` Mbit/s
/// and delivering what is paced `delay` later.
pub async fn start(target: SocketAddr, mbit: f64, delay: Duration) -> anyhow::Result<Shaper> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let bytes_per_s = mbit * 1e6 / 8.0;
    let (up, down): (Bucket, Bucket) =
        (Arc::new(Mutex::new(Instant::now())), Arc::new(Mutex::new(Instant::now())));
    let task = tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let (up, down) = (up.clone(), down.clone());
            tokio::spawn(async move {
                if let Ok(outbound) = TcpStream::connect(target).await {
                    let _ = inbound.set_nodelay(true);
                    let _ = outbound.set_nodelay(true);
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let link = Direction { bytes_per_s, delay };
                    let replies = tokio::spawn(pace(out_read, in_write, link, down));
                    let _ = pace(in_read, out_write, link, up).await;
                    let _ = replies.await;
                }
            });
        }
    });
    Ok(Shaper { port, task })
}

/// How one direction of the link carries bytes.
#[derive(Clone, Copy)]
struct Direction {
    bytes_per_s: f64,
    delay: Duration,
}

impl Direction {
    /// Most bytes between being read and being written: twice what the link holds in flight,
    /// and at least a few chunks, so the delay line never slows a sender below the rate.
    fn bytes_in_flight(&self) -> usize {
        let on_the_wire = (self.bytes_per_s * self.delay.as_secs_f64()) as usize;
        (2 * on_the_wire).max(4 * CHUNK)
    }
}

/// Copy `from` to `to`, releasing each chunk when `bucket` allows at the link's rate and handing
/// it to `to` the link's delay after that; shut `to` down at the end.
async fn pace(
    mut from: tokio::net::tcp::OwnedReadHalf,
    to: tokio::net::tcp::OwnedWriteHalf,
    link: Direction,
    bucket: Bucket,
) -> std::io::Result<()> {
    let (in_flight, arriving) = tokio::sync::mpsc::unbounded_channel();
    let room = Arc::new(Semaphore::new(link.bytes_in_flight()));
    let deliver = tokio::spawn(deliver(arriving, to, room.clone()));
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        match room.acquire_many(n as u32).await {
            Ok(permit) => permit.forget(),
            Err(_) => break,
        }
        let release = {
            let mut free = bucket.lock().await;
            let now = Instant::now();
            let start = if now.saturating_duration_since(*free) <= SLACK { *free } else { now };
            *free = start + Duration::from_secs_f64(n as f64 / link.bytes_per_s);
            *free
        };
        tokio::time::sleep_until(release.into()).await;
        if in_flight.send((release + link.delay, buf[..n].to_vec())).is_err() {
            break;
        }
    }
    drop(in_flight);
    deliver.await.map_err(std::io::Error::other)?
}

/// Write each chunk to `to` when it is due, in order, giving its bytes back to `room` once
/// written (so a slow receiver holds the sender back, as it would through a real link); shut
/// `to` down once the sender is done.
async fn deliver(
    mut arriving: tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<u8>)>,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    room: Arc<Semaphore>,
) -> std::io::Result<()> {
    while let Some((due, bytes)) = arriving.recv().await {
        tokio::time::sleep_until(due.into()).await;
        let written = to.write_all(&bytes).await;
        room.add_permits(bytes.len());
        written?;
    }
    to.shutdown().await
}
