//! The writer's JS entry points (`writer*` in flux-native.d.ts): argument checks, the
//! handle (a JS external owning one `Writer`), and errors as JS values.
//!
//! Completions reach JS by polling (`writerPoll`, which the TS side calls on a timer), not
//! by thread-safe functions: nothing JS-side ever waits on a completion (a written block
//! simply becomes free again), a poll that finds nothing costs one lock and makes no JS
//! value, and no cross-thread JS handle exists that must be released before a worker's env
//! or the process goes away.
//!
//! Blocks reach JS as external ArrayBuffers over the pool's memory, made once per block
//! (`writerBlock`); each holds a reference to its block's memory, so a view that outlives
//! the writer still points at live memory.

use crate::entry::{guarded, type_name};
use crate::napi::{
    self, CallbackInfo, Env, Scope, Thrown, VALUE_TYPE_BOOLEAN, VALUE_TYPE_EXTERNAL,
    VALUE_TYPE_NULL, VALUE_TYPE_NUMBER, VALUE_TYPE_OBJECT, VALUE_TYPE_STRING, VALUE_TYPE_UNDEFINED,
    Value,
};
use crate::pool::Block;
use crate::writer::{Options, WriteError, Writer};
use std::cell::Cell;
use std::ffi::{CStr, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

/// Tags our externals so a foreign external passed as a handle is refused, not trusted.
const HANDLE_MAGIC: u64 = 0x464c_5558_5752_4954; // "FLUXWRIT"
/// File ids are below 2^53 (see writer.rs), exact in a JS number.
const MAX_ID: f64 = 9_007_199_254_740_991.0;

#[derive(Debug)]
struct Handle {
    magic: u64,
    writer: Writer,
    hooked: Cell<bool>,
}

/// Env teardown (worker exit, process exit): write out and close every file, stop threads.
unsafe extern "C" fn cleanup_hook(arg: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `arg` is the Handle box registered in writerCreate; the finalizer removes
        // this hook before freeing it, so it is alive here.
        let h = unsafe { &*(arg as *const Handle) };
        h.hooked.set(false);
        h.writer.shutdown(true);
    }));
}

/// The handle was collected: dropping the Writer closes every file and joins its threads.
unsafe extern "C" fn finalize(env: Env, data: *mut c_void, _hint: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Box<Handle> leaked in writerCreate, finalized exactly once.
        let h = unsafe { Box::from_raw(data as *mut Handle) };
        if h.hooked.get() {
            // SAFETY: the same hook/arg pair registered in writerCreate, on the JS thread.
            unsafe { napi::napi_remove_env_cleanup_hook(env, cleanup_hook, data) };
        }
        drop(h);
    }));
}

fn type_error(s: Scope, msg: &str) -> Thrown {
    s.throw_type_error(c"ERR_INVALID_ARG_TYPE", msg)
}

fn handle<'a>(s: Scope, v: Value, f: &str) -> Result<&'a Handle, Thrown> {
    if s.type_of(v)? == VALUE_TYPE_EXTERNAL {
        let p = s.external_value(v)? as *const Handle;
        // SAFETY: externals reaching here are ours in practice (the magic check refuses a
        // stray one); a Handle lives until its external is collected, after this call.
        if !p.is_null() && unsafe { (*p).magic } == HANDLE_MAGIC {
            // SAFETY: as above: `p` is a live Handle.
            return Ok(unsafe { &*p });
        }
    }
    Err(type_error(
        s,
        &format!("{f}: the first argument must be a handle from writerCreate()"),
    ))
}

fn file_id(s: Scope, v: Value, f: &str) -> Result<u64, Thrown> {
    if s.type_of(v)? == VALUE_TYPE_NUMBER {
        let n = s.f64_value(v)?;
        if (0.0..=MAX_ID).contains(&n) && n.fract() == 0.0 {
            return Ok(n as u64);
        }
    }
    Err(type_error(
        s,
        &format!("{f}: id must be a file id from writerOpen()"),
    ))
}

fn opt_bool(s: Scope, v: Value, what: &str) -> Result<Option<bool>, Thrown> {
    match s.type_of(v)? {
        VALUE_TYPE_UNDEFINED | VALUE_TYPE_NULL => Ok(None),
        VALUE_TYPE_BOOLEAN => Ok(Some(s.bool_value(v)?)),
        t => Err(type_error(
            s,
            &format!("{what} must be a boolean, got {}", type_name(t)),
        )),
    }
}

/// An optional numeric option, clamped to `lo..=hi`.
fn opt_num(
    s: Scope,
    obj: Value,
    name: &CStr,
    lo: f64,
    hi: f64,
    default: f64,
) -> Result<f64, Thrown> {
    let v = s.get(obj, name)?;
    match s.type_of(v)? {
        VALUE_TYPE_UNDEFINED => Ok(default),
        VALUE_TYPE_NUMBER => {
            let n = s.f64_value(v)?;
            if n.is_nan() {
                return Err(type_error(
                    s,
                    &format!("writerCreate: {} is NaN", name.to_string_lossy()),
                ));
            }
            Ok(n.clamp(lo, hi))
        }
        t => Err(type_error(
            s,
            &format!(
                "writerCreate: {} must be a number, got {}",
                name.to_string_lossy(),
                type_name(t)
            ),
        )),
    }
}

fn error_props(s: Scope, e: &WriteError) -> Result<[(&'static CStr, Value); 5], Thrown> {
    Ok([
        (c"errno", s.number(f64::from(e.errno))?),
        (c"op", s.string(e.op)?),
        (c"path", s.string(&e.path)?),
        (c"offset", s.number(e.offset as f64)?),
        (c"size", s.number(e.size as f64)?),
    ])
}

fn throw_write_error(s: Scope, e: &WriteError) -> Thrown {
    match error_props(s, e) {
        Ok(props) => s.throw_error_with(e.code(), &e.message(), &props),
        Err(t) => t,
    }
}

pub unsafe extern "C" fn js_create(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerCreate()", |s| {
        let ([o], argc) = s.args::<1>(info)?;
        let t = if argc == 0 {
            VALUE_TYPE_UNDEFINED
        } else {
            s.type_of(o)?
        };
        let has = t == VALUE_TYPE_OBJECT;
        if !has && t != VALUE_TYPE_UNDEFINED {
            return Err(type_error(
                s,
                "writerCreate(options): options must be an object",
            ));
        }
        let num = |name: &CStr, lo, hi, d| {
            if has {
                opt_num(s, o, name, lo, hi, d)
            } else {
                Ok(d)
            }
        };
        let direct = if has {
            opt_bool(s, s.get(o, c"directIo")?, "writerCreate: directIo")?
        } else {
            None
        };
        let opts = Options {
            direct_io: direct.unwrap_or(true),
            block_bytes: num(
                c"blockBytes",
                4096.0,
                f64::from(16 << 20),
                f64::from(64 << 10),
            )? as usize,
            pool_blocks: num(c"poolBlocks", 2.0, 1_048_576.0, 2048.0)? as usize,
            batch_interval: Duration::from_millis(
                num(c"batchIntervalMs", 1.0, 10_000.0, 100.0)? as u64
            ),
            batch_size: num(c"batchSize", 1.0, 4096.0, 32.0)? as usize,
            ring_entries: num(c"ringEntries", 8.0, 4096.0, 256.0)? as u32,
            prealloc_bytes: num(c"preallocBytes", 0.0, 1024.0 * 1024.0 * 1024.0, 0.0)? as u64,
        };
        let writer = match Writer::new(opts) {
            Ok(w) => w,
            Err(e) => {
                return Err(s.throw_error(
                    c"ERR_IO_URING",
                    &format!("writerCreate: io_uring set-up failed: {e}"),
                ));
            }
        };
        let raw = Box::into_raw(Box::new(Handle {
            magic: HANDLE_MAGIC,
            writer,
            hooked: Cell::new(false),
        }));
        let ext = match s.external(raw.cast(), finalize) {
            Ok(v) => v,
            Err(t) => {
                // SAFETY: the external was not created, so nothing else owns `raw`.
                drop(unsafe { Box::from_raw(raw) });
                return Err(t);
            }
        };
        // SAFETY: `raw` lives until `finalize`, which removes the hook first.
        if unsafe { napi::napi_add_env_cleanup_hook(s.env(), cleanup_hook, raw.cast()) } == napi::OK
        {
            // SAFETY: `raw` is alive (owned by the external just made).
            unsafe { (*raw).hooked.set(true) };
        }
        Ok(ext)
    })
}

pub unsafe extern "C" fn js_open(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerOpen()", |s| {
        let ([w, p, d], _) = s.args::<3>(info)?;
        let h = handle(s, w, "writerOpen")?;
        if s.type_of(p)? != VALUE_TYPE_STRING {
            return Err(type_error(s, "writerOpen(w, path): path must be a string"));
        }
        let Some(path) = s.string_value(p)? else {
            return Err(s.throw_type_error(
                c"ERR_INVALID_ARG_VALUE",
                "writerOpen: path is longer than PATH_MAX",
            ));
        };
        if path.contains('\0') {
            return Err(s.throw_type_error(
                c"ERR_INVALID_ARG_VALUE",
                "writerOpen: path contains a NUL byte",
            ));
        }
        let direct = opt_bool(s, d, "writerOpen: directIo")?;
        let o = h
            .writer
            .open(&path, direct)
            .map_err(|e| throw_write_error(s, &e))?;
        let out = s.object()?;
        s.set(out, c"id", s.number(o.id as f64)?)?;
        s.set(out, c"direct", s.boolean(o.direct)?)?;
        if let Some(f) = &o.fallback {
            s.set(out, c"fallback", s.string(f)?)?;
        }
        Ok(out)
    })
}

/// A block index from JS: an integer below the pool's capacity (the pool checks ownership).
fn block_index(s: Scope, v: Value, f: &str) -> Result<u32, Thrown> {
    if s.type_of(v)? == VALUE_TYPE_NUMBER {
        let n = s.f64_value(v)?;
        if (0.0..=f64::from(u32::MAX)).contains(&n) && n.fract() == 0.0 {
            return Ok(n as u32);
        }
    }
    Err(type_error(
        s,
        &format!("{f}: block must be an index from writerTake()"),
    ))
}

/// A byte offset or length from JS: a non-negative integer below 2^53.
fn byte_count(s: Scope, v: Value, f: &str, what: &str) -> Result<u64, Thrown> {
    if s.type_of(v)? == VALUE_TYPE_NUMBER {
        let n = s.f64_value(v)?;
        if (0.0..=MAX_ID).contains(&n) && n.fract() == 0.0 {
            return Ok(n as u64);
        }
    }
    Err(type_error(
        s,
        &format!("{f}: {what} must be a non-negative integer"),
    ))
}

pub unsafe extern "C" fn js_take(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerTake()", |s| {
        let ([w], _) = s.args::<1>(info)?;
        let h = handle(s, w, "writerTake")?;
        s.number(h.writer.take().map_or(-1.0, f64::from))
    })
}

/// The external ArrayBuffer's finalizer: drops its reference to the block's memory.
unsafe extern "C" fn release_view(_env: Env, _data: *mut c_void, hint: *mut c_void) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `hint` is the Box<Arc<Block>> leaked in js_block, finalized exactly once.
        drop(unsafe { Box::from_raw(hint as *mut Arc<Block>) });
    }));
}

pub unsafe extern "C" fn js_block(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerBlock()", |s| {
        let ([w, b], _) = s.args::<2>(info)?;
        let h = handle(s, w, "writerBlock")?;
        let id = block_index(s, b, "writerBlock")?;
        let Some(block) = h.writer.block(id) else {
            return Err(s.throw_error(
                c"ERR_OUT_OF_RANGE",
                &format!("writerBlock: block {id} was never taken"),
            ));
        };
        let (ptr, len) = (block.ptr(), block.len());
        let hint = Box::into_raw(Box::new(block));
        match s.external_arraybuffer(ptr.cast(), len, release_view, hint.cast()) {
            Ok(v) => Ok(v),
            Err(t) => {
                // SAFETY: no ArrayBuffer was made, so nothing else owns `hint`.
                drop(unsafe { Box::from_raw(hint) });
                Err(t)
            }
        }
    })
}

pub unsafe extern "C" fn js_write(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerWrite()", |s| {
        let ([w, i, b, off, len, commit], argc) = s.args::<6>(info)?;
        let h = handle(s, w, "writerWrite")?;
        let id = file_id(s, i, "writerWrite")?;
        let block = block_index(s, b, "writerWrite")?;
        let off = byte_count(s, off, "writerWrite", "offset")?;
        let len = byte_count(s, len, "writerWrite", "length")?;
        let commit = if argc >= 6 && s.type_of(commit)? != VALUE_TYPE_UNDEFINED {
            byte_count(s, commit, "writerWrite", "commitEnd")?
        } else {
            0
        };
        h.writer
            .write(id, block, off, len as usize, commit)
            .map_err(|e| throw_write_error(s, &e))?;
        s.undefined()
    })
}

pub unsafe extern "C" fn js_drop(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerDrop()", |s| {
        let ([w, b], _) = s.args::<2>(info)?;
        let h = handle(s, w, "writerDrop")?;
        let block = block_index(s, b, "writerDrop")?;
        h.writer
            .drop_block(block)
            .map_err(|e| throw_write_error(s, &e))?;
        s.undefined()
    })
}

pub unsafe extern "C" fn js_close(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerClose()", |s| {
        let ([w, i, sync, size], argc) = s.args::<4>(info)?;
        let h = handle(s, w, "writerClose")?;
        let id = file_id(s, i, "writerClose")?;
        let sync = opt_bool(s, sync, "writerClose: sync")?.unwrap_or(false);
        let size = if argc >= 4 && s.type_of(size)? != VALUE_TYPE_UNDEFINED {
            Some(byte_count(s, size, "writerClose", "size")?)
        } else {
            None
        };
        h.writer
            .close(id, sync, size)
            .map_err(|e| throw_write_error(s, &e))?;
        s.undefined()
    })
}

pub unsafe extern "C" fn js_poll(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerPoll()", |s| {
        let ([w], _) = s.args::<1>(info)?;
        let events = handle(s, w, "writerPoll")?.writer.take_events();
        if events.is_empty() {
            return s.null();
        }
        let arr = s.array(events.len())?;
        for (k, e) in events.iter().enumerate() {
            let o = s.object()?;
            s.set(o, c"code", s.string(e.code())?)?;
            s.set(o, c"message", s.string(&e.message())?)?;
            for (name, v) in error_props(s, e)? {
                s.set(o, name, v)?;
            }
            s.set_element(arr, k as u32, o)?;
        }
        Ok(arr)
    })
}

pub unsafe extern "C" fn js_pending(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerPending()", |s| {
        let ([w], _) = s.args::<1>(info)?;
        s.number(handle(s, w, "writerPending")?.writer.pending() as f64)
    })
}

pub unsafe extern "C" fn js_stats(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerStats()", |s| {
        let ([w], _) = s.args::<1>(info)?;
        let st = handle(s, w, "writerStats")?.writer.stats();
        let o = s.object()?;
        for (name, v) in [
            (c"openFiles", st.open_files),
            (c"closingFiles", st.closing_files),
            (c"inflight", st.inflight),
            (c"queued", st.queued),
            (c"blocksInUse", st.blocks_in_use),
            (c"blocksAllocated", st.blocks_allocated),
            (c"writes", st.writes),
            (c"bytesWritten", st.bytes_written),
            (c"submits", st.submits),
            (c"fsyncs", st.fsyncs),
            (c"preallocs", st.preallocs),
            (c"errors", st.errors),
            (c"fallbacks", st.fallbacks),
        ] {
            s.set(o, name, s.number(v as f64)?)?;
        }
        Ok(o)
    })
}

pub unsafe extern "C" fn js_shutdown(env: Env, info: CallbackInfo) -> Value {
    guarded(env, "writerShutdown()", |s| {
        let ([w, wait], _) = s.args::<2>(info)?;
        let h = handle(s, w, "writerShutdown")?;
        let wait = opt_bool(s, wait, "writerShutdown: wait")?.unwrap_or(false);
        h.writer.shutdown(wait);
        s.undefined()
    })
}
