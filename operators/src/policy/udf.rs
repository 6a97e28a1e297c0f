//! UDFs: functions built with `arroyo-udf-plugin`, loaded from their cdylib and called from rules.
//!
//! # Arroyo's UDF ABI (sync UDFs)
//!
//! `#[udf] fn name(args...) -> T` in a crate built as a cdylib against `arroyo-udf-plugin`
//! exports one symbol, `__run`:
//!
//! ```text
//! extern "C-unwind" fn __run(args: FfiArrays) -> RunResult
//! #[repr(C)] struct FfiArrays { ptr: *mut FfiArraySchema, len: usize, capacity: usize, error: bool }
//! #[repr(C)] struct FfiArraySchema(FFI_ArrowArray, FFI_ArrowSchema)
//! #[repr(C)] enum RunResult { Ok(FfiArraySchema), Err }
//! ```
//!
//! Each argument is one Arrow array (all of the same length) passed through the [Arrow C data
//! interface]; the result is one array of that length, and `Err` means the function panicked. The
//! library takes ownership of the argument vector (it rebuilds and frees it with its global
//! allocator, so the host must use the system allocator, Rust's default) and of each array (it
//! calls their `release`); the host owns the result and releases it. The library does not export
//! the function's name or signature (Arroyo keeps them from the UDF's source), so a rule calls
//! it by the name the config gives (default: the library's file stem without `lib`), and the
//! argument types are taken from the CEL values, or from `args` in the config.
//!
//! This module implements the C data interface for the scalar types Arroyo's UDFs take and return
//! (bool, signed and unsigned integers, floats, UTF-8 strings, binary) with single-row arrays, so
//! the operator needs no Arrow dependency. It is tested against a real `arroyo-udf-plugin` 0.2
//! library (`operators/tests/udf_fixture`, test `a_real_arroyo_udf_library`, run by CI). Async UDFs
//! (`__start`/`__send`/...) and UDAFs (list arguments) are not supported; note that the 0.2
//! `#[udf]` macro cannot return `bool` (Arrow's Boolean is not a primitive type to it), so
//! predicate UDFs return an integer or a string that the condition compares.
//!
//! [Arrow C data interface]: https://arrow.apache.org/docs/format/CDataInterface.html

use std::ffi::{c_char, c_void, CStr};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cel::common::types::{CelBool, CelBytes, CelDouble, CelInt, CelNull, CelString, CelUInt};
use cel::common::value::{CowVal, Val};
use cel::{Context, ExecutionError, FunctionContext};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::rules::{PolicyLoadError, Problem};

/// Arrow C data interface: `struct ArrowSchema`.
#[repr(C)]
#[derive(Debug)]
pub struct FfiArrowSchema {
    format: *const c_char,
    name: *const c_char,
    metadata: *const c_char,
    flags: i64,
    n_children: i64,
    children: *mut *mut FfiArrowSchema,
    dictionary: *mut FfiArrowSchema,
    release: Option<unsafe extern "C" fn(*mut FfiArrowSchema)>,
    private_data: *mut c_void,
}

/// Arrow C data interface: `struct ArrowArray`.
#[repr(C)]
#[derive(Debug)]
pub struct FfiArrowArray {
    length: i64,
    null_count: i64,
    offset: i64,
    n_buffers: i64,
    n_children: i64,
    buffers: *mut *const c_void,
    children: *mut *mut FfiArrowArray,
    dictionary: *mut FfiArrowArray,
    release: Option<unsafe extern "C" fn(*mut FfiArrowArray)>,
    private_data: *mut c_void,
}

/// `arroyo_udf_common::FfiArraySchema`: one array and its schema.
#[repr(C)]
#[derive(Debug)]
pub struct FfiArraySchema(pub FfiArrowArray, pub FfiArrowSchema);

/// `arroyo_udf_common::FfiArrays`: the arguments, as the parts of a `Vec<FfiArraySchema>`.
#[repr(C)]
#[derive(Debug)]
pub struct FfiArrays {
    ptr: *mut FfiArraySchema,
    len: usize,
    capacity: usize,
    error: bool,
}

impl FfiArrays {
    /// Hands over `arrays`; whoever receives it must rebuild the vector with [`FfiArrays::into_vec`].
    pub fn from_vec(arrays: Vec<FfiArraySchema>) -> FfiArrays {
        let mut arrays = std::mem::ManuallyDrop::new(arrays);
        FfiArrays { ptr: arrays.as_mut_ptr(), len: arrays.len(), capacity: arrays.capacity(), error: false }
    }

    /// Takes the arrays back.
    ///
    /// # Safety
    /// `self` must come from [`FfiArrays::from_vec`] (or an ABI-compatible producer using the
    /// same allocator), and be taken back once.
    pub unsafe fn into_vec(self) -> Vec<FfiArraySchema> {
        Vec::from_raw_parts(self.ptr, self.len, self.capacity)
    }
}

/// `arroyo_udf_common::RunResult`: the result array, or `Err` when the UDF panicked.
#[repr(C)]
#[derive(Debug)]
pub enum RunResult {
    /// The result.
    Ok(FfiArraySchema),
    /// The UDF panicked.
    Err,
}

/// The signature of `__run`.
pub type RunFn = unsafe extern "C-unwind" fn(FfiArrays) -> RunResult;

/// An Arrow scalar type a UDF takes or returns, named as in the UDF's Rust signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArgType {
    /// `bool` (Arrow Boolean).
    Bool,
    /// `i32` (Int32).
    I32,
    /// `i64` (Int64).
    I64,
    /// `u32` (UInt32).
    U32,
    /// `u64` (UInt64).
    U64,
    /// `f32` (Float32).
    F32,
    /// `f64` (Float64).
    F64,
    /// `String` / `&str` (Utf8).
    String,
    /// `Vec<u8>` / `&[u8]` (Binary).
    Bytes,
}

impl ArgType {
    fn format(self) -> &'static CStr {
        match self {
            ArgType::Bool => c"b",
            ArgType::I32 => c"i",
            ArgType::I64 => c"l",
            ArgType::U32 => c"I",
            ArgType::U64 => c"L",
            ArgType::F32 => c"f",
            ArgType::F64 => c"g",
            ArgType::String => c"u",
            ArgType::Bytes => c"z",
        }
    }
}

/// One scalar crossing the ABI.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    /// A null of this type.
    Null(ArgType),
    /// A bool.
    Bool(bool),
    /// Any signed integer.
    Int(i64, ArgType),
    /// Any unsigned integer.
    UInt(u64, ArgType),
    /// Any float.
    Float(f64, ArgType),
    /// A string.
    Utf8(String),
    /// Bytes.
    Binary(Vec<u8>),
}

impl Datum {
    fn arg_type(&self) -> ArgType {
        match self {
            Datum::Null(t) | Datum::Int(_, t) | Datum::UInt(_, t) | Datum::Float(_, t) => *t,
            Datum::Bool(_) => ArgType::Bool,
            Datum::Utf8(_) => ArgType::String,
            Datum::Binary(_) => ArgType::Bytes,
        }
    }

    /// As a CEL value.
    pub fn into_val(self) -> Box<dyn Val> {
        match self {
            Datum::Null(_) => Box::new(CelNull),
            Datum::Bool(b) => Box::new(CelBool::from(b)),
            Datum::Int(i, _) => Box::new(CelInt::from(i)),
            Datum::UInt(u, _) => Box::new(CelUInt::from(u)),
            Datum::Float(f, _) => Box::new(CelDouble::from(f)),
            Datum::Utf8(s) => Box::new(CelString::from(s)),
            Datum::Binary(b) => Box::new(CelBytes::from(b)),
        }
    }

    /// A CEL argument as a datum: of the declared type when there is one, else of the type the
    /// CEL value has (int → i64, uint → u64, double → f64).
    pub fn from_val(value: &dyn Val, declared: Option<ArgType>) -> Result<Datum, String> {
        let type_name = || value.get_type().name().to_string();
        let mismatch = |want: ArgType| format!("cannot pass a CEL {} as {want:?}", type_name());
        if value.downcast_ref::<CelNull>().is_some() {
            return declared
                .map(Datum::Null)
                .ok_or_else(|| "cannot pass null without a declared argument type (set `args`)".to_string());
        }
        let datum = if let Some(s) = value.downcast_ref::<CelString>() {
            Datum::Utf8(s.inner().to_string())
        } else if let Some(b) = value.downcast_ref::<CelBool>() {
            Datum::Bool(*b.inner())
        } else if let Some(i) = value.downcast_ref::<CelInt>() {
            Datum::Int(*i.inner(), ArgType::I64)
        } else if let Some(u) = value.downcast_ref::<CelUInt>() {
            Datum::UInt(*u.inner(), ArgType::U64)
        } else if let Some(f) = value.downcast_ref::<CelDouble>() {
            Datum::Float(*f.inner(), ArgType::F64)
        } else if let Some(b) = value.downcast_ref::<CelBytes>() {
            Datum::Binary(b.inner().to_vec())
        } else {
            return Err(format!("cannot pass a CEL {} to a UDF", type_name()));
        };
        let Some(want) = declared else { return Ok(datum) };
        Ok(match (datum, want) {
            (d, w) if d.arg_type() == w => d,
            (Datum::Int(i, _), ArgType::I32) => Datum::Int(i32::try_from(i).map_err(|_| mismatch(want))?.into(), want),
            (Datum::Int(i, _), ArgType::U32 | ArgType::U64) => {
                let u = u64::try_from(i).map_err(|_| mismatch(want))?;
                Datum::UInt(u, want).checked()?
            }
            (Datum::UInt(u, _), ArgType::U32) => Datum::UInt(u, want).checked()?,
            (Datum::UInt(u, _), ArgType::I64 | ArgType::I32) => {
                let i = i64::try_from(u).map_err(|_| mismatch(want))?;
                Datum::Int(i, ArgType::I64).narrowed(want)?
            }
            (Datum::Int(i, _), ArgType::F64 | ArgType::F32) => Datum::Float(i as f64, want),
            (Datum::Float(f, _), ArgType::F32) => Datum::Float(f, want),
            _ => return Err(mismatch(want)),
        })
    }

    fn checked(self) -> Result<Datum, String> {
        match self {
            Datum::UInt(u, ArgType::U32) if u > u64::from(u32::MAX) => Err(format!("{u} does not fit a u32")),
            other => Ok(other),
        }
    }

    fn narrowed(self, to: ArgType) -> Result<Datum, String> {
        match (self, to) {
            (Datum::Int(i, _), ArgType::I32) => {
                i32::try_from(i).map(|i| Datum::Int(i.into(), to)).map_err(|_| format!("{i} does not fit an i32"))
            }
            (d, _) => Ok(d),
        }
    }
}

/// What the exporter of an array keeps alive until its release.
struct Exported {
    /// 8-byte aligned storage for each buffer (only read through `pointers`).
    _storage: Vec<Vec<u64>>,
    /// Pointers to them, as `ArrowArray::buffers` points at.
    pointers: Vec<*const c_void>,
}

unsafe extern "C" fn release_array(array: *mut FfiArrowArray) {
    if array.is_null() {
        return;
    }
    // SAFETY: `array` is one this module exported, released once (the consumer sets nothing else).
    unsafe {
        let private = (*array).private_data as *mut Exported;
        if !private.is_null() {
            drop(Box::from_raw(private));
        }
        (*array).private_data = std::ptr::null_mut();
        (*array).release = None;
    }
}

unsafe extern "C" fn release_schema(schema: *mut FfiArrowSchema) {
    if !schema.is_null() {
        // SAFETY: our schemas own nothing: their strings are static.
        unsafe { (*schema).release = None };
    }
}

/// `bytes` in 8-byte aligned storage (at least one word).
fn words(bytes: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; bytes.len().div_ceil(8).max(1)];
    for (i, chunk) in bytes.chunks(8).enumerate() {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        words[i] = u64::from_ne_bytes(word);
    }
    words
}

/// Exports one datum as a single-row array.
pub fn export(datum: &Datum) -> FfiArraySchema {
    let arg_type = datum.arg_type();
    let valid = !matches!(datum, Datum::Null(_));
    let validity = words(&[u8::from(valid)]);
    let mut buffers = vec![validity];
    match datum {
        Datum::Null(t) => match t {
            ArgType::String | ArgType::Bytes => {
                buffers.push(words(&[0u8; 8]));
                buffers.push(words(&[]));
            }
            _ => buffers.push(words(&[0u8; 8])),
        },
        Datum::Bool(b) => buffers.push(words(&[u8::from(*b)])),
        Datum::Int(i, t) => buffers.push(match t {
            ArgType::I32 => words(&(*i as i32).to_ne_bytes()),
            _ => words(&i.to_ne_bytes()),
        }),
        Datum::UInt(u, t) => buffers.push(match t {
            ArgType::U32 => words(&(*u as u32).to_ne_bytes()),
            _ => words(&u.to_ne_bytes()),
        }),
        Datum::Float(f, t) => buffers.push(match t {
            ArgType::F32 => words(&(*f as f32).to_ne_bytes()),
            _ => words(&f.to_ne_bytes()),
        }),
        Datum::Utf8(s) => push_bytes(&mut buffers, s.as_bytes()),
        Datum::Binary(b) => push_bytes(&mut buffers, b),
    }
    let pointers: Vec<*const c_void> = buffers.iter().map(|b| b.as_ptr() as *const c_void).collect();
    let mut private = Box::new(Exported { _storage: buffers, pointers });
    let array = FfiArrowArray {
        length: 1,
        null_count: i64::from(!valid),
        offset: 0,
        n_buffers: private.pointers.len() as i64,
        n_children: 0,
        buffers: private.pointers.as_mut_ptr(),
        children: std::ptr::null_mut(),
        dictionary: std::ptr::null_mut(),
        release: Some(release_array),
        private_data: Box::into_raw(private) as *mut c_void,
    };
    let schema = FfiArrowSchema {
        format: arg_type.format().as_ptr(),
        name: c"".as_ptr(),
        metadata: std::ptr::null(),
        flags: 2, // ARROW_FLAG_NULLABLE
        n_children: 0,
        children: std::ptr::null_mut(),
        dictionary: std::ptr::null_mut(),
        release: Some(release_schema),
        private_data: std::ptr::null_mut(),
    };
    FfiArraySchema(array, schema)
}

fn push_bytes(buffers: &mut Vec<Vec<u64>>, bytes: &[u8]) {
    let mut offsets = [0u8; 8];
    offsets[4..].copy_from_slice(&(bytes.len() as i32).to_ne_bytes());
    buffers.push(words(&offsets));
    buffers.push(words(bytes));
}

/// Reads row 0 of an imported array, then releases the array and its schema.
///
/// # Safety
/// `pair` must be a valid C data interface array and schema that nobody else releases.
pub unsafe fn import(mut pair: FfiArraySchema) -> Result<Datum, String> {
    let result = unsafe { read_first(&pair.0, &pair.1) };
    // SAFETY: the producer gave us ownership; release each exactly once.
    unsafe {
        if let Some(release) = pair.0.release {
            release(&mut pair.0);
        }
        if let Some(release) = pair.1.release {
            release(&mut pair.1);
        }
    }
    result
}

unsafe fn read_first(array: &FfiArrowArray, schema: &FfiArrowSchema) -> Result<Datum, String> {
    if array.release.is_none() || schema.release.is_none() {
        return Err("the UDF returned a released array".into());
    }
    if schema.format.is_null() {
        return Err("the UDF's result has no format".into());
    }
    // SAFETY: a valid schema's format is a NUL-terminated string.
    let format = unsafe { CStr::from_ptr(schema.format) }.to_bytes();
    if array.length < 1 {
        return Err(format!("the UDF returned {} rows, not 1", array.length));
    }
    let row = usize::try_from(array.offset).map_err(|_| "negative offset")?;
    let buffer = |i: usize| -> Result<*const u8, String> {
        if (i as i64) >= array.n_buffers || array.buffers.is_null() {
            return Err(format!("the UDF's result has {} buffers", array.n_buffers));
        }
        // SAFETY: `buffers` has `n_buffers` entries.
        Ok(unsafe { *array.buffers.add(i) } as *const u8)
    };
    let bit = |ptr: *const u8, i: usize| -> bool {
        // SAFETY: a bitmap buffer covers offset + length bits.
        unsafe { (*ptr.add(i / 8) >> (i % 8)) & 1 == 1 }
    };
    let validity = buffer(0)?;
    let arg_type = match format {
        b"b" => ArgType::Bool,
        b"c" | b"s" | b"i" => ArgType::I32,
        b"l" => ArgType::I64,
        b"C" | b"S" | b"I" => ArgType::U32,
        b"L" => ArgType::U64,
        b"f" => ArgType::F32,
        b"g" => ArgType::F64,
        b"u" | b"U" => ArgType::String,
        b"z" | b"Z" => ArgType::Bytes,
        other => {
            return Err(format!(
                "the UDF returned Arrow type {:?}, which rules cannot use",
                String::from_utf8_lossy(other)
            ))
        }
    };
    if array.null_count != 0 && (validity.is_null() || !bit(validity, row)) {
        return Ok(Datum::Null(arg_type));
    }
    let values = buffer(1)?;
    if values.is_null() {
        return Err("the UDF's result has no values buffer".into());
    }
    /// Reads a `T` at element `row` of a buffer.
    unsafe fn at<T: Copy>(ptr: *const u8, row: usize) -> T {
        // SAFETY: the caller checked the type; buffers cover offset + length elements.
        unsafe { std::ptr::read_unaligned((ptr as *const T).add(row)) }
    }
    // SAFETY (all arms): the format says what the buffers hold.
    let datum = unsafe {
        match format {
            b"b" => Datum::Bool(bit(values, row)),
            b"c" => Datum::Int(at::<i8>(values, row).into(), ArgType::I32),
            b"s" => Datum::Int(at::<i16>(values, row).into(), ArgType::I32),
            b"i" => Datum::Int(at::<i32>(values, row).into(), ArgType::I32),
            b"l" => Datum::Int(at::<i64>(values, row), ArgType::I64),
            b"C" => Datum::UInt(at::<u8>(values, row).into(), ArgType::U32),
            b"S" => Datum::UInt(at::<u16>(values, row).into(), ArgType::U32),
            b"I" => Datum::UInt(at::<u32>(values, row).into(), ArgType::U32),
            b"L" => Datum::UInt(at::<u64>(values, row), ArgType::U64),
            b"f" => Datum::Float(at::<f32>(values, row).into(), ArgType::F32),
            b"g" => Datum::Float(at::<f64>(values, row), ArgType::F64),
            b"u" | b"z" | b"U" | b"Z" => {
                let (start, end) = if matches!(format, b"u" | b"z") {
                    (at::<i32>(values, row) as i64, at::<i32>(values, row + 1) as i64)
                } else {
                    (at::<i64>(values, row), at::<i64>(values, row + 1))
                };
                let len = usize::try_from(end - start).map_err(|_| "negative string length")?;
                let start = usize::try_from(start).map_err(|_| "negative string offset")?;
                let data = buffer(2)?;
                if data.is_null() && len > 0 {
                    return Err("the UDF's result has no data buffer".into());
                }
                let bytes =
                    if len == 0 { Vec::new() } else { std::slice::from_raw_parts(data.add(start), len).to_vec() };
                if format.eq_ignore_ascii_case(b"u") {
                    Datum::Utf8(String::from_utf8(bytes).map_err(|_| "the UDF returned a string that is not UTF-8")?)
                } else {
                    Datum::Binary(bytes)
                }
            }
            _ => unreachable!("formats are checked above"),
        }
    };
    Ok(datum)
}

/// A UDF library as the config names it: a path, or a table with the function's name and
/// argument types.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum UdfSpec {
    /// `"path/to/libname.so"`: called as `name` (the file stem without `lib`), argument types
    /// from the CEL values.
    Path(PathBuf),
    /// `{ path = "...", name = "...", args = ["string", "i64", ...] }`.
    Table {
        /// The cdylib.
        path: PathBuf,
        /// The function name rules call (default: the file stem without `lib`).
        #[serde(default)]
        name: Option<String>,
        /// The argument types of the UDF's Rust signature, to convert CEL values to (and to pass
        /// nulls).
        #[serde(default)]
        args: Option<Vec<ArgType>>,
    },
}

impl UdfSpec {
    /// The library's path.
    pub fn path(&self) -> &Path {
        match self {
            UdfSpec::Path(path) | UdfSpec::Table { path, .. } => path,
        }
    }
}

/// One loaded UDF.
pub struct Udf {
    name: String,
    path: PathBuf,
    digest: [u8; 32],
    args: Option<Vec<ArgType>>,
    run: RunFn,
    /// Keeps `run` loaded; `None` for functions linked into this binary (tests).
    _library: Option<libloading::Library>,
}

impl fmt::Debug for Udf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Udf").field("name", &self.name).field("path", &self.path).finish()
    }
}

impl Udf {
    /// A UDF whose `__run` is linked into this binary (Arroyo's `local_udf`): for tests.
    pub fn local(name: &str, args: Option<Vec<ArgType>>, run: RunFn) -> Udf {
        Udf { name: name.into(), path: PathBuf::from("<local>"), digest: [0; 32], args, run, _library: None }
    }

    /// The name rules call it by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls it with one row of arguments.
    pub fn call(&self, args: &[&dyn Val]) -> Result<Datum, String> {
        if args.is_empty() {
            return Err("Arroyo's UDF ABI needs at least one argument".into());
        }
        if let Some(declared) = &self.args {
            if declared.len() != args.len() {
                return Err(format!("takes {} arguments, not {}", declared.len(), args.len()));
            }
        }
        let mut arrays = Vec::with_capacity(args.len());
        for (i, arg) in args.iter().enumerate() {
            let declared = self.args.as_ref().map(|a| a[i]);
            let datum = Datum::from_val(*arg, declared).map_err(|e| format!("argument {}: {e}", i + 1))?;
            arrays.push(export(&datum));
        }
        let run = self.run;
        // The library catches panics in the function itself; this catches any before it.
        let result = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `run` is an Arroyo `__run`; it takes ownership of the arrays.
            unsafe { run(FfiArrays::from_vec(arrays)) }
        }))
        .map_err(|_| "panicked".to_string())?;
        match result {
            // SAFETY: the library hands over a valid array it no longer owns.
            RunResult::Ok(pair) => unsafe { import(pair) },
            RunResult::Err => Err("panicked".into()),
        }
    }
}

/// The UDFs a policy set can call.
#[derive(Debug, Default, Clone)]
pub struct Udfs {
    udfs: Vec<Arc<Udf>>,
}

impl Udfs {
    /// No UDFs.
    pub fn none() -> Udfs {
        Udfs::default()
    }

    /// These UDFs (e.g. [`Udf::local`] ones).
    pub fn from_udfs(udfs: Vec<Udf>) -> Udfs {
        Udfs { udfs: udfs.into_iter().map(Arc::new).collect() }
    }

    /// Loads the libraries `specs` name.
    pub fn load(specs: &[UdfSpec]) -> Result<Udfs, PolicyLoadError> {
        let mut udfs: Vec<Arc<Udf>> = Vec::new();
        for spec in specs {
            let path = spec.path();
            let fail = |reason: String| PolicyLoadError::one(path, None, reason);
            let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read the UDF library: {e}")))?;
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            let (name, args) = match spec {
                UdfSpec::Path(_) => (None, None),
                UdfSpec::Table { name, args, .. } => (name.clone(), args.clone()),
            };
            let name = match name {
                Some(name) => name,
                None => {
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                    stem.strip_prefix("lib").unwrap_or(stem).to_string()
                }
            };
            let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier {
                return Err(fail(format!("UDF name {name:?} is not a CEL identifier (set `name`)")));
            }
            if udfs.iter().any(|u| u.name == name) {
                return Err(fail(format!("a UDF named `{name}` is already loaded")));
            }
            // SAFETY: loading a library runs its initialisers: the operator trusts the libraries
            // its config names, as Arroyo does.
            let library = unsafe { libloading::Library::new(path) }
                .map_err(|e| fail(format!("cannot load the UDF library: {e}")))?;
            // SAFETY: `__run` has this signature in every Arroyo sync UDF library.
            let run: RunFn = match unsafe { library.get::<RunFn>(b"__run\0") } {
                Ok(symbol) => *symbol,
                Err(_) => {
                    // SAFETY: only checking that the symbol exists.
                    let is_async = unsafe { library.get::<*const c_void>(b"__start\0") }.is_ok();
                    return Err(fail(if is_async {
                        "async UDFs are not supported by the policy operator".into()
                    } else {
                        "not an Arroyo UDF library: it exports no `__run`".into()
                    }));
                }
            };
            udfs.push(Arc::new(Udf { name, path: path.to_path_buf(), digest, args, run, _library: Some(library) }));
        }
        Ok(Udfs { udfs })
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.udfs.is_empty()
    }

    /// Adds each UDF's name and library digest to a policy-set version.
    pub fn hash_into(&self, hasher: &mut Sha256) {
        for udf in &self.udfs {
            hasher.update(b"udf\0");
            hasher.update(udf.name.as_bytes());
            hasher.update([0]);
            hasher.update(udf.digest);
        }
    }

    /// Makes every UDF callable from expressions evaluated in `context`.
    pub fn register(&self, context: &mut Context<'static, 'static>) -> Result<(), Problem> {
        for udf in &self.udfs {
            let called = Arc::clone(udf);
            type Function = Box<
                dyn for<'c, 'l> Fn(&mut FunctionContext<'c, 'l>) -> Result<CowVal<'c, 'l>, ExecutionError>
                    + Send
                    + Sync,
            >;
            let function: Function = Box::new(move |ftx: &mut FunctionContext<'_, '_>| {
                let mut args: Vec<&dyn Val> = Vec::with_capacity(ftx.args.len() + 1);
                if let Some(this) = &ftx.this {
                    args.push(this.as_ref());
                }
                args.extend(ftx.args.iter().map(|a| a.as_ref()));
                match called.call(&args) {
                    Ok(datum) => Ok(CowVal::Owned(datum.into_val())),
                    Err(reason) => Err(ExecutionError::function_error(&called.name, format!("UDF {reason}"))),
                }
            });
            context.add_function(&udf.name, function).map_err(|e| Problem {
                file: udf.path.clone(),
                line: None,
                reason: format!("UDF `{}` cannot be registered: {e}", udf.name),
            })?;
        }
        Ok(())
    }
}
