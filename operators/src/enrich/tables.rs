//! The enrich operator's tables — identities, devices, assets — in their two halves.
//!
//! - **Entries in [`State`](weir_schemas::component::State)**, one per key, written during
//!   `process` and committed with the input offsets: the source of truth. An entry holds what is
//!   needed to apply later updates in event-time order (the time of each group of fields,
//!   tombstones), in the compact layout documented on each entry type ([`IdentityEntry`],
//!   [`DeviceEntry`], [`AssetEntry`]; primitives in [`super::codec`]). The update rules live on
//!   the entries: an update older than what an entry holds for a field group leaves that group
//!   alone, so the final state does not depend on arrival order.
//! - **In-memory projections** for joins ([`IdentityTable`], [`DeviceTable`], [`AssetTable`]):
//!   only what the contexts show, with the indexes (alias → identity, hostname → device). They
//!   are rebuilt from the entries by `restore` and kept in step by `process`.
//!
//! The identity projection is built to hold millions of users: each user is one 32-byte row;
//! its keys (uid, login, email, aliases) sit packed in one shared key arena and its groups as
//! interned ids in a group arena, so no per-user allocation; the uid index and the alias index
//! are hashbrown tables of 8-byte slots (row, and where the key is in the arena, so checking a
//! candidate reads the arena only and no key is stored twice). Department, title, manager,
//! status and group names are interned: kept once however many users share them, and never
//! freed until the next restore.
//!
//! Joins on logins, emails, aliases and hostnames ignore ASCII case; uids match exactly. An alias
//! two identities claim resolves to the one for which it is the login, then the email, then an
//! alias, ties to the smaller uid; a hostname two devices claim resolves to the device seen last
//! (by event time), ties to the smaller uid. Both rules depend only on the table's contents, so
//! a restored table answers exactly as the live one did.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher, RandomState};

use hashbrown::HashTable;
use weir_schemas::events::{AssetContext, DeviceContext, Identity, UserContext};

use super::codec::{CodecError, Reader, Writer};

/// State table of identities, keyed by user id.
pub const IDENTITY_TABLE: &str = "identity";
/// State table of devices, keyed by device id.
pub const DEVICE_TABLE: &str = "device";
/// State table of cloud assets, keyed by resource id.
pub const ASSET_TABLE: &str = "asset";

/// The time of a group of fields that nothing has set yet: older than any update.
pub const NEVER: i64 = i64::MIN;

/// Layout version of every entry (the first byte).
const LAYOUT_V1: u8 = 1;

/// `Some` non-empty text.
fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

// ---- identities ----

/// One group a user joined or left, with when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMembership {
    /// Group name.
    pub name: String,
    /// Event time of what set it.
    pub time: i64,
    /// Member (true) or removed (false: kept so an older "add" cannot bring it back).
    pub member: bool,
}

/// A user in the identity table (state), with the time of each group of fields.
///
/// Three groups of fields, each with its own time, each changed only by an update newer than it:
/// the profile (login, email, aliases, names, department, title, manager) by snapshots; the
/// status by snapshots and lifecycle events, a snapshot winning a tie; group memberships by
/// snapshots that list groups (replacing every membership not newer than the snapshot) and by
/// membership events (per group). A user first seen in an event, before any snapshot, is a
/// stub known by the login and email that event gave.
///
/// Layout (version 1): `u8 1`, `time snapshot_time`, `opt_str login`, `opt_str email`,
/// `strs aliases`, `opt_str display_name`, `opt_str department`, `opt_str title`,
/// `opt_str manager`, `opt_str manager_uid`, `opt_str status`, `time status_time`,
/// `time groups_time`, `len` memberships each `str name, time time, u8 member (0|1)`, sorted by
/// name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityEntry {
    /// `updated` of the snapshot the profile comes from; [`NEVER`] for a stub.
    pub snapshot_time: i64,
    /// Login name.
    pub login: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Other logins and emails.
    pub aliases: Vec<String>,
    /// Full name.
    pub display_name: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// The manager as the directory names them.
    pub manager: Option<String>,
    /// The manager's user id.
    pub manager_uid: Option<String>,
    /// Account status.
    pub status: Option<String>,
    /// Time of the status.
    pub status_time: i64,
    /// `updated` of the last snapshot that listed groups.
    pub groups_time: i64,
    /// Memberships newer than `groups_time` and the snapshot's groups, sorted by name.
    pub groups: Vec<GroupMembership>,
}

impl IdentityEntry {
    /// A user known only from an event, by the login and email it gave.
    pub fn stub(login: Option<&str>, email: Option<&str>) -> IdentityEntry {
        IdentityEntry {
            snapshot_time: NEVER,
            login: login.and_then(non_empty).map(str::to_string),
            email: email.and_then(non_empty).map(str::to_string),
            aliases: Vec::new(),
            display_name: None,
            department: None,
            title: None,
            manager: None,
            manager_uid: None,
            status: None,
            status_time: NEVER,
            groups_time: NEVER,
            groups: Vec::new(),
        }
    }

    /// Applies a directory snapshot; false (nothing changed) when it is not newer than the
    /// snapshot held (equal times keep what is held).
    pub fn apply_snapshot(&mut self, snapshot: &Identity) -> bool {
        let time = snapshot.updated;
        if time <= self.snapshot_time {
            return false;
        }
        let text = |value: &Option<String>| value.as_deref().and_then(non_empty).map(str::to_string);
        self.snapshot_time = time;
        self.login = non_empty(&snapshot.login).map(str::to_string);
        self.email = text(&snapshot.email);
        self.aliases = snapshot.aliases.iter().filter(|a| !a.is_empty()).cloned().collect();
        self.display_name = text(&snapshot.display_name);
        self.department = text(&snapshot.department);
        self.title = text(&snapshot.title);
        self.manager = text(&snapshot.manager);
        self.manager_uid = text(&snapshot.manager_uid);
        if time >= self.status_time {
            self.status = non_empty(&snapshot.status).map(str::to_string);
            self.status_time = time;
        }
        // A snapshot without groups does not say (Okta puts every user in Everyone): memberships
        // stay as they are.
        if !snapshot.groups.is_empty() {
            let mut groups: BTreeMap<&str, (i64, bool)> =
                self.groups.iter().filter(|g| g.time > time).map(|g| (g.name.as_str(), (g.time, g.member))).collect();
            for name in snapshot.groups.iter().filter(|g| !g.is_empty()) {
                groups.entry(name).or_insert((time, true));
            }
            self.groups = groups
                .into_iter()
                .map(|(name, (time, member))| GroupMembership { name: name.to_string(), time, member })
                .collect();
            self.groups_time = time;
        }
        true
    }

    /// Sets the status from a lifecycle event at `time`, if newer than the status held.
    pub fn apply_status(&mut self, status: &str, time: i64) -> bool {
        if time <= self.status_time {
            return false;
        }
        self.status = Some(status.to_string());
        self.status_time = time;
        true
    }

    /// Adds the user to `group` (or removes it) from a membership event at `time`, if newer than
    /// the last snapshot that listed groups and than what is held for that group.
    pub fn apply_membership(&mut self, group: &str, member: bool, time: i64) -> bool {
        if time <= self.groups_time || group.is_empty() {
            return false;
        }
        match self.groups.binary_search_by(|g| g.name.as_str().cmp(group)) {
            Ok(at) if self.groups[at].time >= time => false,
            Ok(at) => {
                self.groups[at].time = time;
                self.groups[at].member = member;
                true
            }
            Err(at) => {
                self.groups.insert(at, GroupMembership { name: group.to_string(), time, member });
                true
            }
        }
    }

    /// Names of the groups the user is a member of, sorted.
    pub fn member_groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().filter(|g| g.member).map(|g| g.name.as_str())
    }

    /// The entry's bytes (layout in the type's documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(LAYOUT_V1);
        w.time(self.snapshot_time);
        w.opt_str(self.login.as_deref());
        w.opt_str(self.email.as_deref());
        w.strs(&self.aliases);
        for field in [&self.display_name, &self.department, &self.title, &self.manager, &self.manager_uid] {
            w.opt_str(field.as_deref());
        }
        w.opt_str(self.status.as_deref());
        w.time(self.status_time);
        w.time(self.groups_time);
        w.len(self.groups.len());
        for group in &self.groups {
            w.str(&group.name);
            w.time(group.time);
            w.u8(u8::from(group.member));
        }
        w.finish()
    }

    /// Reads an entry written by [`IdentityEntry::encode`].
    pub fn decode(bytes: &[u8]) -> Result<IdentityEntry, CodecError> {
        let mut r = Reader::new(bytes, LAYOUT_V1)?;
        let entry = IdentityEntry {
            snapshot_time: r.time()?,
            login: r.opt_string()?,
            email: r.opt_string()?,
            aliases: r.strs()?,
            display_name: r.opt_string()?,
            department: r.opt_string()?,
            title: r.opt_string()?,
            manager: r.opt_string()?,
            manager_uid: r.opt_string()?,
            status: r.opt_string()?,
            status_time: r.time()?,
            groups_time: r.time()?,
            groups: {
                let count = r.len()?;
                let mut groups = Vec::with_capacity(count);
                for _ in 0..count {
                    groups.push(GroupMembership { name: r.str()?.to_string(), time: r.time()?, member: r.bool()? });
                }
                groups
            },
        };
        r.finish()?;
        Ok(entry)
    }
}

/// A row of the identity projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RowId(u32);

/// Interned text: id → string, string → id.
#[derive(Debug, Default)]
struct Symbols {
    strings: Vec<Box<str>>,
    index: HashTable<u32>,
}

/// The id of "no value" in a row.
const NO_SYMBOL: u32 = u32::MAX;

impl Symbols {
    fn intern(&mut self, hasher: &RandomState, text: Option<&str>) -> Result<u32, TableFull> {
        let Some(text) = text else { return Ok(NO_SYMBOL) };
        let hash = hash_exact(hasher, text);
        let strings = &mut self.strings;
        if let Some(&id) = self.index.find(hash, |&id| &*strings[id as usize] == text) {
            return Ok(id);
        }
        let id = u32::try_from(strings.len()).ok().filter(|&id| id < NO_SYMBOL).ok_or(TableFull)?;
        strings.push(text.into());
        self.index.insert_unique(hash, id, |&id| hash_exact(hasher, &strings[id as usize]));
        Ok(id)
    }

    fn get(&self, id: u32) -> Option<&str> {
        self.strings.get(id as usize).map(|s| &**s)
    }

    fn heap_bytes(&self) -> usize {
        self.strings.capacity() * std::mem::size_of::<Box<str>>()
            + self.strings.iter().map(|s| malloc_size(s.len())).sum::<usize>()
            + self.index.allocation_size()
    }
}

/// The identity projection ran out of 32-bit offsets (4 GiB of keys, a billion users or
/// four billion distinct names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the in-memory identity table is full (more than 4 GiB of logins and emails)")]
pub struct TableFull;

/// One user in the identity projection: 32 bytes, its keys and group ids in the shared arenas.
#[derive(Clone, Copy, Debug)]
struct IdentityRow {
    /// Where its keys start in [`IdentityTable::keys`]: uid, login, email, aliases, each a
    /// varint length and UTF-8 (an absent login or email is empty).
    keys_at: u32,
    /// How many bytes its keys take.
    keys_len: u32,
    /// Where its group ids start in [`IdentityTable::group_ids`].
    groups_at: u32,
    /// How many groups.
    groups_len: u32,
    status: u32,
    department: u32,
    title: u32,
    manager: u32,
}

/// A uid in the uid index: its row, and where the uid is in the key arena (so checking a
/// candidate reads the arena only, not the row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UidSlot {
    row: u32,
    at: u32,
}

/// A login, email or alias in the alias index: the row and the key's rank (1 login, 2 email,
/// 3 alias) packed as `row << 2 | rank`, and where the key is in the key arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AliasSlot {
    row_rank: u32,
    at: u32,
}

impl AliasSlot {
    fn row(self) -> u32 {
        self.row_rank >> 2
    }

    fn rank(self) -> u32 {
        self.row_rank & 3
    }
}

/// Rows beyond this cannot be ranked in an [`AliasSlot`].
const MAX_ROWS: usize = 1 << 30;

/// Arenas smaller than this are never compacted.
const COMPACT_MIN_BYTES: usize = 1 << 20;

/// The key at `at` in a key arena, and where the next one starts.
fn key_at(arena: &[u8], at: usize) -> (&str, usize) {
    let (mut len, mut shift, mut next) = (0usize, 0u32, at);
    while let Some(&byte) = arena.get(next) {
        next += 1;
        len |= usize::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let end = next.saturating_add(len).min(arena.len());
    // The arena only holds keys `IdentityTable::put` copied from &str, so this is UTF-8.
    (std::str::from_utf8(&arena[next.min(end)..end]).unwrap_or(""), end)
}

/// Appends a key to a key arena.
fn push_key(arena: &mut Vec<u8>, key: &str) {
    let mut len = key.len();
    while len >= 0x80 {
        arena.push((len as u8) | 0x80);
        len >>= 7;
    }
    arena.push(len as u8);
    arena.extend_from_slice(key.as_bytes());
}

/// The identity projection: users by uid and by login, email or alias, with what a
/// [`UserContext`] shows. See the module documentation for its layout.
///
/// Keys and group ids live in two arenas; an update appends the user's new keys and groups and
/// leaves the old ones as garbage, and when garbage is more than half an arena (of at least
/// 1 MiB) the arenas are compacted in place of a restore (rows and index slots re-pointed, no
/// rehashing).
#[derive(Debug)]
pub struct IdentityTable {
    rows: Vec<IdentityRow>,
    keys: Vec<u8>,
    group_ids: Vec<u32>,
    garbage_keys: usize,
    garbage_groups: usize,
    by_uid: HashTable<UidSlot>,
    by_alias: HashTable<AliasSlot>,
    symbols: Symbols,
    hasher: RandomState,
    /// Arenas smaller than this are never compacted.
    compact_min_bytes: usize,
}

impl Default for IdentityTable {
    fn default() -> IdentityTable {
        IdentityTable {
            rows: Vec::new(),
            keys: Vec::new(),
            group_ids: Vec::new(),
            garbage_keys: 0,
            garbage_groups: 0,
            by_uid: HashTable::new(),
            by_alias: HashTable::new(),
            symbols: Symbols::default(),
            hasher: RandomState::new(),
            compact_min_bytes: COMPACT_MIN_BYTES,
        }
    }
}

/// Hash of text compared exactly.
fn hash_exact(hasher: &RandomState, text: &str) -> u64 {
    let mut state = hasher.build_hasher();
    state.write(text.as_bytes());
    state.finish()
}

/// Hash of text compared ignoring ASCII case (the hash of its ASCII lowercase).
fn hash_folded(hasher: &RandomState, text: &str) -> u64 {
    let mut state = hasher.build_hasher();
    let mut chunk = [0u8; 64];
    for part in text.as_bytes().chunks(chunk.len()) {
        let folded = &mut chunk[..part.len()];
        folded.copy_from_slice(part);
        folded.make_ascii_lowercase();
        state.write(folded);
    }
    state.finish()
}

impl IdentityTable {
    /// An empty table.
    pub fn new() -> IdentityTable {
        IdentityTable::default()
    }

    /// An empty table that compacts its arenas from `bytes` on, for tests.
    #[cfg(test)]
    pub fn with_compaction_from(bytes: usize) -> IdentityTable {
        IdentityTable { compact_min_bytes: bytes, ..IdentityTable::default() }
    }

    /// How many users it holds.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Bytes of the key arena, for tests of compaction.
    #[cfg(test)]
    pub fn key_arena_len(&self) -> usize {
        self.keys.len()
    }

    fn key(&self, at: u32) -> &str {
        key_at(&self.keys, at as usize).0
    }

    fn uid_of(&self, row: u32) -> &str {
        self.key(self.rows[row as usize].keys_at)
    }

    /// The user with this uid.
    pub fn find_uid(&self, uid: &str) -> Option<RowId> {
        let keys = &self.keys;
        let found = self.by_uid.find(hash_exact(&self.hasher, uid), |slot| key_at(keys, slot.at as usize).0 == uid);
        found.map(|slot| RowId(slot.row))
    }

    /// The user with this login, email or alias (ASCII case ignored); see the module
    /// documentation for which user an alias two users claim resolves to.
    pub fn find_alias(&self, key: &str) -> Option<RowId> {
        if key.is_empty() {
            return None;
        }
        let mut best: Option<AliasSlot> = None;
        for &slot in self.by_alias.iter_hash(hash_folded(&self.hasher, key)) {
            if !self.key(slot.at).eq_ignore_ascii_case(key) {
                continue;
            }
            best = match best {
                Some(held) if (held.rank(), self.uid_of(held.row())) <= (slot.rank(), self.uid_of(slot.row())) => {
                    Some(held)
                }
                _ => Some(slot),
            };
        }
        best.map(|slot| RowId(slot.row()))
    }

    /// What the table knows about a user, as an enriched event shows it.
    pub fn context(&self, row: RowId) -> UserContext {
        let row = &self.rows[row.0 as usize];
        let symbol = |id: u32| self.symbols.get(id).map(str::to_string);
        let end = row.keys_at as usize + row.keys_len as usize;
        let mut at = row.keys_at as usize;
        let mut next_key = || {
            if at >= end {
                return None;
            }
            let (key, next) = key_at(&self.keys, at);
            at = next;
            Some(key)
        };
        let uid = next_key().unwrap_or("").to_string();
        let login = next_key().and_then(non_empty).map(str::to_string);
        let email = next_key().and_then(non_empty).map(str::to_string);
        let aliases = std::iter::from_fn(next_key).map(str::to_string).collect();
        let groups = &self.group_ids[row.groups_at as usize..][..row.groups_len as usize];
        UserContext {
            uid,
            login,
            email,
            status: symbol(row.status),
            department: symbol(row.department),
            title: symbol(row.title),
            manager: symbol(row.manager),
            groups: groups.iter().filter_map(|&id| symbol(id)).collect(),
            aliases,
        }
    }

    /// Inserts or replaces the user `uid` with what `entry` holds.
    pub fn put(&mut self, uid: &str, entry: &IdentityEntry) -> Result<(), TableFull> {
        let existing = self.find_uid(uid).map(|RowId(row)| row);
        let row = match existing {
            Some(row) => row,
            None if self.rows.len() < MAX_ROWS => self.rows.len() as u32,
            None => return Err(TableFull),
        };
        let (keys_len, groups_len) = (self.keys.len(), self.group_ids.len());
        let new_row = match self.append(uid, entry) {
            Ok(new_row) => new_row,
            Err(full) => {
                self.keys.truncate(keys_len);
                self.group_ids.truncate(groups_len);
                return Err(full);
            }
        };
        match existing {
            Some(row) => {
                self.unindex_aliases(row);
                let old = std::mem::replace(&mut self.rows[row as usize], new_row);
                self.garbage_keys += old.keys_len as usize;
                self.garbage_groups += old.groups_len as usize;
                if let Some(slot) = self.by_uid.find_mut(hash_exact(&self.hasher, uid), |slot| slot.row == row) {
                    slot.at = new_row.keys_at;
                }
            }
            None => {
                self.rows.push(new_row);
                let (keys, hasher) = (&self.keys, &self.hasher);
                let slot = UidSlot { row, at: new_row.keys_at };
                self.by_uid.insert_unique(hash_exact(hasher, uid), slot, |slot| {
                    hash_exact(hasher, key_at(keys, slot.at as usize).0)
                });
            }
        }
        self.index_aliases(row);
        let mostly_garbage = |garbage: usize, len: usize| garbage * 2 > len && len >= self.compact_min_bytes;
        if mostly_garbage(self.garbage_keys, self.keys.len())
            || mostly_garbage(self.garbage_groups * 4, self.group_ids.len() * 4)
        {
            self.compact();
        }
        Ok(())
    }

    /// Appends a user's keys and group ids to the arenas and interns its text: its new row.
    fn append(&mut self, uid: &str, entry: &IdentityEntry) -> Result<IdentityRow, TableFull> {
        let offset = |len: usize| u32::try_from(len).map_err(|_| TableFull);
        let keys_at = offset(self.keys.len())?;
        let keys = [uid, entry.login.as_deref().unwrap_or(""), entry.email.as_deref().unwrap_or("")];
        for key in keys.into_iter().chain(entry.aliases.iter().map(String::as_str)) {
            push_key(&mut self.keys, key);
        }
        let keys_len = offset(self.keys.len())? - keys_at;
        let groups_at = offset(self.group_ids.len())?;
        for group in entry.member_groups() {
            let id = self.symbols.intern(&self.hasher, Some(group))?;
            self.group_ids.push(id);
        }
        let groups_len = offset(self.group_ids.len())? - groups_at;
        Ok(IdentityRow {
            keys_at,
            keys_len,
            groups_at,
            groups_len,
            status: self.symbols.intern(&self.hasher, entry.status.as_deref())?,
            department: self.symbols.intern(&self.hasher, entry.department.as_deref())?,
            title: self.symbols.intern(&self.hasher, entry.title.as_deref())?,
            manager: self.symbols.intern(&self.hasher, entry.manager.as_deref())?,
        })
    }

    /// The alias-index slots of a row: each non-empty login, email and alias, once (the first of
    /// keys equal ignoring case), with its rank and place in the key arena.
    fn alias_slots(&self, row: u32) -> Vec<(AliasSlot, u64)> {
        let IdentityRow { keys_at, keys_len, .. } = self.rows[row as usize];
        let end = keys_at as usize + keys_len as usize;
        let (_, mut at) = key_at(&self.keys, keys_at as usize);
        let mut seen: Vec<&str> = Vec::new();
        let mut slots = Vec::new();
        let mut rank = 1;
        while at < end {
            let (key, next) = key_at(&self.keys, at);
            if !key.is_empty() && !seen.iter().any(|s| s.eq_ignore_ascii_case(key)) {
                seen.push(key);
                let slot = AliasSlot { row_rank: row << 2 | rank, at: at as u32 };
                slots.push((slot, hash_folded(&self.hasher, key)));
            }
            (at, rank) = (next, (rank + 1).min(3));
        }
        slots
    }

    fn index_aliases(&mut self, row: u32) {
        for (slot, hash) in self.alias_slots(row) {
            let (keys, hasher) = (&self.keys, &self.hasher);
            self.by_alias.insert_unique(hash, slot, |slot| hash_folded(hasher, key_at(keys, slot.at as usize).0));
        }
    }

    fn unindex_aliases(&mut self, row: u32) {
        for (slot, hash) in self.alias_slots(row) {
            if let Ok(entry) = self.by_alias.find_entry(hash, |held| *held == slot) {
                entry.remove();
            }
        }
    }

    /// Drops the garbage updates left in the arenas: copies every row's keys and groups to new
    /// arenas in row order and re-points rows and index slots (hashes do not change).
    fn compact(&mut self) {
        let mut keys = Vec::with_capacity(self.keys.len() - self.garbage_keys);
        let mut group_ids = Vec::with_capacity(self.group_ids.len() - self.garbage_groups);
        let mut old_keys_at = Vec::with_capacity(self.rows.len());
        for row in &mut self.rows {
            old_keys_at.push(row.keys_at);
            let (at, len) = (row.keys_at as usize, row.keys_len as usize);
            row.keys_at = keys.len() as u32;
            keys.extend_from_slice(&self.keys[at..at + len]);
            let (at, len) = (row.groups_at as usize, row.groups_len as usize);
            row.groups_at = group_ids.len() as u32;
            group_ids.extend_from_slice(&self.group_ids[at..at + len]);
        }
        for slot in self.by_uid.iter_mut() {
            slot.at = self.rows[slot.row as usize].keys_at;
        }
        for slot in self.by_alias.iter_mut() {
            let row = slot.row() as usize;
            slot.at = slot.at - old_keys_at[row] + self.rows[row].keys_at;
        }
        (self.keys, self.group_ids) = (keys, group_ids);
        (self.garbage_keys, self.garbage_groups) = (0, 0);
    }

    /// What the table takes on the heap, estimated from its sizes: rows, the key and group
    /// arenas (their used length: pages past it are never touched), index tables, interned
    /// text.
    pub fn memory_estimate(&self) -> IdentityMemory {
        IdentityMemory {
            rows: self.rows.len() * std::mem::size_of::<IdentityRow>(),
            keys: self.keys.len(),
            groups: self.group_ids.len() * std::mem::size_of::<u32>(),
            uid_index: self.by_uid.allocation_size(),
            alias_index: self.by_alias.allocation_size(),
            interned: self.symbols.heap_bytes(),
        }
    }
}

/// Heap taken by an [`IdentityTable`], in bytes, by part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentityMemory {
    /// The rows.
    pub rows: usize,
    /// The key arena.
    pub keys: usize,
    /// The group-id arena.
    pub groups: usize,
    /// The uid index.
    pub uid_index: usize,
    /// The alias index.
    pub alias_index: usize,
    /// Interned text and its index.
    pub interned: usize,
}

impl IdentityMemory {
    /// All parts together.
    pub fn total(&self) -> usize {
        self.rows + self.keys + self.groups + self.uid_index + self.alias_index + self.interned
    }
}

/// The chunk glibc's malloc takes for `len` bytes (0 for no allocation).
fn malloc_size(len: usize) -> usize {
    if len == 0 {
        0
    } else {
        ((len + 8 + 15) & !15).max(32)
    }
}

// ---- devices ----

/// A host in the device table (state): the inventory's facts as of `time`. A newer inventory
/// record replaces the whole entry (it reports the host's full state); an older one is ignored.
/// Derived facts (crown jewel, sensitivity, owner, compliance) are not stored: they are derived
/// from these with the operator's configuration whenever the projection is built, so a changed
/// configuration applies to every device after a restart.
///
/// Layout (version 1): `u8 1`, `time time`, `opt_str hostname`, `opt_str os_name`,
/// `opt_str os_version`, `opt_str agent_version`, `opt_str last_login_user`,
/// `opt_bool reduced_functionality_mode`, `strs tags` (sorted, unique).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceEntry {
    /// Event time of the inventory record.
    pub time: i64,
    /// Host name.
    pub hostname: Option<String>,
    /// Operating system.
    pub os_name: Option<String>,
    /// Operating system version.
    pub os_version: Option<String>,
    /// Security agent version.
    pub agent_version: Option<String>,
    /// The user last logged in, when the inventory says.
    pub last_login_user: Option<String>,
    /// Whether the agent runs in reduced functionality mode.
    pub reduced_functionality_mode: Option<bool>,
    /// Vendor tags, sorted and unique.
    pub tags: Vec<String>,
}

impl DeviceEntry {
    /// The entry's bytes (layout in the type's documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(LAYOUT_V1);
        w.time(self.time);
        for field in [&self.hostname, &self.os_name, &self.os_version, &self.agent_version, &self.last_login_user] {
            w.opt_str(field.as_deref());
        }
        w.opt_bool(self.reduced_functionality_mode);
        w.strs(&self.tags);
        w.finish()
    }

    /// Reads an entry written by [`DeviceEntry::encode`].
    pub fn decode(bytes: &[u8]) -> Result<DeviceEntry, CodecError> {
        let mut r = Reader::new(bytes, LAYOUT_V1)?;
        let entry = DeviceEntry {
            time: r.time()?,
            hostname: r.opt_string()?,
            os_name: r.opt_string()?,
            os_version: r.opt_string()?,
            agent_version: r.opt_string()?,
            last_login_user: r.opt_string()?,
            reduced_functionality_mode: r.opt_bool()?,
            tags: r.strs()?,
        };
        r.finish()?;
        Ok(entry)
    }
}

/// A device in the projection: its context and when it was last reported.
#[derive(Debug)]
struct DeviceRow {
    time: i64,
    context: DeviceContext,
}

/// The device projection: contexts by device id and by hostname.
///
/// A hostname is indexed in ASCII lowercase, and also by its first label when it is a dotted
/// name (`HOST1.corp.example.com` is found as `host1` too).
#[derive(Debug, Default)]
pub struct DeviceTable {
    by_uid: HashMap<String, DeviceRow>,
    by_hostname: HashMap<String, Vec<String>>,
}

/// The hostname keys a device is indexed under.
fn hostname_keys(hostname: &str) -> Vec<String> {
    let full = hostname.to_ascii_lowercase();
    let short = full.split('.').next().filter(|short| !short.is_empty() && short.len() < full.len());
    let short = short.map(str::to_string);
    std::iter::once(full).chain(short).collect()
}

impl DeviceTable {
    /// The device with this id.
    pub fn by_uid(&self, uid: &str) -> Option<&DeviceContext> {
        self.by_uid.get(uid).map(|row| &row.context)
    }

    /// The device with this hostname (else with its first label), ASCII case ignored; of two
    /// devices with the same name, the one seen last (ties: the smaller uid).
    pub fn by_hostname(&self, hostname: &str) -> Option<&DeviceContext> {
        let keys = hostname_keys(hostname);
        keys.iter().find_map(|key| {
            let claimants = self.by_hostname.get(key)?;
            let best = claimants
                .iter()
                .filter_map(|uid| Some((self.by_uid.get(uid)?, uid)))
                .max_by(|(a, a_uid), (b, b_uid)| a.time.cmp(&b.time).then_with(|| b_uid.cmp(a_uid)))?;
            Some(&best.0.context)
        })
    }

    /// Inserts or replaces a device.
    pub fn put(&mut self, time: i64, context: DeviceContext) {
        let uid = context.uid.clone();
        if let Some(old) = self.by_uid.remove(&uid) {
            self.unindex(&uid, old.context.hostname.as_deref());
        }
        for key in context.hostname.as_deref().map(hostname_keys).unwrap_or_default() {
            self.by_hostname.entry(key).or_default().push(uid.clone());
        }
        self.by_uid.insert(uid, DeviceRow { time, context });
    }

    fn unindex(&mut self, uid: &str, hostname: Option<&str>) {
        for key in hostname.map(hostname_keys).unwrap_or_default() {
            if let Some(claimants) = self.by_hostname.get_mut(&key) {
                claimants.retain(|claimant| claimant != uid);
                if claimants.is_empty() {
                    self.by_hostname.remove(&key);
                }
            }
        }
    }
}

// ---- assets ----

/// A cloud resource in the asset table (state), merged from change-feed records.
///
/// The base fields (account, region, tags) change with any record newer than `time`; `public`
/// and `encrypted` each keep their own time, because a change record reports only the
/// properties that changed. A delete newer than everything held leaves a tombstone (`deleted`,
/// the delete's time, no facts), so an older change arriving later cannot bring the resource
/// back; a newer create or update does.
///
/// Layout (version 1): `u8 1`, `time time`, `u8 deleted (0|1)`, `opt_str account`,
/// `opt_str region`, `len` tags each `str key, str value` (sorted by key), `opt_bool public`,
/// `time public_time`, `opt_bool encrypted`, `time encrypted_time`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetEntry {
    /// Event time of the newest record applied to the base fields.
    pub time: i64,
    /// Whether the newest record was a delete.
    pub deleted: bool,
    /// Account, subscription or project.
    pub account: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Resource tags.
    pub tags: BTreeMap<String, String>,
    /// Whether the resource is reachable from the internet.
    pub public: Option<bool>,
    /// Time of `public`.
    pub public_time: i64,
    /// Whether the resource is encrypted at rest.
    pub encrypted: Option<bool>,
    /// Time of `encrypted`.
    pub encrypted_time: i64,
}

impl Default for AssetEntry {
    fn default() -> AssetEntry {
        AssetEntry {
            time: NEVER,
            deleted: false,
            account: None,
            region: None,
            tags: BTreeMap::new(),
            public: None,
            public_time: NEVER,
            encrypted: None,
            encrypted_time: NEVER,
        }
    }
}

/// What one change-feed record says about a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AssetUpdate {
    /// Event time.
    pub time: i64,
    /// The resource was deleted.
    pub delete: bool,
    /// Account, subscription or project.
    pub account: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// The resource's tags, when the record says.
    pub tags: Option<BTreeMap<String, String>>,
    /// Public or not, when the record says.
    pub public: Option<bool>,
    /// Encrypted or not, when the record says.
    pub encrypted: Option<bool>,
}

impl AssetEntry {
    /// Applies a change-feed record; false when it changed nothing (older than what is held).
    pub fn apply(&mut self, update: &AssetUpdate) -> bool {
        let time = update.time;
        if update.delete {
            if time <= self.time || time <= self.public_time || time <= self.encrypted_time {
                return false;
            }
            *self =
                AssetEntry { time, deleted: true, public_time: time, encrypted_time: time, ..AssetEntry::default() };
            return true;
        }
        if self.deleted && time <= self.time {
            return false;
        }
        let mut changed = false;
        if time > self.time {
            self.time = time;
            self.deleted = false;
            if update.account.is_some() {
                self.account.clone_from(&update.account);
            }
            if update.region.is_some() {
                self.region.clone_from(&update.region);
            }
            if let Some(tags) = &update.tags {
                self.tags.clone_from(tags);
            }
            changed = true;
        }
        if update.public.is_some() && time > self.public_time {
            (self.public, self.public_time) = (update.public, time);
            changed = true;
        }
        if update.encrypted.is_some() && time > self.encrypted_time {
            (self.encrypted, self.encrypted_time) = (update.encrypted, time);
            changed = true;
        }
        changed
    }

    /// The entry's bytes (layout in the type's documentation).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(LAYOUT_V1);
        w.time(self.time);
        w.u8(u8::from(self.deleted));
        w.opt_str(self.account.as_deref());
        w.opt_str(self.region.as_deref());
        w.len(self.tags.len());
        for (key, value) in &self.tags {
            w.str(key);
            w.str(value);
        }
        w.opt_bool(self.public);
        w.time(self.public_time);
        w.opt_bool(self.encrypted);
        w.time(self.encrypted_time);
        w.finish()
    }

    /// Reads an entry written by [`AssetEntry::encode`].
    pub fn decode(bytes: &[u8]) -> Result<AssetEntry, CodecError> {
        let mut r = Reader::new(bytes, LAYOUT_V1)?;
        let time = r.time()?;
        let deleted = r.bool()?;
        let account = r.opt_string()?;
        let region = r.opt_string()?;
        let count = r.len()?;
        let mut tags = BTreeMap::new();
        for _ in 0..count {
            let key = r.str()?.to_string();
            tags.insert(key, r.str()?.to_string());
        }
        let entry = AssetEntry {
            time,
            deleted,
            account,
            region,
            tags,
            public: r.opt_bool()?,
            public_time: r.time()?,
            encrypted: r.opt_bool()?,
            encrypted_time: r.time()?,
        };
        r.finish()?;
        Ok(entry)
    }
}

/// The asset projection: contexts of resources that exist (tombstones are left out).
#[derive(Debug, Default)]
pub struct AssetTable {
    by_uid: HashMap<String, AssetContext>,
}

impl AssetTable {
    /// The resource with this id.
    pub fn get(&self, uid: &str) -> Option<&AssetContext> {
        self.by_uid.get(uid)
    }

    /// Inserts or replaces a resource.
    pub fn put(&mut self, context: AssetContext) {
        self.by_uid.insert(context.uid.clone(), context);
    }

    /// Removes a resource.
    pub fn remove(&mut self, uid: &str) {
        self.by_uid.remove(uid);
    }
}

// ---- readable forms, for `weir state get` ----

/// A time as `describe_state` shows it; `null` for [`NEVER`].
fn describe_time(ms: i64) -> serde_json::Value {
    match ms {
        NEVER => serde_json::Value::Null,
        ms => crate::describe_time(ms),
    }
}

impl IdentityEntry {
    /// Every field by name, times as ms and RFC 3339 (`null` when never set).
    pub fn describe(&self) -> serde_json::Value {
        let groups: Vec<_> = self
            .groups
            .iter()
            .map(|g| serde_json::json!({ "name": g.name, "time": describe_time(g.time), "member": g.member }))
            .collect();
        serde_json::json!({
            "snapshot_time": describe_time(self.snapshot_time),
            "login": self.login,
            "email": self.email,
            "aliases": self.aliases,
            "display_name": self.display_name,
            "department": self.department,
            "title": self.title,
            "manager": self.manager,
            "manager_uid": self.manager_uid,
            "status": self.status,
            "status_time": describe_time(self.status_time),
            "groups_time": describe_time(self.groups_time),
            "groups": groups,
        })
    }
}

impl DeviceEntry {
    /// Every field by name, the time as ms and RFC 3339.
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "time": describe_time(self.time),
            "hostname": self.hostname,
            "os_name": self.os_name,
            "os_version": self.os_version,
            "agent_version": self.agent_version,
            "last_login_user": self.last_login_user,
            "reduced_functionality_mode": self.reduced_functionality_mode,
            "tags": self.tags,
        })
    }
}

impl AssetEntry {
    /// Every field by name, times as ms and RFC 3339 (`null` when never set).
    pub fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "time": describe_time(self.time),
            "deleted": self.deleted,
            "account": self.account,
            "region": self.region,
            "tags": self.tags,
            "public": self.public,
            "public_time": describe_time(self.public_time),
            "encrypted": self.encrypted,
            "encrypted_time": describe_time(self.encrypted_time),
        })
    }
}
