//! Directory snapshots: users as the identity provider reports them (`identity.avsc`).
//!
//! A snapshot is state, not an event: it carries the whole profile as of `updated`, has no OCSF
//! header, and is not a [`SecurityEvent`](super::SecurityEvent). The enrich operator decodes it by
//! its fingerprint, keeps the newest snapshot of each user and joins events to it.

use serde::{Deserialize, Serialize};

/// `io.weir.Identity`: a directory user (Okta `/api/v1/users`), keyed by its `uid`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The identity provider's user id; the key of the identity table and of the record.
    pub uid: String,
    /// Login name, often an email address.
    pub login: String,
    /// Primary email address.
    pub email: Option<String>,
    /// Other logins and emails of the same person.
    pub aliases: Vec<String>,
    /// Full name.
    pub display_name: Option<String>,
    /// Account status exactly as the identity provider says, e.g. ACTIVE, SUSPENDED.
    pub status: String,
    /// Department.
    pub department: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// The manager as the directory names them (login, email or name).
    pub manager: Option<String>,
    /// The manager's id in the directory.
    pub manager_uid: Option<String>,
    /// Names of the groups the user belongs to.
    pub groups: Vec<String>,
    /// When the identity provider last changed the user, ms since the Unix epoch.
    pub updated: i64,
    /// Vendor of the directory, e.g. Okta.
    pub vendor_name: String,
    /// The Weir source that produced the snapshot.
    pub log_name: String,
    /// Where the raw record is on the log, `<topic>/<partition>/<offset>`.
    pub raw_ref: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Identity;
    use crate::avro::{decode, encode, fingerprint_of, Registry};
    use crate::events::SecurityEvent;
    use crate::{AvroRecord, SchemaError};

    fn full() -> Identity {
        Identity {
            uid: "00u1abcd".into(),
            login: "ada@example.com".into(),
            email: Some("ada@example.com".into()),
            aliases: vec!["ada.lovelace@example.org".into(), "alovelace".into()],
            display_name: Some("Ada Lovelace".into()),
            status: "ACTIVE".into(),
            department: Some("Engineering".into()),
            title: Some("Analyst".into()),
            manager: Some("charles@example.com".into()),
            manager_uid: Some("00u0babb".into()),
            groups: vec!["Everyone".into(), "Engineering".into()],
            updated: 1_718_000_000_123,
            vendor_name: "Okta".into(),
            log_name: "okta_users".into(),
            raw_ref: Some("raw.okta_users/0/42".into()),
        }
    }

    #[test]
    fn identities_round_trip_with_their_fingerprint() {
        for identity in [full(), Identity::default()] {
            let bytes = encode(&identity).expect("encodes");
            assert_eq!(fingerprint_of(&bytes), Some(Identity::fingerprint()));
            assert_eq!(decode::<Identity>(&bytes).expect("decodes"), identity);
        }
        assert_eq!(Registry::embedded().current("io.weir.Identity").map(|s| s.file_stem()), Some("identity"));
    }

    #[test]
    fn every_schema_field_has_a_rust_field() {
        let json = serde_json::to_value(full()).expect("serializes");
        let apache_avro::Schema::Record(record) = Identity::schema() else { panic!("a record") };
        let mut schema_fields: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
        let mut rust_fields: Vec<&str> = json.as_object().expect("an object").keys().map(String::as_str).collect();
        schema_fields.sort_unstable();
        rust_fields.sort_unstable();
        assert_eq!(schema_fields, rust_fields);
    }

    #[test]
    fn snapshots_are_not_security_events() {
        let bytes = encode(&full()).expect("encodes");
        assert!(matches!(SecurityEvent::decode(&bytes), Err(SchemaError::WrongSchema { .. })));
    }
}
