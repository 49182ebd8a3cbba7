//! Hand-declared subset of Node-API (js_native_api.h, N-API version 1) and thin helpers.
//!
//! No crate provides these: the symbols are left undefined in the cdylib and resolve from
//! the host process (node, bun) when it dlopens the `.node` file. Only functions this crate
//! calls are declared; every one of them exists since N-API version 1.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;

/// Opaque handles of js_native_api_types.h.
#[repr(C)]
pub struct OpaqueEnv {
    _private: [u8; 0],
}
#[repr(C)]
pub struct OpaqueValue {
    _private: [u8; 0],
}
#[repr(C)]
pub struct OpaqueCallbackInfo {
    _private: [u8; 0],
}

pub type Env = *mut OpaqueEnv;
pub type Value = *mut OpaqueValue;
pub type CallbackInfo = *mut OpaqueCallbackInfo;
pub type Callback = unsafe extern "C" fn(env: Env, info: CallbackInfo) -> Value;

/// `napi_status`: 0 is `napi_ok`; any other value is a failure.
pub type Status = i32;
pub const OK: Status = 0;

/// `napi_valuetype` values (js_native_api_types.h).
pub const VALUE_TYPE_UNDEFINED: i32 = 0;
pub const VALUE_TYPE_NULL: i32 = 1;
pub const VALUE_TYPE_BOOLEAN: i32 = 2;
pub const VALUE_TYPE_NUMBER: i32 = 3;
pub const VALUE_TYPE_STRING: i32 = 4;
pub const VALUE_TYPE_OBJECT: i32 = 6;
pub const VALUE_TYPE_EXTERNAL: i32 = 8;

/// `napi_finalize`: called on the JS thread when an external is collected.
pub type Finalize = unsafe extern "C" fn(env: Env, data: *mut c_void, hint: *mut c_void);
/// The cleanup hook of `napi_add_env_cleanup_hook` (N-API 3): runs when the env tears down.
pub type CleanupHook = unsafe extern "C" fn(arg: *mut c_void);

// SAFETY: these are the C signatures of js_native_api.h; the host process provides them.
unsafe extern "C" {
    fn napi_create_string_utf8(env: Env, s: *const c_char, len: usize, out: *mut Value) -> Status;
    fn napi_create_object(env: Env, out: *mut Value) -> Status;
    fn napi_set_named_property(env: Env, obj: Value, name: *const c_char, v: Value) -> Status;
    fn napi_get_boolean(env: Env, b: bool, out: *mut Value) -> Status;
    fn napi_create_function(
        env: Env,
        name: *const c_char,
        len: usize,
        cb: Callback,
        data: *mut c_void,
        out: *mut Value,
    ) -> Status;
    fn napi_get_cb_info(
        env: Env,
        info: CallbackInfo,
        argc: *mut usize,
        argv: *mut Value,
        this: *mut Value,
        data: *mut *mut c_void,
    ) -> Status;
    fn napi_typeof(env: Env, v: Value, out: *mut i32) -> Status;
    fn napi_get_value_string_utf8(
        env: Env,
        v: Value,
        buf: *mut c_char,
        size: usize,
        out: *mut usize,
    ) -> Status;
    fn napi_throw_error(env: Env, code: *const c_char, msg: *const c_char) -> Status;
    fn napi_throw_type_error(env: Env, code: *const c_char, msg: *const c_char) -> Status;
    fn napi_is_exception_pending(env: Env, out: *mut bool) -> Status;
    fn napi_create_double(env: Env, v: f64, out: *mut Value) -> Status;
    fn napi_get_value_double(env: Env, v: Value, out: *mut f64) -> Status;
    fn napi_get_value_bool(env: Env, v: Value, out: *mut bool) -> Status;
    fn napi_get_null(env: Env, out: *mut Value) -> Status;
    fn napi_get_undefined(env: Env, out: *mut Value) -> Status;
    fn napi_create_array_with_length(env: Env, len: usize, out: *mut Value) -> Status;
    fn napi_set_element(env: Env, obj: Value, index: u32, v: Value) -> Status;
    fn napi_get_named_property(
        env: Env,
        obj: Value,
        name: *const c_char,
        out: *mut Value,
    ) -> Status;
    fn napi_create_external(
        env: Env,
        data: *mut c_void,
        finalize: Option<Finalize>,
        hint: *mut c_void,
        out: *mut Value,
    ) -> Status;
    fn napi_get_value_external(env: Env, v: Value, out: *mut *mut c_void) -> Status;
    fn napi_create_external_arraybuffer(
        env: Env,
        data: *mut c_void,
        byte_length: usize,
        finalize: Option<Finalize>,
        hint: *mut c_void,
        out: *mut Value,
    ) -> Status;
    fn napi_create_error(env: Env, code: Value, msg: Value, out: *mut Value) -> Status;
    fn napi_throw(env: Env, error: Value) -> Status;
    pub fn napi_add_env_cleanup_hook(env: Env, hook: CleanupHook, arg: *mut c_void) -> Status;
    pub fn napi_remove_env_cleanup_hook(env: Env, hook: CleanupHook, arg: *mut c_void) -> Status;
}

/// A failed N-API call, or a JS exception already thrown; the entry point returns null.
#[derive(Debug)]
pub struct Thrown;

fn check(status: Status) -> Result<(), Thrown> {
    if status == OK { Ok(()) } else { Err(Thrown) }
}

/// Longest string argument accepted (PATH_MAX on Linux, 4096 bytes, NUL included).
pub const MAX_STRING_ARG_BYTES: usize = 4096;

/// Borrowed N-API environment valid for the duration of one call from JS.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    env: Env,
}

impl Scope {
    /// # Safety
    /// `env` must be the live `napi_env` handed to the current callback or module init.
    pub unsafe fn new(env: Env) -> Self {
        Self { env }
    }

    pub fn string(self, s: &str) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `s` is valid UTF-8 of `s.len()` bytes for the duration of the call.
        check(unsafe { napi_create_string_utf8(self.env, s.as_ptr().cast(), s.len(), &mut out) })?;
        Ok(out)
    }

    pub fn boolean(self, b: bool) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `env` is live per `Scope::new`; `out` is a valid out-pointer.
        check(unsafe { napi_get_boolean(self.env, b, &mut out) })?;
        Ok(out)
    }

    pub fn object(self) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `env` is live per `Scope::new`; `out` is a valid out-pointer.
        check(unsafe { napi_create_object(self.env, &mut out) })?;
        Ok(out)
    }

    pub fn set(self, obj: Value, name: &CStr, v: Value) -> Result<(), Thrown> {
        // SAFETY: `name` is NUL-terminated; `obj` and `v` are handles of this scope.
        check(unsafe { napi_set_named_property(self.env, obj, name.as_ptr(), v) })
    }

    pub fn function(self, name: &CStr, cb: Callback) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        let len = name.to_bytes().len();
        // SAFETY: `name` outlives the call; `cb` is a valid callback with no data pointer.
        check(unsafe {
            napi_create_function(self.env, name.as_ptr(), len, cb, ptr::null_mut(), &mut out)
        })?;
        Ok(out)
    }

    /// The first `N` arguments of the current call; missing ones are `undefined`.
    pub fn args<const N: usize>(self, info: CallbackInfo) -> Result<([Value; N], usize), Thrown> {
        let mut argv = [ptr::null_mut(); N];
        let mut argc = N;
        // SAFETY: `argv` has room for `argc` handles; `this` and `data` are not requested.
        check(unsafe {
            napi_get_cb_info(
                self.env,
                info,
                &mut argc,
                argv.as_mut_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        })?;
        Ok((argv, argc))
    }

    pub fn type_of(self, v: Value) -> Result<i32, Thrown> {
        let mut out = 0;
        // SAFETY: `v` is a handle of this scope; `out` is a valid out-pointer.
        check(unsafe { napi_typeof(self.env, v, &mut out) })?;
        Ok(out)
    }

    /// Copies a JS string out; `Ok(None)` when it is longer than `MAX_STRING_ARG_BYTES`.
    pub fn string_value(self, v: Value) -> Result<Option<String>, Thrown> {
        let mut len = 0usize;
        // SAFETY: a null buffer asks only for the UTF-8 length (without the NUL).
        check(unsafe { napi_get_value_string_utf8(self.env, v, ptr::null_mut(), 0, &mut len) })?;
        if len >= MAX_STRING_ARG_BYTES {
            return Ok(None);
        }
        let mut buf = vec![0u8; len + 1];
        let mut copied = 0usize;
        // SAFETY: `buf` holds `len + 1` bytes, room for the string and its NUL.
        check(unsafe {
            napi_get_value_string_utf8(self.env, v, buf.as_mut_ptr().cast(), buf.len(), &mut copied)
        })?;
        buf.truncate(copied.min(len));
        // N-API wrote UTF-8; a lossy conversion only guards against a broken host.
        Ok(Some(String::from_utf8(buf).unwrap_or_else(|e| {
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        })))
    }

    pub fn env(self) -> Env {
        self.env
    }

    pub fn number(self, v: f64) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `env` is live per `Scope::new`; `out` is a valid out-pointer.
        check(unsafe { napi_create_double(self.env, v, &mut out) })?;
        Ok(out)
    }

    pub fn null(self) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `env` is live per `Scope::new`; `out` is a valid out-pointer.
        check(unsafe { napi_get_null(self.env, &mut out) })?;
        Ok(out)
    }

    pub fn undefined(self) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `env` is live per `Scope::new`; `out` is a valid out-pointer.
        check(unsafe { napi_get_undefined(self.env, &mut out) })?;
        Ok(out)
    }

    /// A JS number as f64 (the caller checked its type).
    pub fn f64_value(self, v: Value) -> Result<f64, Thrown> {
        let mut out = 0.0;
        // SAFETY: `v` is a handle of this scope; `out` is a valid out-pointer.
        check(unsafe { napi_get_value_double(self.env, v, &mut out) })?;
        Ok(out)
    }

    pub fn bool_value(self, v: Value) -> Result<bool, Thrown> {
        let mut out = false;
        // SAFETY: `v` is a handle of this scope; `out` is a valid out-pointer.
        check(unsafe { napi_get_value_bool(self.env, v, &mut out) })?;
        Ok(out)
    }

    pub fn array(self, len: usize) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `env` is live per `Scope::new`; `out` is a valid out-pointer.
        check(unsafe { napi_create_array_with_length(self.env, len, &mut out) })?;
        Ok(out)
    }

    pub fn set_element(self, arr: Value, i: u32, v: Value) -> Result<(), Thrown> {
        // SAFETY: `arr` and `v` are handles of this scope.
        check(unsafe { napi_set_element(self.env, arr, i, v) })
    }

    pub fn get(self, obj: Value, name: &CStr) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `name` is NUL-terminated; `obj` is a handle of this scope.
        check(unsafe { napi_get_named_property(self.env, obj, name.as_ptr(), &mut out) })?;
        Ok(out)
    }

    /// Wraps `data` in a JS external; `finalize` runs when JS collects it.
    pub fn external(self, data: *mut c_void, finalize: Finalize) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `data` stays valid until `finalize` runs, which the caller arranges.
        check(unsafe {
            napi_create_external(self.env, data, Some(finalize), ptr::null_mut(), &mut out)
        })?;
        Ok(out)
    }

    /// An ArrayBuffer over `len` bytes at `data` that JS reads and writes in place;
    /// `finalize(env, data, hint)` runs when JS collects it.
    pub fn external_arraybuffer(
        self,
        data: *mut c_void,
        len: usize,
        finalize: Finalize,
        hint: *mut c_void,
    ) -> Result<Value, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `data` stays valid for `len` bytes until `finalize` runs (the caller keeps
        // it alive through `hint`).
        check(unsafe {
            napi_create_external_arraybuffer(self.env, data, len, Some(finalize), hint, &mut out)
        })?;
        Ok(out)
    }

    pub fn external_value(self, v: Value) -> Result<*mut c_void, Thrown> {
        let mut out = ptr::null_mut();
        // SAFETY: `v` is an external handle of this scope (the caller checked its type).
        check(unsafe { napi_get_value_external(self.env, v, &mut out) })?;
        Ok(out)
    }

    /// Throws `Error(msg)` with `code` and extra properties, unless an exception is pending.
    pub fn throw_error_with(self, code: &str, msg: &str, props: &[(&CStr, Value)]) -> Thrown {
        if self.exception_pending() {
            return Thrown;
        }
        let made = (|| {
            let mut err = ptr::null_mut();
            let (c, m) = (self.string(code)?, self.string(msg)?);
            // SAFETY: `c` and `m` are string handles of this scope.
            check(unsafe { napi_create_error(self.env, c, m, &mut err) })?;
            for (name, v) in props {
                self.set(err, name, *v)?;
            }
            Ok::<Value, Thrown>(err)
        })();
        match made {
            // SAFETY: `e` is an Error handle of this scope.
            Ok(e) => unsafe {
                napi_throw(self.env, e);
            },
            Err(Thrown) => {
                self.throw_error(c"FLUX_NATIVE_NAPI", msg);
            }
        }
        Thrown
    }

    fn exception_pending(self) -> bool {
        let mut pending = false;
        // SAFETY: `env` is live per `Scope::new`; `pending` is a valid out-pointer.
        let status = unsafe { napi_is_exception_pending(self.env, &mut pending) };
        status != OK || pending
    }

    /// Throws `TypeError(msg)` with `err.code = code`, unless an exception is pending.
    pub fn throw_type_error(self, code: &CStr, msg: &str) -> Thrown {
        if !self.exception_pending() {
            let msg = to_cstring(msg);
            // SAFETY: both strings are NUL-terminated and live for the call.
            unsafe { napi_throw_type_error(self.env, code.as_ptr(), msg.as_ptr()) };
        }
        Thrown
    }

    /// Throws `Error(msg)` with `err.code = code`, unless an exception is pending.
    pub fn throw_error(self, code: &CStr, msg: &str) -> Thrown {
        if !self.exception_pending() {
            let msg = to_cstring(msg);
            // SAFETY: both strings are NUL-terminated and live for the call.
            unsafe { napi_throw_error(self.env, code.as_ptr(), msg.as_ptr()) };
        }
        Thrown
    }
}

/// A message as a C string; interior NULs (never expected) become spaces.
fn to_cstring(msg: &str) -> std::ffi::CString {
    std::ffi::CString::new(msg.replace('\0', " ")).unwrap_or_default()
}
