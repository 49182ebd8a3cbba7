//! flux-native: the N-API addon of FLUX video: the io_uring + O_DIRECT segment writer
//! (writer.rs, state.rs, pool.rs, io.rs, uring.rs; JS surface in js_writer.rs), its version, and the probe of
//! the kernel (io_uring, O_DIRECT) the engine runs at start-up to pick a writer.
//!
//! The JS surface is written down once, in `native/flux-native.d.ts`; a load test compares
//! it with what `napi_register_module_v1` exports here. Every entry point runs inside
//! `catch_unwind`: a panic becomes a JS `Error`, never an unwind across the C boundary.

mod io;
#[cfg(not(test))]
mod js_writer;
#[cfg(not(test))]
mod napi;
mod pool;
mod probe;
mod state;
mod sys;
mod uring;
mod writer;
#[cfg(test)]
mod writer_tests;

/// The crate version, `version()` in JS.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// The N-API glue is left out of `cargo test`: a test executable cannot leave the napi_*
// symbols undefined the way the cdylib does, and the pure parts are tested on their own.
#[cfg(not(test))]
mod entry {
    use crate::napi::{CallbackInfo, Env, Scope, Thrown, VALUE_TYPE_STRING, Value};
    use crate::{VERSION, probe};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::path::Path;
    use std::ptr;

    /// Runs one entry point: a JS exception or failed N-API call yields null (JS sees the
    /// exception, or `undefined`), and a panic is caught and thrown as a JS Error.
    pub(crate) fn guarded(
        env: Env,
        name: &str,
        body: impl FnOnce(Scope) -> Result<Value, Thrown>,
    ) -> Value {
        // SAFETY: `env` is the live napi_env the host passed to this callback.
        let scope = unsafe { Scope::new(env) };
        match catch_unwind(AssertUnwindSafe(|| body(scope))) {
            Ok(Ok(v)) => v,
            Ok(Err(Thrown)) => {
                scope.throw_error(
                    c"FLUX_NATIVE_NAPI",
                    &format!("flux-native: {name}: N-API call failed"),
                );
                ptr::null_mut()
            }
            Err(payload) => {
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                scope.throw_error(
                    c"FLUX_NATIVE_PANIC",
                    &format!("flux-native: {name} panicked: {what}"),
                );
                ptr::null_mut()
            }
        }
    }

    unsafe extern "C" fn js_version(env: Env, _info: CallbackInfo) -> Value {
        guarded(env, "version()", |s| s.string(VERSION))
    }

    pub(crate) fn type_name(t: i32) -> &'static str {
        // napi_valuetype order, js_native_api_types.h
        const NAMES: [&str; 10] = [
            "undefined",
            "null",
            "boolean",
            "number",
            "string",
            "symbol",
            "object",
            "function",
            "external",
            "bigint",
        ];
        usize::try_from(t)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("unknown")
    }

    unsafe extern "C" fn js_probe(env: Env, info: CallbackInfo) -> Value {
        guarded(env, "probe()", |s| {
            let ([arg], argc) = s.args::<1>(info)?;
            let t = if argc == 0 { 0 } else { s.type_of(arg)? };
            if t != VALUE_TYPE_STRING {
                let msg = format!("probe(path): path must be a string, got {}", type_name(t));
                return Err(s.throw_type_error(c"ERR_INVALID_ARG_TYPE", &msg));
            }
            let Some(path) = s.string_value(arg)? else {
                let msg = "probe(path): path is longer than PATH_MAX (4096 bytes)";
                return Err(s.throw_type_error(c"ERR_INVALID_ARG_VALUE", msg));
            };
            let report = probe::run(Path::new(&path));
            let out = s.object()?;
            s.set(out, c"ioUring", s.boolean(report.io_uring.is_ok())?)?;
            if let Err(e) = &report.io_uring {
                s.set(out, c"ioUringError", s.string(e)?)?;
            }
            s.set(out, c"directIo", s.boolean(report.direct_io.is_ok())?)?;
            if let Err(e) = &report.direct_io {
                s.set(out, c"directIoError", s.string(e)?)?;
            }
            s.set(out, c"kernel", s.string(&report.kernel)?)?;
            Ok(out)
        })
    }

    /// Module init, called by Node and Bun once per environment that loads the `.node`.
    ///
    /// # Safety
    /// Called by the host with a live `env` and the module's `exports` object.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn napi_register_module_v1(env: Env, exports: Value) -> Value {
        guarded(env, "module init", |s| {
            s.set(exports, c"version", s.function(c"version", js_version)?)?;
            s.set(exports, c"probe", s.function(c"probe", js_probe)?)?;
            use crate::js_writer as w;
            let writer_fns: [(&std::ffi::CStr, crate::napi::Callback); 11] = [
                (c"writerCreate", w::js_create),
                (c"writerOpen", w::js_open),
                (c"writerTake", w::js_take),
                (c"writerBlock", w::js_block),
                (c"writerWrite", w::js_write),
                (c"writerDrop", w::js_drop),
                (c"writerClose", w::js_close),
                (c"writerPoll", w::js_poll),
                (c"writerPending", w::js_pending),
                (c"writerStats", w::js_stats),
                (c"writerShutdown", w::js_shutdown),
            ];
            for (name, f) in writer_fns {
                s.set(exports, name, s.function(name, f)?)?;
            }
            Ok(exports)
        })
    }
}
