//! A user-space link shaper: a TCP proxy on loopback that paces each direction to a fixed rate
//! (one token bucket per direction, shared by every connection, as one full-duplex link), so a
//! transfer can be measured as goodput against a known link rate without root or a qdisc, whether
//! the client pushes (C-STORE) or pulls (C-GET).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

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

/// Forward connections on a new loopback port to `target`, pacing each direction to `mbit` Mbit/s.
pub async fn start(target: SocketAddr, mbit: f64) -> anyhow::Result<Shaper> {
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
                    let replies = tokio::spawn(pace(out_read, in_write, bytes_per_s, down));
                    let _ = pace(in_read, out_write, bytes_per_s, up).await;
                    let _ = replies.await;
                }
            });
        }
    });
    Ok(Shaper { port, task })
}

/// Copy `from` to `to`, releasing each chunk when `bucket` allows at `bytes_per_s`; shut `to`
/// down at the end.
async fn pace(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    bytes_per_s: f64,
    bucket: Bucket,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let release = {
            let mut free = bucket.lock().await;
            let now = Instant::now();
            let start = if now.saturating_duration_since(*free) <= SLACK { *free } else { now };
            *free = start + Duration::from_secs_f64(n as f64 / bytes_per_s);
            *free
        };
        tokio::time::sleep_until(release.into()).await;
        to.write_all(&buf[..n]).await?;
    }
    to.shutdown().await
}
