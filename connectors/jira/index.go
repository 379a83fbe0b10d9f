package jira

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/agnesdata/agnes/connectors/extract"
)

// partIndex remembers which issues each partition file holds, by the file's
// identity (extract.SameFile: every write replaces a partition with a new
// file), so that finding where a batch's issues have rows reads only the
// partitions written since the last look, not the whole history. Any writer
// may have replaced a file (Apply, a full sync through the connector): a
// file that is not the one indexed is read again. Guarded by the Store's
// mutex. Its size grows with the issues: 46 MB for 100,000 issues with rows
// in all six tables (measured on an index built as indexPart builds it).
type partIndex struct {
	parts map[string]*indexedPart // partition path → what it holds
	// names holds each issue key once for all the partitions naming it (the
	// keys of issues since deleted stay until the server restarts).
	names map[string]string
}

type indexedPart struct {
	file os.FileInfo
	// issues maps the keys of the issues with rows in the partition to, in
	// the issues table, when their rows were synced and their id (nil in
	// the other tables).
	issues map[string]*partIssue
}

type partIssue struct {
	synced time.Time // max(_synced_at); zero if it does not parse
	id     string    // max(issue_id)
}

// locate says where the keys have rows now: per table, the months holding
// them, in order, and from the issues table when each was synced and its id.
func (st *Store) locate(ctx context.Context, keys []string) (located, error) {
	loc := located{synced: map[string]time.Time{}, ids: map[string]string{}}
	if st.index.parts == nil {
		st.index = partIndex{parts: map[string]*indexedPart{}, names: map[string]string{}}
	}
	seen := map[string]bool{}
	for t := range numTables {
		loc.months[t] = map[string][]string{}
		months, err := st.parts(t)
		if err != nil {
			return loc, err
		}
		for _, m := range months {
			path := st.partPath(t, m)
			seen[path] = true
			p, err := st.indexPart(ctx, t, path)
			if err != nil {
				return loc, fmt.Errorf("read %s: %w", Tables[t], err)
			}
			for _, k := range keys {
				is, ok := p.issues[k]
				if !ok {
					continue
				}
				loc.months[t][k] = append(loc.months[t][k], m)
				if is == nil {
					continue
				}
				if is.synced.After(loc.synced[k]) {
					loc.synced[k] = is.synced
				}
				if is.id != "" {
					loc.ids[k] = is.id
				}
			}
		}
	}
	for path := range st.index.parts {
		if !seen[path] {
			delete(st.index.parts, path)
		}
	}
	return loc, nil
}

// indexPart returns what a partition holds, reading it if it is not the
// file indexed (or was never indexed). The file is looked at before it is
// read: if it is replaced meanwhile, the next look reads it again.
func (st *Store) indexPart(ctx context.Context, t int, path string) (*indexedPart, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) { // removed since listed
			delete(st.index.parts, path)
			return &indexedPart{}, nil
		}
		return nil, err
	}
	if p := st.index.parts[path]; p != nil && extract.SameFile(p.file, fi) {
		return p, nil
	}
	q := "SELECT issue_key, NULL, NULL FROM read_parquet(" + quoteString(path) + ") GROUP BY ALL"
	if t == tIssues {
		q = "SELECT issue_key, max(_synced_at), max(issue_id) FROM read_parquet(" + quoteString(path) + ") GROUP BY ALL"
	}
	rows, err := st.db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	p := &indexedPart{file: fi, issues: map[string]*partIssue{}}
	for rows.Next() {
		var key sql.NullString
		var synced, id sql.NullString
		if err := rows.Scan(&key, &synced, &id); err != nil {
			_ = rows.Close()
			return nil, err
		}
		if !key.Valid {
			continue
		}
		name, ok := st.index.names[key.String]
		if !ok {
			name = key.String
			st.index.names[name] = name
		}
		var is *partIssue
		if t == tIssues {
			is = &partIssue{id: id.String}
			is.synced, _ = parseSyncedAt(synced.String)
		}
		p.issues[name] = is
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	st.index.parts[path] = p
	return p, nil
}
