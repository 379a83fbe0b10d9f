package adminsvc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// What a crash leaves in the upload folder is undone at start: unfinished
// bodies and unplaced files go, a replacement that never synced gives way to
// the file it replaced (also across formats), and a new table's file goes,
// its id returned to be unregistered.
func TestRecoverUploads(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		".upload-upload_tmp_1a-2b.tmp": "half a body",
		"upload_tmp_3c.csv":            "stored, never placed",
		"events.parquet":               "the replacement that never synced",
		"events.csv" + previousSuffix:  "id\n1\n",
		"sales.csv":                    "id\n2\n",
		"legacy.csv.previous":          "kept by an older server after a finished replace",
		"legacy.csv":                   "id\n3\n",
		"orders.csv":                   "a new table's upload, never answered",
		"orders.csv" + newUploadSuffix: "orders",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abandoned, err := RecoverUploads(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(abandoned, []string{"orders"}) {
		t.Fatalf("abandoned new tables %v, want [orders]", abandoned)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"events.csv", "legacy.csv", "legacy.csv.previous", "sales.csv"}
	if !slices.Equal(names, want) {
		t.Fatalf("upload folder after recovery: %v, want %v", names, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "events.csv")); string(b) != "id\n1\n" {
		t.Fatalf("events.csv holds %q, want the replaced file back", b)
	}
	if _, err := RecoverUploads(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("no upload folder yet: %v", err)
	}
}
