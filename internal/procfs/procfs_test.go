package procfs

import (
	"os"
	"testing"
	"time"
)

func TestOwnProcess(t *testing.T) {
	pid := os.Getpid()
	rss, err := RSS(pid)
	if err != nil || rss < 1<<20 {
		t.Fatalf("RSS = %d, %v; want at least 1 MiB", rss, err)
	}
	if _, err := CPUTicks(pid); err != nil {
		t.Fatal(err)
	}
	if _, err := StealTicks(); err != nil {
		t.Fatal(err)
	}
	w := WatchRSS(pid, time.Millisecond)
	held := make([]byte, 64<<20)
	for i := range held {
		held[i] = 1
	}
	time.Sleep(5 * time.Millisecond)
	if peak := w.Stop(); peak < rss+32<<20 {
		t.Errorf("peak %d after touching 64 MiB, base %d", peak, rss)
	}
	_ = w.Stop() // twice is harmless
	if _, err := RSS(1 << 30); err == nil {
		t.Error("RSS of a process that does not exist")
	}
}
