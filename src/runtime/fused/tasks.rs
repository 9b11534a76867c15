//! How the kernels' work runs: split into tasks on ONNX Runtime's intra-op threads, each
//! writing its own part of an output through one [`Shared`] pointer, and each at the widest
//! vector width this CPU has ([`crate::runtime::widest`]), with loops written once in plain
//! Rust whose arithmetic does not depend on the width (so neither do the bits).

/// An output's first element, shared by the intra-op tasks, each writing its own elements.
pub struct Shared<T>(*mut T);

impl<T> Shared<T> {
    /// Shares the output whose first element is `first`.
    pub fn new(first: *mut T) -> Self {
        Self(first)
    }

    /// The element `at` elements past the first.
    ///
    /// # Safety
    /// `at` lies within the output.
    pub unsafe fn at(&self, at: usize) -> *mut T {
        self.0.add(at)
    }

    /// Elements `first..first + count`.
    ///
    /// # Safety
    /// They lie within the output, which outlives the slice, and no other live slice or
    /// pointer writes them.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, first: usize, count: usize) -> &mut [T] {
        std::slice::from_raw_parts_mut(self.0.add(first), count)
    }
}

// SAFETY: the tasks write disjoint elements through it (each kernel's `compute` splits them).
unsafe impl<T> Sync for Shared<T> {}
unsafe impl<T> Send for Shared<T> {}
