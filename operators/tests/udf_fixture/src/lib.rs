//! Test fixture: an Arroyo UDF (`#[udf]` from `arroyo-udf-plugin`, built as a cdylib) that the
//! policy operator loads and calls from a rule.

use arroyo_udf_plugin::udf;

/// How `app` is approved for `department`: "approved", or "unapproved:<app>".
#[udf]
fn ai_approval(app: &str, department: &str) -> String {
    if app == "ChatGPT Enterprise" || (department == "Engineering" && app == "Cursor") {
        "approved".to_string()
    } else {
        format!("unapproved:{app}")
    }
}
