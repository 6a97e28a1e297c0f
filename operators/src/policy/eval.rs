//! Evaluating rules against one enriched event: the CEL activation and each rule's verdict.
//!
//! The activation exposes `event` (the typed event decoded to a map), `class_uid`, `user`,
//! `device`, `asset` (the enrich operator's contexts, or null) and `missing` (the lookups that
//! found nothing). Every variable is built lazily, on its first use by any rule, and at most once
//! per event: an event no rule reads is never decoded, and the rules that do read it share one
//! decoding. The decoded event is not converted into CEL maps: rules read it through a lazy view
//! ([`json_ref`]) that looks fields up as they are selected, and its strings are borrowed, not
//! copied. The contexts go through the same view (as JSON with sorted keys), so every map a rule
//! sees iterates in a deterministic order.

use std::sync::OnceLock;

use cel::common::traits::{Container, Indexer, Iterable, Iterator as CelIterator, Sizer};
use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelNull, CelString, CelUInt, Type, MAP_TYPE};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::{Context, ExecutionError, Program, Value};
use serde_json::Value as JsonValue;
use weir_schemas::events::EnrichedEvent;

/// The variables of one event, built on first use.
pub struct Activation<'a> {
    /// The enriched event.
    enriched: &'a EnrichedEvent,
    class_uid: CelInt,
    /// The decoded typed event, or why it could not be decoded.
    event: OnceLock<Result<JsonValue, String>>,
    /// The contexts as JSON (sorted keys, so even iterating over them is deterministic).
    user: OnceLock<JsonValue>,
    device: OnceLock<JsonValue>,
    asset: OnceLock<JsonValue>,
    missing: OnceLock<Box<dyn Val + 'a>>,
}

impl<'a> Activation<'a> {
    /// The activation of `enriched`; nothing is decoded yet.
    pub fn new(enriched: &'a EnrichedEvent) -> Self {
        Activation {
            enriched,
            class_uid: CelInt::from(i64::from(enriched.class_uid)),
            event: OnceLock::new(),
            user: OnceLock::new(),
            device: OnceLock::new(),
            asset: OnceLock::new(),
            missing: OnceLock::new(),
        }
    }

    /// The enriched event.
    pub fn enriched(&self) -> &'a EnrichedEvent {
        self.enriched
    }

    /// Why the typed event could not be decoded, if a rule tried and it could not.
    pub fn event_error(&self) -> Option<&str> {
        match self.event.get() {
            Some(Err(reason)) => Some(reason),
            _ => None,
        }
    }

    /// The typed event as JSON, decoded on first use.
    fn event(&self) -> Option<&JsonValue> {
        self.event
            .get_or_init(|| match weir_schemas::avro::decode_to_json(&self.enriched.event) {
                Ok((_, json)) => Ok(json),
                Err(e) => Err(format!("the enriched event's `event` cannot be decoded: {e}")),
            })
            .as_ref()
            .ok()
    }

    fn user(&self) -> &JsonValue {
        self.user.get_or_init(|| to_json(self.enriched.user_context.as_ref()))
    }

    fn device(&self) -> &JsonValue {
        self.device.get_or_init(|| to_json(self.enriched.device_context.as_ref()))
    }

    fn asset(&self) -> &JsonValue {
        self.asset.get_or_init(|| to_json(self.enriched.asset_context.as_ref()))
    }

    fn missing(&self) -> &(dyn Val + 'a) {
        self.missing.get_or_init(|| str_list(&self.enriched.missing_context)).as_ref()
    }

    /// The default subject of a violation: the user context's uid, else the event's user (actor)
    /// uid or name, else the device context's uid, else the asset context's uid.
    pub fn default_subject(&self) -> Option<String> {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        if let Some(user) = &self.enriched.user_context {
            if let Some(uid) = non_empty(&user.uid) {
                return Some(uid);
            }
        }
        if let Some(event) = self.event() {
            let lookup = |path: &[&str]| path.iter().try_fold(event, |v, key| v.get(key)).and_then(JsonValue::as_str);
            if let Some(found) =
                super::fast::DEFAULT_SUBJECT_PATHS.iter().find_map(|path| lookup(path).and_then(non_empty))
            {
                return Some(found);
            }
        }
        let device = self.enriched.device_context.as_ref().map(|d| d.uid.as_str());
        let asset = self.enriched.asset_context.as_ref().map(|a| a.uid.as_str());
        device.and_then(non_empty).or_else(|| asset.and_then(non_empty))
    }

    /// A CEL scope over `root` that resolves this activation's variables.
    pub fn scope<'s>(&'s self, root: &'s Context<'static, 'static>) -> Context<'s, 's> {
        let root: &'s Context<'s, 's> = root;
        let mut scope = root.new_inner_scope();
        scope.set_variable_resolver(self);
        scope
    }
}

impl VariableResolver for Activation<'_> {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        let value: &'b (dyn Val + 'b) = match variable {
            "event" => return Some(CowVal::Owned(json_ref(self.event()?))),
            "class_uid" => &self.class_uid,
            "user" => return Some(CowVal::Owned(json_ref(self.user()))),
            "device" => return Some(CowVal::Owned(json_ref(self.device()))),
            "asset" => return Some(CowVal::Owned(json_ref(self.asset()))),
            "missing" => self.missing(),
            _ => return None,
        };
        Some(CowVal::Borrowed(value))
    }
}

/// Evaluates a rule's condition: whether it holds, or why it could not be decided.
pub fn condition_holds(program: &Program, scope: &Context<'_, '_>) -> Result<bool, String> {
    let value = Value::resolve_val(program.expression(), scope).map_err(|e| e.to_string())?;
    match value.downcast_ref::<CelBool>() {
        Some(b) => Ok(*b.inner()),
        None => Err(format!("condition evaluated to a {}, not a bool", value.get_type().name())),
    }
}

/// Evaluates a subject expression: its value as a string (strings as they are, numbers and bools
/// formatted), `None` when it is null or empty, or why it could not be evaluated.
pub fn subject_value(program: &Program, scope: &Context<'_, '_>) -> Result<Option<String>, String> {
    let value = Value::resolve_val(program.expression(), scope).map_err(|e| e.to_string())?;
    let text = if let Some(s) = value.downcast_ref::<CelString>() {
        s.inner().to_string()
    } else if let Some(i) = value.downcast_ref::<CelInt>() {
        i.inner().to_string()
    } else if let Some(u) = value.downcast_ref::<CelUInt>() {
        u.inner().to_string()
    } else if let Some(b) = value.downcast_ref::<CelBool>() {
        b.inner().to_string()
    } else if value.downcast_ref::<CelNull>().is_some() {
        return Ok(None);
    } else {
        return Err(format!("subject evaluated to a {}, not a string", value.get_type().name()));
    };
    Ok((!text.is_empty()).then_some(text))
}

/// A context as JSON: every field of its schema (absent ones null), or null.
fn to_json<T: serde::Serialize>(context: Option<&T>) -> JsonValue {
    // Serializing a struct of strings, bools, lists and string maps cannot fail.
    context.and_then(|c| serde_json::to_value(c).ok()).unwrap_or(JsonValue::Null)
}

fn str_list(items: &[String]) -> Box<dyn Val + '_> {
    let items: Vec<Box<dyn Val + '_>> =
        items.iter().map(|s| Box::new(CelString::from(s.as_str())) as Box<dyn Val + '_>).collect();
    Box::new(CelList::from(items))
}

/// A lazy CEL view of decoded JSON: objects are read field by field as rules select them (no map
/// is built), strings are borrowed, arrays become lists of such views.
pub fn json_ref(json: &JsonValue) -> Box<dyn Val + '_> {
    match json {
        JsonValue::Null => Box::new(CelNull),
        JsonValue::Bool(b) => Box::new(CelBool::from(*b)),
        JsonValue::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            _ => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        JsonValue::String(s) => Box::new(CelString::from(s.as_str())),
        JsonValue::Array(items) => Box::new(CelList::from(items.iter().map(json_ref).collect::<Vec<_>>())),
        JsonValue::Object(map) => Box::new(JsonObject { map, keys: OnceLock::new() }),
    }
}

/// A JSON object as a CEL map, read lazily: `o.f`, `o["f"]`, `has(o.f)`, `"f" in o`, `size(o)`
/// and comprehensions over its keys. Two such maps never compare equal (rules compare fields).
struct JsonObject<'a> {
    map: &'a serde_json::Map<String, JsonValue>,
    /// The keys as CEL strings, built when something iterates over them.
    keys: OnceLock<Vec<Box<dyn Val + 'a>>>,
}

impl std::fmt::Debug for JsonObject<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", JsonValue::Object(self.map.clone()))
    }
}

impl<'a> JsonObject<'a> {
    fn field(&self, key: &dyn Val) -> Result<&'a JsonValue, ExecutionError> {
        let Some(name) = key.downcast_ref::<CelString>() else {
            return Err(ExecutionError::UnexpectedType {
                got: key.get_type().name().to_owned(),
                want: "string".into(),
            });
        };
        self.map.get(name.inner()).ok_or_else(|| ExecutionError::no_such_key(name.inner()))
    }
}

impl<'a> Val for JsonObject<'a> {
    fn get_type(&self) -> &Type {
        &MAP_TYPE
    }

    fn cel_type() -> &'static Type {
        &MAP_TYPE
    }

    fn as_container(&self) -> Option<&dyn Container> {
        Some(self)
    }

    fn as_indexer<'b, 'v>(&'b self) -> Option<&'b (dyn Indexer + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn into_indexer<'v>(self: Box<Self>) -> Option<Box<dyn Indexer + 'v>>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_iterable<'b, 'v>(&'b self) -> Option<&'b (dyn Iterable + 'v)>
    where
        Self: 'v,
    {
        Some(self)
    }

    fn as_sizer(&self) -> Option<&dyn Sizer> {
        Some(self)
    }

    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(JsonObject { map: self.map, keys: OnceLock::new() })
    }
}

impl Indexer for JsonObject<'_> {
    fn get<'b, 'v>(&'b self, key: &dyn Val) -> Result<CowVal<'b, 'v>, ExecutionError>
    where
        Self: 'v,
    {
        Ok(CowVal::Owned(json_ref(self.field(key)?)))
    }

    fn steal<'v>(self: Box<Self>, key: &dyn Val) -> Result<Box<dyn Val + 'v>, ExecutionError>
    where
        Self: 'v,
    {
        Ok(json_ref(self.field(key)?))
    }
}

impl Container for JsonObject<'_> {
    fn contains(&self, value: &dyn Val) -> Result<bool, ExecutionError> {
        Ok(value.downcast_ref::<CelString>().is_some_and(|k| self.map.contains_key(k.inner())))
    }
}

impl Sizer for JsonObject<'_> {
    fn size(&self) -> CelInt {
        CelInt::from(self.map.len() as i64)
    }
}

impl Iterable for JsonObject<'_> {
    fn iter<'b, 'v>(&'b self) -> Box<dyn CelIterator<'b, 'v> + 'b>
    where
        Self: 'v,
    {
        let keys = self.keys.get_or_init(|| {
            self.map.keys().map(|k| Box::new(CelString::from(k.as_str())) as Box<dyn Val + '_>).collect()
        });
        Box::new(Keys(keys.iter()))
    }
}

/// Iterates over materialized keys.
struct Keys<'b, 'a>(std::slice::Iter<'b, Box<dyn Val + 'a>>);

impl<'b, 'a: 'v, 'v> CelIterator<'b, 'v> for Keys<'b, 'a> {
    fn next(&mut self) -> Option<&'b (dyn Val + 'v)> {
        match self.0.next() {
            Some(key) => Some(key.as_ref()),
            None => None,
        }
    }
}
