package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agnesdata/agnes/connectors"
	"github.com/agnesdata/agnes/connectors/demo"
	"github.com/agnesdata/agnes/server/internal/store"
)

// seedDemo registers the demo tables and starts their sync on a server's first
// start, so a newcomer sees real data at once. A marker file makes it happen once:
// an admin who deletes the demo tables does not get them back on restart.
func (a *App) seedDemo(ctx context.Context) error {
	marker := filepath.Join(a.cfg.DataDir, "state", ".demo_seeded")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	tables, err := a.Store.ListTables(ctx)
	if err != nil {
		return err
	}
	if len(tables) == 0 {
		found, err := demo.New().Discover(ctx)
		if err != nil {
			return fmt.Errorf("demo tables: %w", err)
		}
		var ids []string
		for _, d := range found {
			t := &store.RegisteredTable{ID: d.ID, Name: d.Name, SourceType: demo.Type, SourceTable: d.SourceTable,
				Description: d.Description, PrimaryKey: d.PrimaryKey, SyncStrategy: connectors.StrategyFullRefresh,
				QueryMode: "local", RegisteredBy: "system (demo data)", RegisteredAt: time.Now().UTC()}
			if err := a.Store.CreateTable(ctx, t); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
				return err
			}
			ids = append(ids, d.ID)
		}
		if _, err := a.Syncer.Trigger(ctx, ids, "system (demo data)"); err != nil {
			return err
		}
		a.log.Info("registered the demo tables and started their sync", "tables", ids)
	}
	return os.WriteFile(marker, []byte("demo tables were offered on first start\n"), 0o600)
}
