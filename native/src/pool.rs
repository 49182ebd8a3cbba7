//! The pool of 4 KiB-aligned write blocks JS fills in place and the writer hands to the
//! kernel as they are. Blocks are allocated on first use, up to the pool's capacity, and
//! reused; each is owned by one side at a time: free, JS (taken, being filled), or the
//! writer (queued or in flight until its write completes).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;
use std::sync::Arc;

/// O_DIRECT needs buffer address, length and file offset aligned to the logical block
/// size; 4096 covers every disk we target (512e and 4Kn).
pub const ALIGN: usize = 4096;

/// A zeroed heap block aligned to ALIGN, freed on drop.
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a Block is plain owned memory; who may touch its bytes is decided by the pool's
// ownership states (one side at a time: JS while filling, the kernel while a write is in
// flight). Shared as Arc so that a JS view keeps the memory alive after the pool is gone.
unsafe impl Send for Block {}
// SAFETY: as above; the Block itself never reads or writes its bytes.
unsafe impl Sync for Block {}

impl Block {
    /// None when `len` is zero or the allocation fails.
    pub fn new(len: usize) -> Option<Block> {
        let layout = Layout::from_size_align(len, ALIGN).ok()?;
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size, checked above.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        Some(Block { ptr, layout })
    }

    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this very layout and is freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// Who owns a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Free,
    Js,
    Writer,
}

#[derive(Debug)]
pub struct Pool {
    size: usize,
    max: usize,
    blocks: Vec<Arc<Block>>,
    owner: Vec<Owner>,
    free: Vec<u32>,
}

impl Pool {
    pub fn new(size: usize, max: usize) -> Pool {
        Pool {
            size,
            max,
            blocks: Vec::new(),
            owner: Vec::new(),
            free: Vec::new(),
        }
    }

    pub fn allocated(&self) -> usize {
        self.blocks.len()
    }

    /// Blocks not free: with JS or the writer.
    pub fn in_use(&self) -> usize {
        self.blocks.len() - self.free.len()
    }

    /// A free block for JS (allocated now if none is free and the pool is not full); None
    /// when every block is out or memory ran out.
    pub fn take(&mut self) -> Option<u32> {
        let id = match self.free.pop() {
            Some(id) => id,
            None if self.blocks.len() < self.max => {
                let b = Block::new(self.size)?;
                self.blocks.push(Arc::new(b));
                self.owner.push(Owner::Free);
                (self.blocks.len() - 1) as u32
            }
            None => return None,
        };
        self.owner[id as usize] = Owner::Js;
        Some(id)
    }

    pub fn owner(&self, id: u32) -> Option<Owner> {
        self.owner.get(id as usize).copied()
    }

    /// JS hands a block over (to write it, or back unused when `to` is Free). False when JS
    /// does not hold it (a caller bug).
    pub fn hand_over(&mut self, id: u32, to: Owner) -> bool {
        if self.owner(id) != Some(Owner::Js) {
            return false;
        }
        self.owner[id as usize] = to;
        if to == Owner::Free {
            self.free.push(id);
        }
        true
    }

    /// The writer is done with a block (written, or dropped after an error).
    pub fn release(&mut self, id: u32) {
        debug_assert_eq!(
            self.owner(id),
            Some(Owner::Writer),
            "block {id} released twice"
        );
        if self.owner(id) == Some(Owner::Writer) {
            self.owner[id as usize] = Owner::Free;
            self.free.push(id);
        }
    }

    pub fn ptr(&self, id: u32) -> *mut u8 {
        self.blocks[id as usize].ptr()
    }

    /// The block's memory, for a JS view that may outlive the pool.
    pub fn shared(&self, id: u32) -> Option<Arc<Block>> {
        self.blocks.get(id as usize).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_reused_bounded_and_owned_by_one_side() {
        let mut p = Pool::new(2 * ALIGN, 3);
        assert_eq!(p.allocated(), 0);
        let a = p.take().expect("a");
        let b = p.take().expect("b");
        let c = p.take().expect("c");
        assert_eq!(p.allocated(), 3);
        assert!(p.take().is_none(), "the pool is bounded");
        for id in [a, b, c] {
            assert_eq!(p.ptr(id) as usize % ALIGN, 0);
            assert_eq!(p.owner(id), Some(Owner::Js));
        }
        assert!(p.hand_over(b, Owner::Writer));
        assert!(!p.hand_over(b, Owner::Writer), "handed over twice");
        assert!(p.take().is_none());
        p.release(b);
        assert_eq!(p.take(), Some(b), "a released block is reused");
        assert!(p.hand_over(a, Owner::Free));
        assert_eq!(p.in_use(), 2);
        assert!(!p.hand_over(99, Owner::Free), "unknown block");
    }

    #[test]
    fn a_shared_block_outlives_the_pool() {
        let mut p = Pool::new(ALIGN, 1);
        let id = p.take().expect("block");
        let keep = p.shared(id).expect("shared");
        drop(p);
        // SAFETY: `keep` owns ALIGN initialised bytes.
        let s = unsafe { std::slice::from_raw_parts(keep.ptr(), keep.len()) };
        assert!(s.iter().all(|&x| x == 0));
    }
}
