//! The fixed pool of 4 KiB-aligned staging chunks the writer copies appends into.
//! Chunks are allocated on first use, up to the pool's capacity, and reused; the pool frees
//! them when the writer is gone (never while a write from one is in flight).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

/// O_DIRECT needs buffer address, length and file offset aligned to the logical block
/// size; 4096 covers every disk we target (512e and 4Kn).
pub const ALIGN: usize = 4096;

/// A zeroed heap block aligned to ALIGN, freed on drop.
#[derive(Debug)]
pub struct Block {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: a Block is plain owned memory; who may touch its bytes is decided by the writer
// (one owner at a time: the JS thread while filling, the kernel while a write is in flight).
unsafe impl Send for Block {}

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
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this very layout and is freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[derive(Debug)]
pub struct Pool {
    chunk: usize,
    max: usize,
    blocks: Vec<Block>,
    free: Vec<u32>,
}

impl Pool {
    pub fn new(chunk: usize, max: usize) -> Pool {
        Pool {
            chunk,
            max,
            blocks: Vec::new(),
            free: Vec::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.max
    }

    /// Chunks that can be taken now or allocated later.
    pub fn available(&self) -> usize {
        self.free.len() + (self.max - self.blocks.len())
    }

    pub fn in_use(&self) -> usize {
        self.blocks.len() - self.free.len()
    }

    /// Makes sure `n` chunks sit allocated in the free list; false if memory ran out.
    pub fn reserve(&mut self, n: usize) -> bool {
        while self.free.len() < n && self.blocks.len() < self.max {
            let Some(b) = Block::new(self.chunk) else {
                return false;
            };
            self.free.push(self.blocks.len() as u32);
            self.blocks.push(b);
        }
        self.free.len() >= n
    }

    /// A reserved chunk; None when none was reserved.
    pub fn take(&mut self) -> Option<u32> {
        self.free.pop()
    }

    pub fn give(&mut self, id: u32) {
        debug_assert!(!self.free.contains(&id), "chunk {id} given back twice");
        self.free.push(id);
    }

    pub fn ptr(&self, id: u32) -> *mut u8 {
        self.blocks[id as usize].ptr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_aligned_reused_and_bounded() {
        let mut p = Pool::new(2 * ALIGN, 3);
        assert_eq!(p.available(), 3);
        assert!(p.reserve(2));
        let a = p.take().expect("a");
        let b = p.take().expect("b");
        assert_ne!(a, b);
        assert_eq!(p.ptr(a) as usize % ALIGN, 0);
        assert_eq!(p.ptr(b) as usize % ALIGN, 0);
        assert!(p.take().is_none(), "only reserved chunks are handed out");
        assert!(p.reserve(1));
        let c = p.take().expect("c");
        assert_eq!(p.available(), 0);
        assert!(!p.reserve(1));
        p.give(b);
        assert_eq!((p.available(), p.in_use()), (1, 2));
        assert!(p.reserve(1));
        assert_eq!(p.take(), Some(b));
        p.give(a);
        p.give(b);
        p.give(c);
        assert_eq!(p.in_use(), 0);
    }

    #[test]
    fn a_block_is_zeroed_and_aligned() {
        let b = Block::new(ALIGN).expect("block");
        assert_eq!(b.ptr() as usize % ALIGN, 0);
        // SAFETY: the block owns ALIGN initialised bytes.
        let s = unsafe { std::slice::from_raw_parts(b.ptr(), ALIGN) };
        assert!(s.iter().all(|&x| x == 0));
        assert!(Block::new(0).is_none());
    }
}
