//! A vector kept in fixed-size chunks, for the tables that grow to a
//! million clients or a hundred thousand actors: growing one adds a chunk
//! instead of copying a doubled array, which held both copies at once (a
//! tenth more peak memory at a million clients), stalled the pipeline
//! while it copied, and made the kernel zero pages for every doubling.

use std::ops::{Index, IndexMut};

/// Bytes per chunk.
const CHUNK_BYTES: usize = 1 << 16;

/// The first chunk grows as a vector does, so a table of a few items
/// stays small.
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self { chunks: Vec::new(), len: 0 }
    }
}

impl<T> Chunked<T> {
    /// Items per chunk: a chunk is an allocator size class of its own.
    pub const PER: usize =
        if size_of::<T>() == 0 || size_of::<T>() > CHUNK_BYTES { 1 } else { CHUNK_BYTES / size_of::<T>() };

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, v: T) {
        if self.len == self.chunks.len() * Self::PER {
            self.chunks.push(if self.chunks.is_empty() { Vec::new() } else { Vec::with_capacity(Self::PER) });
        }
        self.chunks[self.len / Self::PER].push(v);
        self.len += 1;
    }

    /// Takes item `i` out, the last item moving into its place.
    pub fn swap_remove(&mut self, i: usize) -> T {
        assert!(i < self.len, "swap_remove at {i} of {}", self.len);
        let last = self.chunks[(self.len - 1) / Self::PER].pop().expect("non-empty");
        self.len -= 1;
        if i < self.len { std::mem::replace(&mut self[i], last) } else { last }
    }

    /// Frees chunks left empty behind the last item.
    pub fn trim(&mut self) {
        self.chunks.truncate(self.len.div_ceil(Self::PER));
        if let Some(c) = self.chunks.first_mut()
            && self.len < Self::PER / 4
        {
            c.shrink_to(2 * self.len);
        }
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.chunks.get(i / Self::PER)?.get(i % Self::PER)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }

    /// Where item `i` is, for a prefetch (null past the end).
    pub fn ptr(&self, i: usize) -> *const T {
        self.get(i).map_or(std::ptr::null(), |t| t as *const T)
    }

    #[cfg(test)]
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }
}

impl<T> Index<usize> for Chunked<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        &self.chunks[i / Self::PER][i % Self::PER]
    }
}

impl<T> IndexMut<usize> for Chunked<T> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.chunks[i / Self::PER][i % Self::PER]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_chunks_and_removes_by_swapping_in_the_last() {
        let mut c = Chunked::<[u64; 1024]>::default();
        assert_eq!(Chunked::<[u64; 1024]>::PER, 8);
        for i in 0..20u64 {
            c.push([i; 1024]);
        }
        assert_eq!((c.len(), c.chunks()), (20, 3));
        assert_eq!(c.swap_remove(3)[0], 3);
        assert_eq!((c[3][0], c.len()), (19, 19));
        assert_eq!(c.swap_remove(18)[0], 18, "the last one itself");
        assert_eq!(
            c.iter().map(|x| x[0]).collect::<Vec<_>>(),
            [0, 1, 2, 19, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]
        );
        assert!(c.get(18).is_none() && c.ptr(18).is_null() && !c.ptr(17).is_null());
        while c.len() > 5 {
            c.swap_remove(0);
        }
        c.trim();
        assert_eq!(c.chunks(), 1);
    }
}
