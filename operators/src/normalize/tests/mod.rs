//! Tests of the normalize operator, one file per vendor: golden files of real vendor samples
//! (`operators/tests/golden/<vendor>/`), then one unit test per mapping rule and per kind of bad
//! input.

mod okta;
