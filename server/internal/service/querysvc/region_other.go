//go:build !unix

package querysvc

// newRegion allocates regionSize bytes on the heap (no mmap here).
func newRegion() []byte { return make([]byte, 0, regionSize) }

// freeRegion leaves the region to the garbage collector.
func freeRegion([]byte) {}
