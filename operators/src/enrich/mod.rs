//! The `enrich` operator: joins every typed security event with what Weir knows about its user,
//! device and cloud resource, from keyed state tables built from the streams themselves.
//!
//! Input: typed events (topic `events`, any schema [`SecurityEvent`] decodes, by fingerprint) and
//! [`Identity`] snapshots. Output: one [`EnrichedEvent`] per security event (the input bytes
//! unchanged in `event`), keyed by the joined user's uid (else the input's key), timestamped with
//! the event time. Snapshots update the tables and emit nothing.
//!
//! Tables (entries in `State`, projections in memory; see `tables.rs`):
//!
//! | table | built from | key | joined by |
//! | --- | --- | --- | --- |
//! | identities | `Identity` snapshots; `IdentityActivity` 3001 Account Change (status) and 3006 Group Management add/remove user (groups), for each target user | user uid | actor/user uid, else login, else email (login, email and aliases all resolve) |
//! | devices | `DeviceInventory` 5001 | device uid | device uid, else hostname |
//! | assets | `ResourceChange` 5023 | resource uid | resource uid (`ResourceChange.resource`, `CloudApiActivity.resources` in order: the first found) |
//!
//! Status from lifecycle events (failed events change nothing): activity 2 Enable and 12 Unlock →
//! `ACTIVE`; 5 Disable → `DEPROVISIONED` when the vendor's event type says deactivate
//! (`user.lifecycle.deactivate`), else `SUSPENDED`; 6 Delete → `DEPROVISIONED`; 9 Lock →
//! `LOCKED_OUT`. A target user the table does not know yet is added as a stub (uid, login, email
//! and what the event says) until its snapshot arrives.
//!
//! Device facts: `crown_jewel` when a tag equals one of [`EnrichConfig::crown_jewel_tags`] or
//! ends with `/` and one of them (CrowdStrike grouping tags read `FalconGroupingTags/CrownJewel`);
//! `sensitivity` and `owner` from the first tag (tags sorted) that starts with
//! [`EnrichConfig::sensitivity_tag_prefix`] / [`EnrichConfig::owner_tag_prefix`], at the start or
//! after a `/`; without an owner tag, the owner is the host's last logged-in user when the
//! inventory carries it (`unmapped["last_login_user"]`); `os` is the OS name and version (the
//! version alone when it already names the OS). `compliant` is false when the agent runs in
//! reduced functionality mode or its version is below [`EnrichConfig::min_agent_version`]
//! (dotted parts compared as numbers, missing parts read 0), true when the mode is known to be
//! off and the version known to be high enough (or no minimum is set), else unknown. Tag matching
//! ignores ASCII case.
//!
//! Asset facts: account from the cloud, region from the resource else the cloud, tags from the
//! resource (kept from before when the record carries none and changed no `tags` property),
//! owner from the first tag named in [`EnrichConfig::asset_owner_tags`]. `public` and `encrypted`
//! come from the changed properties the record carries (last path segment, ASCII case ignored):
//!
//! | property | fact |
//! | --- | --- |
//! | `publicNetworkAccess` | public: `Enabled` → true, `Disabled` → false |
//! | `allowBlobPublicAccess`, `publiclyAccessible` | public: the boolean |
//! | `networkAcls.defaultAction` | public: `Allow` → true, `Deny` → false |
//! | a path with `iamPolicy` or `bindings` whose new value names `allUsers` or `allAuthenticatedUsers` | public: true |
//! | `encrypted`, `storageEncrypted` | encrypted: the boolean |
//! | `….encryption….enabled` | encrypted: the boolean |
//! | `kmsKeyName`, `kmsKeyId`, `kmsMasterKeyId` set | encrypted: true |
//! | `serverSideEncryptionConfiguration` | encrypted: set → true, removed → false |
//!
//! and, when no property said, from a `public` / `encrypted` tag (`true`/`false`/`yes`/`no`).
//! A property not in the record leaves the fact as it was. A DELETE leaves a tombstone; the
//! delete event itself is enriched with the resource as it was just before.
//!
//! Guarantees:
//! - never drops an event: a lookup that finds nothing is listed in `missing_context`
//!   (`user:<key>`, `device:<key>`, `asset:<uid>`, every key tried, in order) and the event is
//!   emitted; input that is not a typed event or snapshot is rejected with a reason and the
//!   operator carries on;
//! - later updates win by event time, not arrival order: each table entry keeps the event time
//!   of each group of fields, and an older update leaves them alone (equal times keep what is
//!   held, except that a snapshot's status wins a tie with a lifecycle event);
//! - deterministic: the output depends only on the input and the committed state (groups sorted
//!   by name, no hash-map order, no clock);
//! - restartable: everything lives in `State`, written during `process`; `restore` rebuilds the
//!   in-memory projections and indexes from it;
//! - partition-parallel: with several workers every worker builds whole tables from every
//!   partition (records of partitions it does not own go to `apply_context`: tables updated,
//!   nothing emitted) and enriches only its own partitions' events (Kafka Streams' GlobalKTable).

mod codec;
mod tables;

pub mod bench;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use serde_json::Value;
use weir_schemas::avro::{fingerprint_of, Registry};
use weir_schemas::component::{ComponentError, Operator, Output, Partitioning, State};
use weir_schemas::events::ocsf;
use weir_schemas::events::{
    AssetContext, ChangeType, Device, DeviceContext, DeviceInventory, EnrichedEvent, Identity, IdentityActivity,
    PropertyChange, ResourceChange, SecurityEvent, User, UserContext,
};
use weir_schemas::record::{Record, StoredRecord};
use weir_schemas::{AvroRecord, SchemaError};

use self::codec::CodecError;
use self::tables::{
    AssetEntry, AssetTable, AssetUpdate, DeviceEntry, DeviceTable, IdentityEntry, IdentityTable, TableFull,
    ASSET_TABLE, DEVICE_TABLE, IDENTITY_TABLE,
};

/// The `[operators.NAME]` options of a `type = "enrich"` operator.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Device tags that mark a device as a crown jewel (business-critical): a tag matches when it
    /// equals one of these or ends with `/` and one of these, ignoring ASCII case.
    #[serde(default = "default_crown_jewel_tags")]
    pub crown_jewel_tags: Vec<String>,
    /// Prefix of the device tag that gives its data sensitivity: `sensitivity/high` → `high`.
    #[serde(default = "default_sensitivity_tag_prefix")]
    pub sensitivity_tag_prefix: String,
    /// Prefix of the device tag that names its owner: `owner/ada@example.com` → `ada@example.com`.
    #[serde(default = "default_owner_tag_prefix")]
    pub owner_tag_prefix: String,
    /// Lowest security agent version of a compliant device, as dotted numbers (e.g. `"7.10"`).
    /// Unset: the version does not affect compliance.
    #[serde(default)]
    pub min_agent_version: Option<String>,
    /// Resource tag keys that name a cloud asset's owner, in order of preference (ASCII case
    /// ignored).
    #[serde(default = "default_asset_owner_tags")]
    pub asset_owner_tags: Vec<String>,
}

fn default_crown_jewel_tags() -> Vec<String> {
    vec!["CrownJewel".to_string()]
}

fn default_sensitivity_tag_prefix() -> String {
    "sensitivity/".to_string()
}

fn default_owner_tag_prefix() -> String {
    "owner/".to_string()
}

fn default_asset_owner_tags() -> Vec<String> {
    vec!["owner".to_string()]
}

impl Default for EnrichConfig {
    fn default() -> EnrichConfig {
        EnrichConfig {
            crown_jewel_tags: default_crown_jewel_tags(),
            sensitivity_tag_prefix: default_sensitivity_tag_prefix(),
            owner_tag_prefix: default_owner_tag_prefix(),
            min_agent_version: None,
            asset_owner_tags: default_asset_owner_tags(),
        }
    }
}

/// Why an [`EnrichConfig`] cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnrichConfigError {
    /// `min_agent_version` is not dotted numbers.
    #[error("min_agent_version {0:?} is not a version of dotted numbers such as \"7.10\"")]
    BadMinAgentVersion(String),
    /// A tag, prefix or tag key is empty.
    #[error("{0} must not be empty or hold an empty entry")]
    Empty(&'static str),
}

/// The configuration, checked and ready to apply.
#[derive(Clone, Debug)]
struct Rules {
    crown_jewel_tags: Vec<String>,
    sensitivity_tag_prefix: String,
    owner_tag_prefix: String,
    min_agent_version: Option<Vec<u64>>,
    asset_owner_tags: Vec<String>,
}

impl Rules {
    fn new(config: EnrichConfig) -> Result<Rules, EnrichConfigError> {
        if config.crown_jewel_tags.iter().any(String::is_empty) {
            return Err(EnrichConfigError::Empty("crown_jewel_tags"));
        }
        if config.sensitivity_tag_prefix.is_empty() {
            return Err(EnrichConfigError::Empty("sensitivity_tag_prefix"));
        }
        if config.owner_tag_prefix.is_empty() {
            return Err(EnrichConfigError::Empty("owner_tag_prefix"));
        }
        if config.asset_owner_tags.iter().any(String::is_empty) {
            return Err(EnrichConfigError::Empty("asset_owner_tags"));
        }
        let min_agent_version = match config.min_agent_version {
            None => None,
            Some(text) => {
                let strict = text.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
                match version_parts(&text).filter(|_| strict) {
                    Some(parts) => Some(parts),
                    None => return Err(EnrichConfigError::BadMinAgentVersion(text)),
                }
            }
        };
        Ok(Rules {
            crown_jewel_tags: config.crown_jewel_tags,
            sensitivity_tag_prefix: config.sensitivity_tag_prefix,
            owner_tag_prefix: config.owner_tag_prefix,
            min_agent_version,
            asset_owner_tags: config.asset_owner_tags,
        })
    }

    /// What an enriched event shows about a device.
    fn device_context(&self, uid: &str, entry: &DeviceEntry) -> DeviceContext {
        let tagged = |prefix: &str| entry.tags.iter().find_map(|tag| tag_value(tag, prefix)).map(str::to_string);
        let os = match (entry.os_name.as_deref(), entry.os_version.as_deref()) {
            (Some(name), Some(version)) if starts_with_ignore_case(version, name) => Some(version.to_string()),
            (Some(name), Some(version)) => Some(format!("{name} {version}")),
            (name, version) => name.or(version).map(str::to_string),
        };
        let rfm = entry.reduced_functionality_mode;
        let version_ok = match (&self.min_agent_version, entry.agent_version.as_deref().and_then(version_parts)) {
            (None, _) => Some(true),
            (Some(min), Some(version)) => Some(compare_versions(&version, min).is_ge()),
            (Some(_), None) => None,
        };
        let compliant = match (rfm, version_ok) {
            (Some(true), _) | (_, Some(false)) => Some(false),
            (Some(false), Some(true)) => Some(true),
            _ => None,
        };
        DeviceContext {
            uid: uid.to_string(),
            hostname: entry.hostname.clone(),
            owner: tagged(&self.owner_tag_prefix).or_else(|| entry.last_login_user.clone()),
            os,
            agent_version: entry.agent_version.clone(),
            reduced_functionality_mode: rfm,
            crown_jewel: Some(entry.tags.iter().any(|tag| self.crown_jewel_tags.iter().any(|name| tag_is(tag, name)))),
            sensitivity: tagged(&self.sensitivity_tag_prefix),
            compliant,
        }
    }

    /// What an enriched event shows about a cloud resource; `None` for a tombstone.
    fn asset_context(&self, uid: &str, entry: &AssetEntry) -> Option<AssetContext> {
        if entry.deleted {
            return None;
        }
        let tag = |name: &str| entry.tags.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, v)| v);
        let owner = self.asset_owner_tags.iter().find_map(|name| tag(name)).cloned();
        Some(AssetContext {
            uid: uid.to_string(),
            owner,
            account: entry.account.clone(),
            region: entry.region.clone(),
            tags: entry.tags.clone(),
            public: entry.public.or_else(|| tag("public").and_then(|v| yes_no(v))),
            encrypted: entry.encrypted.or_else(|| tag("encrypted").and_then(|v| yes_no(v))),
        })
    }
}

/// The enrich operator; see the module documentation.
#[derive(Debug)]
pub struct Enrich {
    rules: Rules,
    identities: IdentityTable,
    devices: DeviceTable,
    assets: AssetTable,
}

impl Enrich {
    /// An enrich operator with these options and empty tables (the runner fills them with
    /// [`Operator::restore`]); fails if the options are invalid.
    pub fn new(config: EnrichConfig) -> Result<Enrich, EnrichConfigError> {
        Ok(Enrich {
            rules: Rules::new(config)?,
            identities: IdentityTable::new(),
            devices: DeviceTable::default(),
            assets: AssetTable::default(),
        })
    }

    /// Applies a directory snapshot to the identity table.
    fn apply_snapshot(&mut self, snapshot: &Identity, state: &mut dyn State) -> Result<(), ComponentError> {
        let uid = snapshot.uid.as_str();
        let mut entry =
            load(state, IDENTITY_TABLE, uid, IdentityEntry::decode)?.unwrap_or_else(|| IdentityEntry::stub(None, None));
        if entry.apply_snapshot(snapshot) {
            state.put(IDENTITY_TABLE, uid.as_bytes(), entry.encode());
            self.identities.put(uid, &entry).map_err(full)?;
        }
        Ok(())
    }

    /// Applies what an identity-provider event says about its target users: status from
    /// lifecycle events, groups from membership events.
    fn apply_identity_event(&mut self, event: &IdentityActivity, state: &mut dyn State) -> Result<(), ComponentError> {
        let status = lifecycle_status(event);
        let membership = membership_change(event);
        if status.is_none() && membership.is_none() {
            return Ok(());
        }
        for target in &event.target_users {
            let Some(uid) = target.uid.as_deref().filter(|uid| !uid.is_empty()) else { continue };
            let mut entry = load(state, IDENTITY_TABLE, uid, IdentityEntry::decode)?
                .unwrap_or_else(|| IdentityEntry::stub(target.name.as_deref(), target.email.as_deref()));
            let mut changed = false;
            if let Some(status) = status {
                changed |= entry.apply_status(status, event.time);
            }
            if let Some(member) = membership {
                for group in &event.target_groups {
                    changed |= entry.apply_membership(group, member, event.time);
                }
            }
            if changed {
                state.put(IDENTITY_TABLE, uid.as_bytes(), entry.encode());
                self.identities.put(uid, &entry).map_err(full)?;
            }
        }
        Ok(())
    }

    /// Applies a host inventory record to the device table.
    fn apply_device(&mut self, event: &DeviceInventory, state: &mut dyn State) -> Result<(), ComponentError> {
        let Some(uid) = event.device.uid.as_deref().filter(|uid| !uid.is_empty()) else { return Ok(()) };
        if event.class_uid != ocsf::DEVICE_INVENTORY_INFO {
            return Ok(());
        }
        if load(state, DEVICE_TABLE, uid, DeviceEntry::decode)?.is_some_and(|held| event.time <= held.time) {
            return Ok(());
        }
        let mut tags: Vec<String> = event.tags.iter().filter(|t| !t.is_empty()).cloned().collect();
        tags.sort_unstable();
        tags.dedup();
        let device = &event.device;
        let entry = DeviceEntry {
            time: event.time,
            hostname: device.hostname.clone().filter(|h| !h.is_empty()),
            os_name: device.os_name.clone().or_else(|| event.platform.clone()),
            os_version: device.os_version.clone(),
            agent_version: device.agent_version.clone(),
            last_login_user: event.unmapped.get("last_login_user").and_then(|json| json_string(json)),
            reduced_functionality_mode: event.reduced_functionality_mode,
            tags,
        };
        state.put(DEVICE_TABLE, uid.as_bytes(), entry.encode());
        self.devices.put(event.time, self.rules.device_context(uid, &entry));
        Ok(())
    }

    /// Applies a cloud change-feed record to the asset table.
    fn apply_asset(&mut self, change: &ResourceChange, state: &mut dyn State) -> Result<(), ComponentError> {
        let uid = change.resource.uid.as_str();
        if uid.is_empty() || change.class_uid != ocsf::CLOUD_RESOURCES_INVENTORY_INFO {
            return Ok(());
        }
        let mut entry = load(state, ASSET_TABLE, uid, AssetEntry::decode)?.unwrap_or_default();
        if entry.apply(&asset_update(change)) {
            state.put(ASSET_TABLE, uid.as_bytes(), entry.encode());
            match self.rules.asset_context(uid, &entry) {
                Some(context) => self.assets.put(context),
                None => self.assets.remove(uid),
            }
        }
        Ok(())
    }

    /// The user context of `user`, or the keys tried in `missing`.
    fn join_user(&self, user: &User, missing: &mut Vec<String>) -> Option<UserContext> {
        let mut tried: Vec<&str> = Vec::new();
        if let Some(uid) = user.uid.as_deref().filter(|uid| !uid.is_empty()) {
            if let Some(row) = self.identities.find_uid(uid) {
                return Some(self.identities.context(row));
            }
            tried.push(uid);
        }
        for key in [user.name.as_deref(), user.email.as_deref()].into_iter().flatten() {
            if key.is_empty() || tried.iter().any(|t| t.eq_ignore_ascii_case(key)) {
                continue;
            }
            if let Some(row) = self.identities.find_alias(key) {
                return Some(self.identities.context(row));
            }
            tried.push(key);
        }
        missing.extend(tried.iter().map(|key| format!("user:{key}")));
        None
    }

    /// The device context of `device`, or the keys tried in `missing`.
    fn join_device(&self, device: &Device, missing: &mut Vec<String>) -> Option<DeviceContext> {
        let uid = device.uid.as_deref().filter(|uid| !uid.is_empty());
        if let Some(context) = uid.and_then(|uid| self.devices.by_uid(uid)) {
            return Some(context.clone());
        }
        let hostname = device.hostname.as_deref().filter(|h| !h.is_empty());
        if let Some(context) = hostname.and_then(|h| self.devices.by_hostname(h)) {
            return Some(context.clone());
        }
        missing.extend(uid.into_iter().chain(hostname).map(|key| format!("device:{key}")));
        None
    }

    /// The asset context of the first resource found, or the ids tried in `missing`.
    fn join_asset(&self, resources: &[&str], missing: &mut Vec<String>) -> Option<AssetContext> {
        for uid in resources.iter().filter(|uid| !uid.is_empty()) {
            if let Some(context) = self.assets.get(uid) {
                return Some(context.clone());
            }
            missing.push(format!("asset:{uid}"));
        }
        None
    }

    /// Reads an input record and applies what it says to the tables. `None` for a snapshot
    /// (nothing to enrich) or input rejected through `out`; else the event to enrich, with the
    /// asset as it was just before, when the event deletes it.
    fn update_tables(
        &mut self,
        input: &StoredRecord,
        state: &mut dyn State,
        out: &mut Output,
    ) -> Result<Option<(SecurityEvent, Option<AssetContext>)>, ComponentError> {
        let value = &input.record.value;
        let registry = Registry::embedded();
        let writer = match fingerprint_of(value) {
            Some(fingerprint) => match registry.get(fingerprint) {
                Some(writer) => writer,
                None => {
                    out.reject(
                        format!("input cannot be read: {}", SchemaError::UnknownFingerprint(fingerprint)),
                        value,
                    );
                    return Ok(None);
                }
            },
            None => {
                out.reject("input is not an Avro single-object encoded event (no C3 01 header)", value);
                return Ok(None);
            }
        };
        if writer.name() == Identity::SCHEMA_NAME {
            match registry.decode::<Identity>(value) {
                Ok(snapshot) if snapshot.uid.is_empty() => {
                    out.reject("Identity snapshot has an empty uid: it cannot be keyed", value)
                }
                Ok(snapshot) => self.apply_snapshot(&snapshot, state)?,
                Err(e) => out.reject(format!("Identity snapshot cannot be decoded: {e}"), value),
            }
            return Ok(None);
        }
        let event = match SecurityEvent::decode(value) {
            Ok(event) => event,
            Err(SchemaError::WrongSchema { found, fingerprint, .. }) => {
                out.reject(
                    format!(
                        "input is a {found} (schema 0x{fingerprint:016x}); enrich reads typed security events and \
                         Identity snapshots"
                    ),
                    value,
                );
                return Ok(None);
            }
            Err(e) => {
                out.reject(format!("input is not a readable typed security event: {e}"), value);
                return Ok(None);
            }
        };
        let mut asset_before_delete = None;
        match &event {
            SecurityEvent::Identity(activity) => self.apply_identity_event(activity, state)?,
            SecurityEvent::DeviceInventory(inventory) => self.apply_device(inventory, state)?,
            SecurityEvent::ResourceChange(change) => {
                if change.change_type == ChangeType::Delete {
                    asset_before_delete = self.assets.get(&change.resource.uid).cloned();
                }
                self.apply_asset(change, state)?;
            }
            _ => {}
        }
        Ok(Some((event, asset_before_delete)))
    }

    /// The enriched event for `event`, whose single-object bytes are `value`.
    fn enrich(&self, event: &SecurityEvent, value: &[u8], asset_before_delete: Option<AssetContext>) -> EnrichedEvent {
        let subjects = Subjects::of(event);
        let mut missing = Vec::new();
        let user_context = subjects.user.and_then(|user| self.join_user(user, &mut missing));
        let device_context = subjects.device.and_then(|device| self.join_device(device, &mut missing));
        let asset_context = asset_before_delete.or_else(|| self.join_asset(&subjects.resources, &mut missing));
        EnrichedEvent {
            event_uid: event.metadata().uid.clone(),
            class_uid: event.class_uid(),
            time: event.time(),
            event_schema: fingerprint_of(value).unwrap_or_default() as i64,
            event: value.to_vec(),
            user_context,
            device_context,
            asset_context,
            missing_context: missing,
        }
    }
}

impl Operator for Enrich {
    fn restore(&mut self, state: &dyn State) -> Result<(), ComponentError> {
        let mut identities = IdentityTable::new();
        scan(state, IDENTITY_TABLE, IdentityEntry::decode, |uid, entry| identities.put(uid, &entry).map_err(full))?;
        let mut devices = DeviceTable::default();
        scan(state, DEVICE_TABLE, DeviceEntry::decode, |uid, entry| {
            devices.put(entry.time, self.rules.device_context(uid, &entry));
            Ok(())
        })?;
        let mut assets = AssetTable::default();
        scan(state, ASSET_TABLE, AssetEntry::decode, |uid, entry| {
            if let Some(context) = self.rules.asset_context(uid, &entry) {
                assets.put(context);
            }
            Ok(())
        })?;
        (self.identities, self.devices, self.assets) = (identities, devices, assets);
        Ok(())
    }

    /// The tables are joined by user, device and resource, while the input can be partitioned by
    /// one of them only: with several workers, every worker keeps whole tables (Kafka Streams'
    /// GlobalKTable), built from every partition, and enriches the events of its own.
    fn partitioning(&self) -> Partitioning {
        Partitioning::GlobalTables
    }

    /// Updates the tables as [`Operator::process`] does, without enriching or rejecting.
    fn apply_context(&mut self, input: &StoredRecord, state: &mut dyn State) -> Result<(), ComponentError> {
        let mut discarded = Output::default();
        self.update_tables(input, state, &mut discarded)?;
        Ok(())
    }

    fn process(&mut self, input: &StoredRecord, state: &mut dyn State, out: &mut Output) -> Result<(), ComponentError> {
        let Some((event, asset_before_delete)) = self.update_tables(input, state, out)? else { return Ok(()) };
        let enriched = self.enrich(&event, &input.record.value, asset_before_delete);
        let key = match &enriched.user_context {
            Some(user) => Some(user.uid.as_bytes().to_vec()),
            None => input.record.key.clone(),
        };
        match weir_schemas::encode(&enriched) {
            Ok(bytes) => out.emit(Record { key, timestamp_ms: enriched.time, headers: Vec::new(), value: bytes }),
            Err(e) => out.reject(
                format!("event {}: cannot encode its EnrichedEvent: {e}", enriched.event_uid),
                &input.record.value,
            ),
        }
        Ok(())
    }

    /// An identity, device or asset entry with every field by name (see
    /// `IdentityEntry::describe` and its siblings); `None` for other tables or damaged bytes.
    fn describe_state(&self, table: &str, _key: &[u8], value: &[u8]) -> Option<Value> {
        match table {
            IDENTITY_TABLE => IdentityEntry::decode(value).ok().map(|entry| entry.describe()),
            DEVICE_TABLE => DeviceEntry::decode(value).ok().map(|entry| entry.describe()),
            ASSET_TABLE => AssetEntry::decode(value).ok().map(|entry| entry.describe()),
            _ => None,
        }
    }
}

/// Who and what an event is about: the keys it is joined by.
#[derive(Debug, Default)]
struct Subjects<'a> {
    user: Option<&'a User>,
    device: Option<&'a Device>,
    resources: Vec<&'a str>,
}

impl<'a> Subjects<'a> {
    fn of(event: &'a SecurityEvent) -> Subjects<'a> {
        match event {
            SecurityEvent::Identity(e) => Subjects { user: Some(&e.actor), ..Subjects::default() },
            SecurityEvent::App(e) => Subjects { user: Some(&e.user), device: e.device.as_ref(), resources: Vec::new() },
            SecurityEvent::AppAlert(e) => {
                Subjects { user: Some(&e.user), device: e.device.as_ref(), resources: Vec::new() }
            }
            SecurityEvent::EndpointDetection(e) => {
                Subjects { user: e.user.as_ref(), device: Some(&e.device), resources: Vec::new() }
            }
            SecurityEvent::DeviceInventory(e) => Subjects { device: Some(&e.device), ..Subjects::default() },
            SecurityEvent::CloudApi(e) => Subjects {
                user: Some(&e.actor.user),
                device: None,
                resources: e.resources.iter().map(|r| r.uid.as_str()).collect(),
            },
            SecurityEvent::ResourceChange(e) => {
                Subjects { user: e.actor.as_ref(), device: None, resources: vec![e.resource.uid.as_str()] }
            }
        }
    }
}

/// The table entry under `key`, decoded; a damaged entry is a fatal error (the state is not what
/// this operator wrote).
fn load<T>(
    state: &dyn State,
    table: &str,
    key: &str,
    decode: fn(&[u8]) -> Result<T, CodecError>,
) -> Result<Option<T>, ComponentError> {
    match state.get(table, key.as_bytes())? {
        None => Ok(None),
        Some(bytes) => decode(&bytes).map(Some).map_err(|e| damaged(table, key.as_bytes(), &e)),
    }
}

/// Calls `each(key, entry)` for every entry of `table`, in key order.
fn scan<T>(
    state: &dyn State,
    table: &str,
    decode: fn(&[u8]) -> Result<T, CodecError>,
    mut each: impl FnMut(&str, T) -> Result<(), ComponentError>,
) -> Result<(), ComponentError> {
    let mut failure = None;
    state.scan(table, &mut |key, value| {
        if failure.is_some() {
            return;
        }
        match (std::str::from_utf8(key), decode(value)) {
            (Ok(uid), Ok(entry)) => failure = each(uid, entry).err(),
            (Err(_), _) => failure = Some(damaged(table, key, &"the key is not UTF-8")),
            (_, Err(e)) => failure = Some(damaged(table, key, &e)),
        }
    })?;
    failure.map_or(Ok(()), Err)
}

/// The identity projection cannot grow: stop rather than join wrongly.
fn full(error: TableFull) -> ComponentError {
    ComponentError::fatal(format!("enrich: {error}"))
}

fn damaged(table: &str, key: &[u8], why: &dyn std::fmt::Display) -> ComponentError {
    ComponentError::fatal(format!(
        "enrich state entry {table}/{} is damaged: {why}",
        String::from_utf8_lossy(key).chars().take(64).collect::<String>()
    ))
}

/// The status a lifecycle event gives its target users; see the module documentation.
fn lifecycle_status(event: &IdentityActivity) -> Option<&'static str> {
    if event.class_uid != ocsf::ACCOUNT_CHANGE || event.status_id == ocsf::STATUS_FAILURE {
        return None;
    }
    match event.activity_id {
        2 | 12 => Some("ACTIVE"),
        5 if event.event_type.contains("deactivate") => Some("DEPROVISIONED"),
        5 => Some("SUSPENDED"),
        6 => Some("DEPROVISIONED"),
        9 => Some("LOCKED_OUT"),
        _ => None,
    }
}

/// Whether a group-management event adds (true) or removes (false) its target users.
fn membership_change(event: &IdentityActivity) -> Option<bool> {
    if event.class_uid != ocsf::GROUP_MANAGEMENT || event.status_id == ocsf::STATUS_FAILURE {
        return None;
    }
    match event.activity_id {
        3 => Some(true),
        4 => Some(false),
        _ => None,
    }
}

/// What a change-feed record says about its resource; see the module documentation.
fn asset_update(change: &ResourceChange) -> AssetUpdate {
    let mut update = AssetUpdate {
        time: change.time,
        delete: change.change_type == ChangeType::Delete,
        account: change.cloud.account_uid.clone().filter(|a| !a.is_empty()),
        region: change.resource.region.clone().or_else(|| change.cloud.region.clone()).filter(|r| !r.is_empty()),
        tags: None,
        public: None,
        encrypted: None,
    };
    let tags_changed = change.changes.iter().any(|c| {
        let path = c.property.to_ascii_lowercase();
        path == "tags" || path.starts_with("tags.") || path.contains(".tags")
    });
    if !change.resource.tags.is_empty() || tags_changed {
        update.tags = Some(change.resource.tags.clone());
    }
    for property in &change.changes {
        let (public, encrypted) = property_facts(property);
        update.public = public.or(update.public);
        update.encrypted = encrypted.or(update.encrypted);
    }
    update
}

/// Whether a changed property says the resource is public and/or encrypted.
fn property_facts(change: &PropertyChange) -> (Option<bool>, Option<bool>) {
    let path = change.property.to_ascii_lowercase();
    let last = path.rsplit(['.', '/']).next().unwrap_or_default();
    let raw = change.new_value.as_deref();
    let value: Option<Value> = raw.and_then(|text| serde_json::from_str(text).ok());
    let boolean = value.as_ref().and_then(|v| v.as_bool().or_else(|| v.as_str().and_then(yes_no)));
    let text = value.as_ref().and_then(Value::as_str).map(str::to_ascii_lowercase);
    let set = value.as_ref().is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
    let public = match last {
        "publicnetworkaccess" => match text.as_deref() {
            Some("enabled") => Some(true),
            Some("disabled") => Some(false),
            _ => None,
        },
        "allowblobpublicaccess" | "publiclyaccessible" => boolean,
        "defaultaction" if path.ends_with("networkacls.defaultaction") => match text.as_deref() {
            Some("allow") => Some(true),
            Some("deny") => Some(false),
            _ => None,
        },
        _ if (path.contains("iampolicy") || path.contains("bindings"))
            && raw.is_some_and(|r| r.contains("allUsers") || r.contains("allAuthenticatedUsers")) =>
        {
            Some(true)
        }
        _ => None,
    };
    let encrypted = match last {
        "encrypted" | "storageencrypted" => boolean,
        "enabled" if path.contains("encryption") => boolean,
        "kmskeyname" | "kmskeyid" | "kmsmasterkeyid" => set.then_some(true),
        "serversideencryptionconfiguration" => Some(set),
        _ => None,
    };
    (public, encrypted)
}

/// A JSON-text value from `unmapped` as plain text, when it is a non-empty JSON string.
fn json_string(json: &str) -> Option<String> {
    serde_json::from_str::<String>(json).ok().filter(|s| !s.is_empty())
}

/// `true`/`yes` → true, `false`/`no` → false, ASCII case ignored.
fn yes_no(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// Whether `tag` is `name`, or ends with `/name` (ASCII case ignored).
fn tag_is(tag: &str, name: &str) -> bool {
    let Some(head_len) = tag.len().checked_sub(name.len()) else { return false };
    let name_matches = tag.get(head_len..).is_some_and(|tail| tail.eq_ignore_ascii_case(name));
    name_matches && (head_len == 0 || tag.as_bytes()[head_len - 1] == b'/')
}

/// What follows `prefix` in `tag`, where the prefix is at the start or right after a `/` (ASCII
/// case ignored); `None` when it does not occur or nothing follows it.
fn tag_value<'a>(tag: &'a str, prefix: &str) -> Option<&'a str> {
    let starts = std::iter::once(0).chain(tag.match_indices('/').map(|(at, _)| at + 1));
    starts
        .filter_map(|at| tag.get(at..))
        .find(|rest| starts_with_ignore_case(rest, prefix))
        .map(|rest| &rest[prefix.len()..])
        .filter(|value| !value.is_empty())
}

/// The numeric parts of a dotted version: the leading digits of each part (`7.10.17706` →
/// 7, 10, 17706; `6.1-beta` → 6, 1); `None` when a part starts with no digit.
fn version_parts(version: &str) -> Option<Vec<u64>> {
    version
        .trim()
        .split('.')
        .map(|part| {
            let digits = part.bytes().take_while(u8::is_ascii_digit).count();
            part[..digits].parse::<u64>().ok()
        })
        .collect()
}

/// Compares dotted versions part by part, missing parts reading 0.
fn compare_versions(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let len = a.len().max(b.len());
    let part = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..len).map(|i| part(a, i).cmp(&part(b, i))).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
}
