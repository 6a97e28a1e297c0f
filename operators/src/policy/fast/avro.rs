//! Schema-aware partial Avro decoding: reads a datum straight from its bytes, keeping only the
//! fields a [`FieldTree`] names and skipping the rest by schema.
//!
//! The fields rules read go to **slots** ([`SlotTree`]): one per field on a path some rule uses,
//! numbered once when the policy set is compiled, so a rule finds a value by index instead of by
//! name, and records on the way cost no allocation (a slot only notes that the record was
//! there). Values a rule reads as a whole (lists, maps, records it takes the size of or looks
//! into by key) are decoded into a [`Node`] tree in their slot.
//!
//! Skipped values are still checked as thoroughly as apache-avro checks them (varint length,
//! booleans, UTF-8 strings and map keys, enum and union indices, lengths within the input), and
//! the datum must use exactly the bytes there are, so bytes this reader accepts are bytes the
//! generic decoder accepts too. Anything it cannot read (an unsupported logical type, bad bytes)
//! is a [`Malformed`], and the caller falls back to the generic path, which names the reason.

use std::collections::{BTreeMap, HashMap};

use apache_avro::schema::{Name, Schema};

/// Which fields of a record tree to keep: a field is kept when the tree names it, or when the
/// tree is `whole`. Arrays and unions pass the tree on to their items; maps are always whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldTree {
    /// Keep every field below.
    pub whole: bool,
    /// The fields to keep, each with what to keep inside it.
    pub children: BTreeMap<String, FieldTree>,
}

impl FieldTree {
    /// Adds a path of field names; `whole` keeps everything below its end.
    pub fn insert(&mut self, path: &[&str], whole: bool) {
        let mut node = self;
        for name in path {
            node = node.children.entry((*name).to_string()).or_default();
        }
        node.whole |= whole;
    }

    fn child(&self, name: &str) -> Option<&FieldTree> {
        self.children.get(name)
    }
}

/// A decoded value. Records hold only their kept fields, in schema order.
#[derive(Clone, Debug, PartialEq)]
pub enum Node<'a> {
    /// `null`.
    Null,
    /// `boolean`.
    Bool(bool),
    /// `int`, `long` and the date, time and timestamp logical types.
    Int(i64),
    /// `float` and `double`.
    Double(f64),
    /// `bytes` and `fixed` (the generic decoder shows UTF-8 bytes as a string).
    Bytes(&'a [u8]),
    /// `string` and enum symbols.
    Str(&'a str),
    /// `array`.
    List(Vec<Node<'a>>),
    /// `map`, entries in the order written.
    Map(Vec<(&'a str, Node<'a>)>),
    /// `record`: the kept fields.
    Record(Vec<(&'a str, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// The kept field or map entry `name`.
    pub fn get(&self, name: &str) -> Option<&Node<'a>> {
        match self {
            // Comparing lengths and first bytes first spares most calls to memcmp.
            Node::Record(fields) | Node::Map(fields) => fields
                .iter()
                .find(|(k, _)| k.len() == name.len() && k.as_bytes().first() == name.as_bytes().first() && *k == name)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value as text, when it is a string (or UTF-8 bytes, which JSON shows as one).
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            Node::Str(s) => Some(s),
            Node::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// What a slot holds after decoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Slot<'a> {
    /// Not reached: a record on the way was null or absent, or the field is not in this schema.
    #[default]
    Unset,
    /// A record was there; its fields are in their own slots.
    Record,
    /// A value (with everything kept below it).
    Value(Node<'a>),
}

/// The slots of one var's fields: a [`FieldTree`] with a slot number at every node. A node that
/// is `whole` is read into its slot as a [`Node`], so nothing below it has a slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotTree {
    /// This node's slot.
    pub slot: u16,
    /// What to keep when this node's value is read as a [`Node`] (lists, maps, whole records).
    pub keep: FieldTree,
    /// The fields below, when this node is a record read field by field.
    pub children: BTreeMap<String, SlotTree>,
}

impl SlotTree {
    /// Numbers `tree`'s nodes from `*next` on, depth first.
    pub fn number(tree: &FieldTree, next: &mut u16) -> SlotTree {
        let slot = *next;
        *next += 1;
        let children = if tree.whole {
            BTreeMap::new()
        } else {
            tree.children.iter().map(|(name, child)| (name.clone(), SlotTree::number(child, next))).collect()
        };
        SlotTree { slot, keep: tree.clone(), children }
    }

    /// The child named `name`.
    pub fn child(&self, name: &str) -> Option<&SlotTree> {
        self.children.get(name)
    }
}

/// The bytes were not a datum of the schema (or used something this reader does not support).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// A reader for one schema and field tree, built once and used for every datum.
#[derive(Debug)]
pub enum Reader<'s> {
    /// `null`.
    Null,
    /// `boolean`.
    Bool,
    /// `int` and `date`, `time-millis`.
    Int,
    /// `long` and the other time logical types.
    Long,
    /// `float`.
    Float,
    /// `double`.
    Double,
    /// `bytes`.
    Bytes,
    /// `string`.
    Str,
    /// An enum's symbols.
    Enum(&'s [String]),
    /// A fixed of this size.
    Fixed(usize),
    /// A union's variants.
    Union(Vec<Reader<'s>>),
    /// The union of null and one other type (the usual optional field), read without a lookup.
    Nullable(Box<Reader<'s>>),
    /// An array's items.
    Array(Box<Reader<'s>>),
    /// A map's values.
    Map(Box<Reader<'s>>),
    /// A record's fields (name, kept or not, reader) and how many are kept.
    Record(Vec<(&'s str, bool, Reader<'s>)>, usize),
    /// A record read into slots: each field with its slot (`None`: skipped).
    Slotted(Vec<(Option<u16>, Reader<'s>)>),
}

impl<'s> Reader<'s> {
    /// A reader of `schema` (self-contained: named types defined before they are referenced)
    /// that writes the fields `tree` numbers into their slots (see [`Reader::read_all_into`]);
    /// `None` when the schema uses a type this reader does not handle.
    pub fn slotted(schema: &'s Schema, tree: &SlotTree) -> Option<Reader<'s>> {
        build_slotted(schema, tree, &mut HashMap::new())
    }

    /// Reads one datum that must span all of `bytes` into `slots`, its root into `root`. On
    /// `Malformed`, slots may be partly written: the caller clears them.
    pub fn read_all_into<'a>(&self, bytes: &'a [u8], slots: &mut [Slot<'a>], root: u16) -> Result<(), Malformed>
    where
        's: 'a,
    {
        let mut input = Cursor { bytes, pos: 0 };
        self.read_into(&mut input, slots, root)?;
        if input.pos == bytes.len() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    fn read_into<'a>(&self, input: &mut Cursor<'a>, slots: &mut [Slot<'a>], slot: u16) -> Result<(), Malformed>
    where
        's: 'a,
    {
        match self {
            Reader::Union(variants) => variants.get(input.index()?).ok_or(Malformed)?.read_into(input, slots, slot),
            Reader::Nullable(value) => match input.long()? {
                0 => {
                    *slots.get_mut(usize::from(slot)).ok_or(Malformed)? = Slot::Value(Node::Null);
                    Ok(())
                }
                1 => value.read_into(input, slots, slot),
                _ => Err(Malformed),
            },
            Reader::Slotted(fields) => {
                *slots.get_mut(usize::from(slot)).ok_or(Malformed)? = Slot::Record;
                for (field_slot, reader) in fields {
                    match field_slot {
                        Some(field_slot) => reader.read_field_into(input, slots, *field_slot)?,
                        None => reader.skip_field(input)?,
                    }
                }
                Ok(())
            }
            reader => {
                let value = reader.read(input)?;
                *slots.get_mut(usize::from(slot)).ok_or(Malformed)? = Slot::Value(value);
                Ok(())
            }
        }
    }

    /// [`Reader::read_into`] with the most common fields (strings, optional strings) read in
    /// place: records are mostly such fields, and the call costs more than the read.
    #[inline(always)]
    fn read_field_into<'a>(&self, input: &mut Cursor<'a>, slots: &mut [Slot<'a>], slot: u16) -> Result<(), Malformed>
    where
        's: 'a,
    {
        let value = match self {
            Reader::Str => Node::Str(input.str()?),
            Reader::Nullable(value) if matches!(**value, Reader::Str) => match input.long()? {
                0 => Node::Null,
                1 => Node::Str(input.str()?),
                _ => return Err(Malformed),
            },
            _ => return self.read_into(input, slots, slot),
        };
        *slots.get_mut(usize::from(slot)).ok_or(Malformed)? = Slot::Value(value);
        Ok(())
    }

    /// [`Reader::skip`] with strings and optional strings skipped in place (as
    /// [`Reader::read_field_into`]).
    #[inline(always)]
    fn skip_field(&self, input: &mut Cursor<'_>) -> Result<(), Malformed> {
        match self {
            Reader::Str => input.skip_str(),
            Reader::Nullable(value) if matches!(**value, Reader::Str) => match input.long()? {
                0 => Ok(()),
                1 => input.skip_str(),
                _ => Err(Malformed),
            },
            _ => self.skip(input),
        }
    }

    fn read<'a>(&self, input: &mut Cursor<'a>) -> Result<Node<'a>, Malformed>
    where
        's: 'a,
    {
        Ok(match self {
            Reader::Null => Node::Null,
            Reader::Bool => Node::Bool(input.bool()?),
            Reader::Int => Node::Int(input.int()?),
            Reader::Long => Node::Int(input.long()?),
            Reader::Float => Node::Double(f64::from(f32::from_le_bytes(input.array()?))),
            Reader::Double => Node::Double(f64::from_le_bytes(input.array()?)),
            Reader::Bytes => Node::Bytes(input.bytes()?),
            Reader::Str => Node::Str(input.str()?),
            Reader::Enum(symbols) => Node::Str(symbols.get(input.index()?).ok_or(Malformed)?),
            Reader::Fixed(size) => Node::Bytes(input.take(*size)?),
            Reader::Union(variants) => variants.get(input.index()?).ok_or(Malformed)?.read(input)?,
            Reader::Nullable(value) => match input.long()? {
                0 => Node::Null,
                1 => value.read(input)?,
                _ => return Err(Malformed),
            },
            Reader::Array(items) => {
                let mut out = Vec::new();
                input.blocks(|input| {
                    out.push(items.read(input)?);
                    Ok(())
                })?;
                Node::List(out)
            }
            Reader::Map(values) => {
                let mut out = Vec::new();
                input.blocks(|input| {
                    let key = input.str()?;
                    out.push((key, values.read(input)?));
                    Ok(())
                })?;
                Node::Map(out)
            }
            Reader::Record(fields, kept) => {
                let mut out = Vec::with_capacity(*kept);
                for (name, keep, reader) in fields {
                    if *keep {
                        out.push((*name, reader.read(input)?));
                    } else {
                        reader.skip(input)?;
                    }
                }
                Node::Record(out)
            }
            // Only `read_into` reads slotted records; a reader is never built to get here.
            Reader::Slotted(_) => return Err(Malformed),
        })
    }

    fn skip(&self, input: &mut Cursor<'_>) -> Result<(), Malformed> {
        match self {
            Reader::Null => {}
            Reader::Bool => {
                input.bool()?;
            }
            Reader::Int => {
                input.int()?;
            }
            Reader::Long => {
                input.long()?;
            }
            Reader::Float => {
                input.take(4)?;
            }
            Reader::Double => {
                input.take(8)?;
            }
            Reader::Bytes => {
                input.bytes()?;
            }
            Reader::Str => input.skip_str()?,
            Reader::Enum(symbols) => {
                if input.index()? >= symbols.len() {
                    return Err(Malformed);
                }
            }
            Reader::Fixed(size) => {
                input.take(*size)?;
            }
            Reader::Union(variants) => variants.get(input.index()?).ok_or(Malformed)?.skip(input)?,
            Reader::Nullable(value) => match input.long()? {
                0 => {}
                1 => value.skip(input)?,
                _ => return Err(Malformed),
            },
            Reader::Array(items) => input.blocks(|input| items.skip(input))?,
            Reader::Map(values) => input.blocks(|input| {
                input.skip_str()?;
                values.skip(input)
            })?,
            Reader::Record(fields, _) => {
                for (_, _, reader) in fields {
                    reader.skip_field(input)?;
                }
            }
            Reader::Slotted(fields) => {
                for (_, reader) in fields {
                    reader.skip_field(input)?;
                }
            }
        }
        Ok(())
    }
}

fn build<'s>(
    schema: &'s Schema,
    tree: Option<&FieldTree>,
    names: &mut HashMap<&'s Name, &'s Schema>,
) -> Option<Reader<'s>> {
    Some(match schema {
        Schema::Null => Reader::Null,
        Schema::Boolean => Reader::Bool,
        Schema::Int | Schema::Date | Schema::TimeMillis => Reader::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Reader::Long,
        Schema::Float => Reader::Float,
        Schema::Double => Reader::Double,
        Schema::Bytes => Reader::Bytes,
        Schema::String => Reader::Str,
        Schema::Enum(e) => {
            names.insert(&e.name, schema);
            Reader::Enum(&e.symbols)
        }
        Schema::Fixed(f) => {
            names.insert(&f.name, schema);
            Reader::Fixed(f.size)
        }
        Schema::Union(union) => {
            nullable_or_union(union.variants().iter().map(|v| build(v, tree, names)).collect::<Option<Vec<_>>>()?)
        }
        Schema::Array(array) => Reader::Array(Box::new(build(&array.items, tree, names)?)),
        Schema::Map(map) => Reader::Map(Box::new(build(&map.types, Some(&WHOLE), names)?)),
        Schema::Record(record) => {
            names.insert(&record.name, schema);
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let child = tree.and_then(|t| if t.whole { Some(&WHOLE) } else { t.child(&field.name) });
                fields.push((field.name.as_str(), child.is_some(), build(&field.schema, child, names)?));
            }
            let kept = fields.iter().filter(|f| f.1).count();
            Reader::Record(fields, kept)
        }
        Schema::Ref { name } => {
            let definition = *names.get(name)?;
            return build(definition, tree, names);
        }
        Schema::Decimal(_) | Schema::BigDecimal | Schema::Uuid(_) | Schema::Duration(_) => return None,
    })
}

/// [`build`] for a slotted node: records (not kept whole) are read field by field into the
/// slots of `tree`'s children; anything else is read as a [`Node`] keeping `tree.keep`.
fn build_slotted<'s>(
    schema: &'s Schema,
    tree: &SlotTree,
    names: &mut HashMap<&'s Name, &'s Schema>,
) -> Option<Reader<'s>> {
    Some(match schema {
        Schema::Record(record) if !tree.keep.whole => {
            names.insert(&record.name, schema);
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                fields.push(match tree.child(&field.name) {
                    Some(child) => (Some(child.slot), build_slotted(&field.schema, child, names)?),
                    None => (None, build(&field.schema, None, names)?),
                });
            }
            Reader::Slotted(fields)
        }
        Schema::Union(union) => nullable_or_union(
            union.variants().iter().map(|v| build_slotted(v, tree, names)).collect::<Option<Vec<_>>>()?,
        ),
        Schema::Ref { name } => {
            let definition = *names.get(name)?;
            return build_slotted(definition, tree, names);
        }
        _ => return build(schema, Some(&tree.keep), names),
    })
}

/// `[null, T]` as [`Reader::Nullable`], any other union as [`Reader::Union`].
fn nullable_or_union(mut variants: Vec<Reader<'_>>) -> Reader<'_> {
    if variants.len() == 2 && matches!(variants[0], Reader::Null) {
        if let Some(value) = variants.pop() {
            return Reader::Nullable(Box::new(value));
        }
    }
    Reader::Union(variants)
}

static WHOLE: FieldTree = FieldTree { whole: true, children: BTreeMap::new() };

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or(Malformed)?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        self.take(N)?.try_into().map_err(|_| Malformed)
    }

    /// A zig-zag varint of at most 10 bytes, as apache-avro reads it.
    fn long(&mut self) -> Result<i64, Malformed> {
        let mut value = 0u64;
        for j in 0..10 {
            let byte = *self.bytes.get(self.pos).ok_or(Malformed)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7F) << (j * 7);
            if byte & 0x80 == 0 {
                return Ok(if value & 1 == 0 { (value >> 1) as i64 } else { !(value >> 1) as i64 });
            }
        }
        Err(Malformed)
    }

    fn int(&mut self) -> Result<i64, Malformed> {
        let value = self.long()?;
        i32::try_from(value).map(i64::from).map_err(|_| Malformed)
    }

    fn index(&mut self) -> Result<usize, Malformed> {
        usize::try_from(self.long()?).map_err(|_| Malformed)
    }

    fn bool(&mut self) -> Result<bool, Malformed> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Malformed),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let len = usize::try_from(self.long()?).map_err(|_| Malformed)?;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Malformed)
    }

    /// A string, checked as [`Cursor::str`] checks it; most text is ASCII, which is checked
    /// without the call to the full UTF-8 validation.
    fn skip_str(&mut self) -> Result<(), Malformed> {
        let bytes = self.bytes()?;
        if bytes.is_ascii() || std::str::from_utf8(bytes).is_ok() {
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    /// Array or map blocks: a count (negative: followed by the block's size in bytes), the
    /// items, until a zero count.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Result<(), Malformed>) -> Result<(), Malformed> {
        loop {
            let count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.long()?;
            }
            // Every item but a null takes a byte; more items than bytes left is refused here
            // (stricter than needed, so the generic decoder decides).
            let count = count.unsigned_abs();
            if count > (self.bytes.len() - self.pos) as u64 {
                return Err(Malformed);
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}
