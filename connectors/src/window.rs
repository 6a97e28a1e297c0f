//! Reading a polled API in overlapping time windows: the machinery the `aws_cloudtrail`,
//! `azure_activity` and `gcp_audit` sources share.
//!
//! Such an API answers "the events between two times", page by page, and makes an event visible
//! some time after its own timestamp. So a source reads windows `[start, now - lag_secs]`: the
//! `lag_secs` keep a window's end away from events not visible yet. Each new window starts
//! `overlap_secs` before the previous one ended ([`plan_window`]), so events that became visible
//! late are still read; the repeats this brings are dropped by event id, remembered in the cursor
//! ([`WindowCursor::recent`]) so that this holds across restarts too. A new window is started
//! once at least `poll_interval_secs` of new time is available.
//!
//! The window being read is persisted with each page's batch ([`WindowCursor`]): a restart
//! resumes at the page after the last durable one. A page that cannot be read loses the next
//! page's token too, so the window is read again from its first page (narrowed by the connector
//! to what may still be unread, where the API's order allows), up to [`MAX_BROKEN_PAGES`] times;
//! after that the rest of the window is given up explicitly, with a dead letter that says so
//! ([`Window::broken_page`]), and the next window's overlap re-reads its end.
//!
//! What stays with each connector: its options (flat in its config table, where users write
//! them, with its defaults: serde cannot `flatten` a shared struct into a `deny_unknown_fields`
//! one, so [`WindowOptions`] is built from them), the requests, and how a broken page narrows the
//! window (AWS pages come newest first, so its end; GCP's oldest first, so its start; Azure's are
//! not sorted, so not at all).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_schemas::component::{ComponentError, SourcePoll};

use crate::batch::{now_ms, RawBatch};
use crate::cursor::{load_cursor, save_cursor, RecentIds};

/// A clock in ms since the Unix epoch (injectable for tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock, as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(now_ms)
}

/// How many unreadable pages a window may meet before the rest of it is given up (and the last
/// page's body dead-lettered): each time, the window is read again from its first page.
pub const MAX_BROKEN_PAGES: u32 = 3;

/// The default of a `…_secs` window option: `N` (for `#[serde(default = "…")]`, where each
/// connector passes its own).
pub fn default_secs<const N: u64>() -> u64 {
    N
}

/// The default of the `dedupe_ids` option.
pub fn default_dedupe_ids() -> usize {
    5000
}

/// The window options of a source, as its config table has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowOptions {
    /// How far back the first window starts, on first start.
    pub initial_lookback_secs: u64,
    /// Windows end this long before now.
    pub lag_secs: u64,
    /// Each window starts this long before the previous one ended.
    pub overlap_secs: u64,
    /// A new window is started once at least this much new time is available; also the idle
    /// delay between windows.
    pub poll_interval_secs: u64,
    /// Whether windows end on a whole second (for APIs that take times in seconds).
    pub whole_seconds: bool,
}

impl WindowOptions {
    /// The options `initial_lookback_secs`, `lag_secs`, `overlap_secs` and `poll_interval_secs`,
    /// in that order, and whether windows end on a whole second.
    pub fn new(
        initial_lookback_secs: u64,
        lag_secs: u64,
        overlap_secs: u64,
        poll_interval_secs: u64,
        whole_seconds: bool,
    ) -> Self {
        WindowOptions { initial_lookback_secs, lag_secs, overlap_secs, poll_interval_secs, whole_seconds }
    }
}

/// The time window being read, in ms since the Unix epoch, and how far it is read.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub struct Window {
    /// Where the window starts.
    pub start_ms: i64,
    /// Where the window ends.
    pub end_ms: i64,
    /// What fetches the next page of this window, when it is partly read: AWS's `NextToken`,
    /// GCP's `pageToken`, Azure's `nextLink` (cursors written before these were shared name it
    /// `token` and `next_link` there, and are still read).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "token", alias = "next_link")]
    pub page_token: Option<String>,
    /// The oldest event time read in this window so far, for APIs whose pages come newest first
    /// (every event not read yet is at most this old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_ms: Option<i64>,
    /// The newest event time read in this window so far, for APIs whose pages come oldest first
    /// (every event not read yet is at least this new).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_ms: Option<i64>,
    /// Unreadable pages met in this window so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub broken_pages: u32,
    /// The end the window had before a broken page narrowed it: what counts as read once the
    /// window is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_end_ms: Option<i64>,
    /// Events delivered from this window so far, over every reading of it (for APIs whose
    /// windows are read again whole: the ids the dedupe must still hold to repeat none).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delivered: u64,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

/// Where reading a window goes after a page ([`WindowCursor::advance`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// To the next page, fetched with this token.
    Page(String),
    /// Nowhere: the window is read to its end (or its rest was given up).
    Done,
    /// Back to the window's first page: the page could not be read ([`Window::broken_page`]).
    Again,
}

impl Next {
    /// After a page that named `token` as the next one: `Page`, or `Done` when it named none
    /// (or an empty one).
    pub fn after(token: Option<String>) -> Self {
        token.filter(|t| !t.is_empty()).map_or(Next::Done, Next::Page)
    }
}

/// What to do after an unreadable page of a window ([`Window::broken_page`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokenPage {
    /// [`Next::Again`] when the window is read again from its first page, [`Next::Done`] when
    /// its rest is given up.
    pub next: Next,
    /// What the dead letter's reason ends with: which of the two, and why.
    pub note: String,
}

impl Window {
    /// A window from `start_ms` to `end_ms`, not read yet.
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        Window {
            start_ms,
            end_ms,
            page_token: None,
            oldest_ms: None,
            newest_ms: None,
            broken_pages: 0,
            original_end_ms: None,
            delivered: 0,
        }
    }

    /// Counts an unreadable page (whose next page's token is lost with it): the window is read
    /// again from its first page while fewer than [`MAX_BROKEN_PAGES`] were met, and its rest
    /// given up after.
    pub fn broken_page(&mut self) -> BrokenPage {
        if self.broken_pages < MAX_BROKEN_PAGES {
            self.broken_pages += 1;
            self.page_token = None;
            let note = format!(
                "reading the window again from its first page (attempt {} of {MAX_BROKEN_PAGES})",
                self.broken_pages
            );
            BrokenPage { next: Next::Again, note }
        } else {
            let note = format!(
                "{MAX_BROKEN_PAGES} pages of this window could not be read: the rest of the window is given up"
            );
            BrokenPage { next: Next::Done, note }
        }
    }
}

/// The window to read after the one that ended at `done_ms` (none on first start), with the
/// clock at `now_ms`, or how long to wait until there is one.
pub fn plan_window(now_ms: i64, done_ms: Option<i64>, options: &WindowOptions) -> Result<Window, Duration> {
    let end_ms = now_ms - secs_ms(options.lag_secs);
    let end_ms = if options.whole_seconds { end_ms.div_euclid(1000) * 1000 } else { end_ms };
    let interval = secs_ms(options.poll_interval_secs.max(1));
    let start_ms = match done_ms {
        Some(done) if end_ms - done < interval => {
            return Err(Duration::from_millis((interval - (end_ms - done).max(0)).clamp(1000, interval) as u64));
        }
        Some(done) => done - secs_ms(options.overlap_secs),
        None => end_ms - secs_ms(options.initial_lookback_secs),
    };
    if end_ms <= start_ms {
        return Err(Duration::from_millis(interval as u64));
    }
    Ok(Window::new(start_ms, end_ms))
}

fn secs_ms(secs: u64) -> i64 {
    (secs as i64).saturating_mul(1000)
}

/// Where a windowed read is: what the source persists (per subscription, for Azure).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct WindowCursor {
    /// End of the last window read to its end.
    #[serde(default)]
    pub done_ms: Option<i64>,
    /// The window being read.
    #[serde(default)]
    pub window: Option<Window>,
    /// Recently delivered event ids, to drop repeats from overlapping windows.
    #[serde(default)]
    pub recent: RecentIds,
}

impl WindowCursor {
    /// A cursor on first start, remembering up to `dedupe_ids` event ids.
    pub fn new(dedupe_ids: usize) -> Self {
        WindowCursor { recent: RecentIds::new(dedupe_ids), ..WindowCursor::default() }
    }

    /// The same cursor, remembering up to `dedupe_ids` event ids (the option may have changed
    /// since it was persisted).
    pub fn remembering(self, dedupe_ids: usize) -> Self {
        WindowCursor { recent: self.recent.with_capacity(dedupe_ids), ..self }
    }

    /// The window to read now: the one being read, else a new one planned at `now()` (called
    /// only then); or how long to wait until there is one.
    pub fn window(&self, now: impl FnOnce() -> i64, options: &WindowOptions) -> Result<Window, Duration> {
        match &self.window {
            Some(window) => Ok(window.clone()),
            None => plan_window(now(), self.done_ms, options),
        }
    }

    /// After a page of `window`: goes on at `next` (a window done counts as read up to its
    /// original end).
    pub fn advance(&mut self, mut window: Window, next: Next) {
        match next {
            Next::Page(token) => {
                window.page_token = Some(token);
                self.window = Some(window);
            }
            Next::Again => self.window = Some(window),
            Next::Done => {
                self.done_ms = Some(window.original_end_ms.unwrap_or(window.end_ms));
                self.window = None;
            }
        }
    }
}

/// A source that reads one series of windows, as far as it is the same for every API: its
/// cursor, its clock and the newest event time it delivered.
pub struct WindowState {
    /// Where the windows are read to (what is persisted).
    pub cursor: WindowCursor,
    /// What places new windows.
    pub clock: Clock,
    /// The newest event time delivered (the source's `cursor_time_ms`), or after a restart the
    /// end of the last window read to its end.
    pub newest_ms: Option<i64>,
}

impl WindowState {
    /// On first start, on the system clock, remembering up to `dedupe_ids` event ids.
    pub fn new(dedupe_ids: usize) -> Self {
        WindowState { cursor: WindowCursor::new(dedupe_ids), clock: system_clock(), newest_ms: None }
    }

    /// Resumes at `committed`, the committed cursor of source `source` (none on first start).
    pub fn open(&mut self, source: &str, committed: Option<String>, dedupe_ids: usize) -> Result<(), ComponentError> {
        if let Some(cursor) = load_cursor::<WindowCursor>(source, committed)? {
            self.cursor = cursor.remembering(dedupe_ids);
        }
        self.newest_ms = self.cursor.done_ms;
        Ok(())
    }

    /// The window to read now, or how long to wait until there is one.
    pub fn window(&self, options: &WindowOptions) -> Result<Window, Duration> {
        self.cursor.window(|| (self.clock)(), options)
    }

    /// What a poll hands over after a page of `window`, reading going on at `next`.
    pub fn page_read(&mut self, batch: RawBatch, window: Window, next: Next) -> SourcePoll {
        self.cursor.advance(window, next);
        raise_newest(&mut self.newest_ms, &batch);
        SourcePoll::Batch(batch.finish(save_cursor(&self.cursor)))
    }
}

/// Raises `newest_ms` to the newest event time of `batch`.
pub fn raise_newest(newest_ms: &mut Option<i64>, batch: &RawBatch) {
    if let Some(ms) = batch.newest_event_ms() {
        *newest_ms = Some(newest_ms.map_or(ms, |n| n.max(ms)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_cloudtrail::CloudTrailConfig;
    use crate::azure_activity::AzureActivityConfig;
    use crate::gcp_audit::GcpAuditConfig;

    const OPTIONS: WindowOptions = WindowOptions {
        initial_lookback_secs: 3600,
        lag_secs: 60,
        overlap_secs: 600,
        poll_interval_secs: 60,
        whole_seconds: false,
    };

    #[test]
    fn windows_lag_overlap_and_wait_for_new_time() {
        let now = 10_000_000_500;
        let first = plan_window(now, None, &OPTIONS).unwrap();
        assert_eq!((first.start_ms, first.end_ms), (now - 3_660_000, now - 60_000));
        let whole = plan_window(now, None, &WindowOptions { whole_seconds: true, ..OPTIONS }).unwrap();
        assert_eq!(whole.end_ms, 9_999_940_000);
        let next = plan_window(now, Some(now - 200_000), &OPTIONS).unwrap();
        assert_eq!(next.start_ms, now - 800_000);
        assert_eq!(plan_window(now, Some(now - 90_000), &OPTIONS), Err(Duration::from_millis(30_000)));
    }

    #[test]
    fn broken_pages_are_read_again_then_given_up() {
        let mut window = Window { page_token: Some("p".into()), ..Window::new(0, 1000) };
        for attempt in 1..=MAX_BROKEN_PAGES {
            let broken = window.broken_page();
            assert!(broken.next == Next::Again && broken.note.contains(&format!("attempt {attempt} of 3")));
            assert_eq!(window.page_token, None);
        }
        let broken = window.broken_page();
        assert!(broken.next == Next::Done && broken.note.contains("given up"), "{}", broken.note);
        let mut cursor = WindowCursor::default();
        cursor.advance(Window { original_end_ms: Some(2000), ..window }, Next::Done);
        assert_eq!((cursor.done_ms, cursor.window), (Some(2000), None));
    }

    #[test]
    fn cursors_of_every_connector_read_back() {
        for old in [r#"{"start_ms":1,"end_ms":2,"token":"t"}"#, r#"{"start_ms":1,"end_ms":2,"next_link":"t"}"#] {
            let window: Window = serde_json::from_str(old).unwrap();
            assert_eq!(window.page_token.as_deref(), Some("t"));
        }
        let gcp = r#"{"start_ms":1,"end_ms":2,"page_token":"t","newest_ms":2,"broken_pages":1}"#;
        assert_eq!(serde_json::to_string(&serde_json::from_str::<Window>(gcp).unwrap()).unwrap(), gcp);
    }

    #[test]
    fn each_connector_keeps_its_defaults() {
        let aws: CloudTrailConfig =
            serde_json::from_str(r#"{"access_key_id": "AKID", "secret_access_key": "s", "region": "us-east-1"}"#)
                .unwrap();
        let azure: AzureActivityConfig = serde_json::from_str(
            r#"{"tenant_id": "t", "client_id": "c", "client_secret": "s", "subscription_ids": ["x"]}"#,
        )
        .unwrap();
        let gcp: GcpAuditConfig =
            serde_json::from_str(r#"{"service_account_key": "k", "resource_names": ["projects/p"]}"#).unwrap();
        assert_eq!(aws.window_options(), WindowOptions::new(3600, 300, 900, 60, true));
        assert_eq!(azure.window_options(), WindowOptions::new(3600, 60, 1800, 60, true));
        assert_eq!(gcp.window_options(), WindowOptions::new(3600, 60, 600, 60, false));
        assert_eq!((aws.dedupe_ids, azure.dedupe_ids, gcp.dedupe_ids), (5000, 5000, 5000));
    }
}
