package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// printer writes human output (aligned tables) or, with --json, machine output.
type printer struct {
	out  io.Writer
	json bool
}

var jsonOpts = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// message prints one API message as JSON (--json) or via human.
func (p printer) message(m proto.Message, human func()) error {
	if p.json {
		raw, err := jsonOpts.Marshal(m)
		if err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		return p.value(v)
	}
	human()
	return nil
}

// value prints any JSON-able value indented.
func (p printer) value(v any) error {
	enc := json.NewEncoder(p.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// list prints messages as a JSON array (--json) or a table.
func list[T proto.Message](p printer, items []T, headers []string, row func(T) []string) error {
	if p.json {
		out := make([]any, 0, len(items))
		for _, it := range items {
			raw, err := jsonOpts.Marshal(it)
			if err != nil {
				return err
			}
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return p.value(out)
	}
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		rows = append(rows, row(it))
	}
	p.table(headers, rows)
	return nil
}

func (p printer) table(headers []string, rows [][]string) {
	w := tabwriter.NewWriter(p.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, strings.Join(headers, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	_ = w.Flush()
}

func when(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return ts.AsTime().Local().Format(time.DateTime)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
