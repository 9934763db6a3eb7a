//! The company directory: every company Intercom has, read with the scroll API (one call per
//! page) and streamed page by page, so that what a page allows (the PUTs of the ids it brings,
//! reconcile's comparison) starts as soon as it arrives instead of after the whole scroll.
//!
//! Contract: pages arrive in scroll order, then the stream ends; a read that fails ends it
//! with that error as its last item (a scroll cannot be resumed, only restarted). At most
//! [`READ_AHEAD`] pages wait unread: the scroll pauses while they do, each pause as long as the
//! consumer takes for one page — far below the minute after which Intercom expires an idle
//! scroll.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::intercom::{ApiError, Client, Company};

/// Pages read ahead of their consumer.
pub const READ_AHEAD: usize = 16;
/// How long to wait for a scroll another run left open to expire (Intercom: after 1 idle minute).
const STALE_SCROLL_WAIT: Duration = Duration::from_secs(75);
/// Pause between attempts to open a scroll while another one is open.
const STALE_SCROLL_POLL: Duration = Duration::from_secs(3);

/// One page of the directory, or the error that ended it.
pub type DirectoryPage = Result<Vec<Company>, ApiError>;

/// Starts scrolling the company directory on `runtime`. With `wait_for_open_scroll`, a scroll
/// that another run left open (e.g. one killed mid-scroll: Intercom allows one per app) is
/// waited out, polling until it expires; without, that is an error at once.
pub fn stream(
    client: &Client,
    runtime: &tokio::runtime::Handle,
    wait_for_open_scroll: bool,
) -> mpsc::Receiver<DirectoryPage> {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let client = client.clone();
    runtime.spawn(async move {
        let started = Instant::now();
        let mut param: Option<String> = None;
        loop {
            let page = match client.scroll_companies(param.as_deref()).await {
                Ok(page) => page,
                Err(e)
                    if param.is_none()
                        && wait_for_open_scroll
                        && e.has_code("scroll_exists")
                        && started.elapsed() < STALE_SCROLL_WAIT =>
                {
                    tokio::time::sleep(STALE_SCROLL_POLL).await;
                    continue;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if page.companies.is_empty() {
                return;
            }
            // A closed channel means the consumer stopped: so does the scroll.
            if tx.send(Ok(page.companies)).await.is_err() {
                return;
            }
            match page.scroll_param {
                Some(next) => param = Some(next),
                None => return,
            }
        }
    });
    rx
}
