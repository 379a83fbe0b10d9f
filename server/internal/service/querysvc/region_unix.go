//go:build unix

package querysvc

import "syscall"

// newRegion reserves regionSize bytes of address space; the kernel backs a
// page with memory only once it is written. It returns the region with
// length 0.
func newRegion() []byte {
	r, err := syscall.Mmap(-1, 0, regionSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, 0, regionSize)
	}
	return r[:0]
}

// freeRegion gives a region back to the kernel.
func freeRegion(r []byte) {
	_ = syscall.Munmap(r[:cap(r)]) // fails only for a heap region (Mmap failed), which the GC frees
}
