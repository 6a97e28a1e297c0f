//! The `okta_directory` source: periodic snapshots of the users, each with its group names.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use url::Url;
use weir_schemas::component::{ComponentError, Rejected, Source, SourcePoll, SourceStats};

use super::config::{Connected, DirectoryOptions, OktaConfigError, OktaDirectoryConfig};
use super::{page_position, timestamp_ms, VENDOR};
use crate::batch::{now_ms, quote, split_array, RawBatch};
use crate::cursor::{load_cursor, save_cursor};
use crate::http::ApiRequest;

/// The scopes a service app needs for users and groups.
const SCOPES: &str = "okta.users.read okta.groups.read";

/// Where the snapshots are: what the runner persists after each batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct DirectoryCursor {
    /// While a snapshot is in progress: the users page to fetch next (a `Link: next` URL,
    /// verbatim, or the first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next: Option<String>,
    /// When the snapshot in progress started, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_ms: Option<i64>,
    /// When the last complete snapshot finished, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    finished_ms: Option<i64>,
}

/// A batch handed out and not committed yet.
struct Pending {
    cursor: DirectoryCursor,
    /// (user id, record id) of the users in it.
    emitted: Vec<(String, String)>,
}

/// Snapshots an Okta org's users with their groups; see the module docs of [`super`].
pub struct OktaDirectorySource {
    name: String,
    options: DirectoryOptions,
    okta: Connected,
    /// Where the last committed batch left off (None before `open`).
    state: Option<DirectoryCursor>,
    pending: Option<Pending>,
    /// User id → the names of its groups (sorted), for the snapshot in progress.
    groups: Option<HashMap<String, Vec<String>>>,
    /// Dead letters from listing the groups, for the next batch.
    group_letters: Vec<Rejected>,
    /// User id → the record id last emitted for it by this process: unchanged users are not
    /// emitted again by the next snapshot.
    emitted: HashMap<String, String>,
}

impl OktaDirectorySource {
    /// A source named `name` (its raw topic is `raw.<name>`).
    pub fn new(name: &str, config: OktaDirectoryConfig) -> Result<Self, OktaConfigError> {
        let options = config.options;
        if options.limit == 0 || options.limit > 200 {
            return Err(OktaConfigError {
                option: "limit",
                reason: format!("{} is not within 1–200 (Okta's bound for users)", options.limit),
            });
        }
        if options.interval_secs == 0 {
            return Err(OktaConfigError {
                option: "interval_secs",
                reason: "0 would snapshot the directory without a pause; Okta's rate limits need one".into(),
            });
        }
        let okta = config.connection.connect(SCOPES)?;
        Ok(OktaDirectorySource {
            name: name.to_string(),
            options,
            okta,
            state: None,
            pending: None,
            groups: None,
            group_letters: Vec::new(),
            emitted: HashMap::new(),
        })
    }

    fn fatal(&self, reason: impl std::fmt::Display) -> ComponentError {
        ComponentError::fatal(format!("source {}: {reason}", self.name))
    }

    /// `path?limit=N` under the org URL.
    fn listing(&self, segments: &[&str]) -> Url {
        let mut url = self.okta.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url.query_pairs_mut().append_pair("limit", &self.options.limit.to_string());
        url
    }

    /// One page of a listing: its elements (none when unreadable: dead-lettered into `letters`)
    /// and its validated next link.
    async fn page(
        &self,
        url: Url,
        listing: &str,
        letters: &mut Vec<Rejected>,
    ) -> Result<(Vec<Box<RawValue>>, Option<Url>), ComponentError> {
        let page = format!(
            "{listing} page GET {}{} ({})",
            url.origin().ascii_serialization(),
            url.path(),
            page_position(&url)
        );
        let request = ApiRequest::get(url);
        let outcome = self
            .okta
            .client
            .send_page(&request, &*self.okta.auth, |response| split_array(&response.body))
            .await
            .map_err(|e| self.okta.error(&self.name, e))?;
        let (response, elements) = match outcome {
            Ok((response, elements)) => (response, elements),
            Err((response, reason)) => {
                letters.push(Rejected {
                    reason: format!("okta directory: the {page} could not be read ({reason}); skipped"),
                    original: response.body.clone(),
                });
                (response, Vec::new())
            }
        };
        let next = match response.next_link() {
            Some(link) => Some(self.okta.same_origin(&link).map_err(|reason| self.fatal(reason))?),
            None => None,
        };
        Ok((elements, next))
    }

    /// Lists every group and its members: user id → group names.
    async fn load_groups(&mut self) -> Result<(), ComponentError> {
        let mut letters = Vec::new();
        let mut groups: Vec<(String, String)> = Vec::new();
        let mut next = Some(self.listing(&["api", "v1", "groups"]));
        while let Some(url) = next.take() {
            let (elements, more) = self.page(url, "groups", &mut letters).await?;
            for (index, element) in elements.iter().enumerate() {
                let group: Value = serde_json::from_str(element.get()).unwrap_or(Value::Null);
                let id = group.get("id").and_then(Value::as_str).filter(|s| !s.is_empty());
                let name = group.pointer("/profile/name").and_then(Value::as_str);
                match (id, name) {
                    (Some(id), Some(name)) => groups.push((id.to_string(), name.to_string())),
                    _ => letters.push(Rejected {
                        reason: format!(
                            "okta directory: group {index} of a groups page has no `id` and `profile.name` strings; \
                             its members get no group name from it"
                        ),
                        original: element.get().as_bytes().to_vec(),
                    }),
                }
            }
            next = more;
        }
        let mut members: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (group_id, group_name) in &groups {
            let mut next = Some(self.listing(&["api", "v1", "groups", group_id, "users"]));
            let listing = format!("members of group {}", quote(group_id));
            while let Some(url) = next.take() {
                let (elements, more) = self.page(url, &listing, &mut letters).await?;
                for element in &elements {
                    let user: Value = serde_json::from_str(element.get()).unwrap_or(Value::Null);
                    match user.get("id").and_then(Value::as_str) {
                        Some(id) => {
                            members.entry(id.to_string()).or_default().insert(group_name.clone());
                        }
                        None => letters.push(Rejected {
                            reason: format!("okta directory: a member of group {} has no `id` string", quote(group_id)),
                            original: element.get().as_bytes().to_vec(),
                        }),
                    }
                }
                next = more;
            }
        }
        self.groups = Some(members.into_iter().map(|(id, names)| (id, names.into_iter().collect())).collect());
        self.group_letters.extend(letters);
        Ok(())
    }

    /// Adds one user of a page to the batch (with its `_groups`), skips it when unchanged since
    /// this process last emitted it, or dead-letters it.
    fn take_user(&self, batch: &mut RawBatch, emitted: &mut Vec<(String, String)>, index: usize, user: &RawValue) {
        let text = user.get().trim();
        let fields = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(fields)) => fields,
            _ => {
                let reason = format!("okta directory: user {index} of a users page is not a JSON object");
                return batch.reject(reason, text.as_bytes());
            }
        };
        let Some(id) = fields.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return batch
                .reject(format!("okta directory: user {index} of a users page has no `id` string"), text.as_bytes());
        };
        let updated = fields.get("lastUpdated").and_then(Value::as_str);
        let names = self.groups.as_ref().and_then(|g| g.get(id)).map_or(&[][..], Vec::as_slice);
        let record_id = format!("{id}@{}/{:016x}", updated.unwrap_or("-"), digest(names));
        if self.emitted.get(id) == Some(&record_id) {
            return;
        }
        let names_json = serde_json::to_string(names).unwrap_or_else(|_| "[]".into());
        // Okta's bytes with `_groups` appended as the last member (re-serialized only if Okta
        // itself ever sends a `_groups`).
        let payload = match text.strip_suffix('}') {
            Some(head) if !fields.contains_key("_groups") => {
                let comma = if fields.is_empty() { "" } else { "," };
                format!("{head}{comma}\"_groups\":{names_json}}}")
            }
            _ => {
                let mut fields = fields.clone();
                fields.insert("_groups".into(), Value::from(names.to_vec()));
                Value::Object(fields).to_string()
            }
        };
        batch.event(&record_id, updated.and_then(timestamp_ms), payload.as_bytes());
        emitted.push((id.to_string(), record_id));
    }
}

/// A stable 64-bit digest (FNV-1a) of the group names, so a membership change makes a new id.
fn digest(names: &[String]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for name in names {
        for byte in name.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

#[async_trait]
impl Source for OktaDirectorySource {
    async fn open(&mut self, committed_cursor: Option<String>) -> Result<(), ComponentError> {
        let cursor = load_cursor::<DirectoryCursor>(&self.name, committed_cursor)?.unwrap_or_default();
        if let Some(next) = &cursor.next {
            self.okta.same_origin(next).map_err(|reason| {
                self.fatal(format_args!(
                    "the committed cursor: {reason}; was `base_url` changed? Reset the cursor with \
                     `weir state reset-cursor {}`",
                    self.name
                ))
            })?;
        }
        self.state = Some(cursor);
        self.pending = None;
        // Memberships are read again for a snapshot resumed after a restart.
        self.groups = None;
        self.group_letters.clear();
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, ComponentError> {
        self.pending = None;
        let Some(mut cursor) = self.state.clone() else { return Err(self.fatal("polled before it was opened")) };
        if cursor.next.is_none() {
            let now = now_ms();
            if let Some(finished) = cursor.finished_ms {
                let due = cursor.started_ms.unwrap_or(finished).min(finished)
                    + (self.options.interval_secs as i64).saturating_mul(1000);
                if now < due {
                    return Ok(SourcePoll::Idle(Duration::from_millis((due - now) as u64)));
                }
            }
            cursor.next = Some(self.listing(&["api", "v1", "users"]).to_string());
            cursor.started_ms = Some(now);
            // A new snapshot reads the memberships anew.
            self.groups = None;
        }
        if self.groups.is_none() {
            self.load_groups().await?;
        }
        let next = cursor.next.clone().unwrap_or_default();
        let url = self.okta.same_origin(&next).map_err(|reason| self.fatal(reason))?;
        let mut letters = Vec::new();
        let (users, more) = self.page(url, "users", &mut letters).await?;
        // Only now that the page is in hand: a failed fetch must keep the groups' dead letters.
        letters.splice(0..0, std::mem::take(&mut self.group_letters));
        let mut batch = RawBatch::new(&self.name, VENDOR);
        let mut emitted = Vec::new();
        for (index, user) in users.iter().enumerate() {
            self.take_user(&mut batch, &mut emitted, index, user);
        }
        for letter in letters {
            batch.reject(letter.reason, &letter.original);
        }
        match more {
            Some(link) => cursor.next = Some(link.to_string()),
            None => {
                cursor.next = None;
                cursor.finished_ms = Some(now_ms());
            }
        }
        let text = save_cursor(&cursor);
        self.pending = Some(Pending { cursor, emitted });
        Ok(SourcePoll::Batch(batch.finish(text)))
    }

    async fn committed(&mut self, _cursor: Option<&str>) -> Result<(), ComponentError> {
        if let Some(pending) = self.pending.take() {
            self.emitted.extend(pending.emitted);
            if pending.cursor.next.is_none() {
                // The snapshot is complete: its memberships are not needed until the next one.
                self.groups = None;
            }
            self.state = Some(pending.cursor);
        }
        Ok(())
    }

    fn stats(&self) -> SourceStats {
        SourceStats {
            retries: self.okta.client.retries(),
            cursor_time_ms: self.state.as_ref().and_then(|s| s.started_ms.or(s.finished_ms)),
        }
    }
}
