package bqfake

import (
	"fmt"
	"strings"
)

// translate turns BigQuery SQL into DuckDB SQL that means the same over
// the fake's tables, changing only what DuckDB would read differently:
//
//   - paths: `p.ds.t`, `ds`.`t`, p.ds.t → "ds"."t" (the fake's project is
//     the default; another project's tables are not found); the metadata
//     views ds.INFORMATION_SCHEMA.X and region-x.INFORMATION_SCHEMA.X →
//     the schema "ds.INFORMATION_SCHEMA" the fake fills (meta.go);
//   - string literals: '…', "…", ”'…”', r'…' with backslash escapes →
//     DuckDB '…' (in DuckDB "…" is an identifier);
//   - # comments → --, @name parameters → $name.
func (s *Server) translate(q string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '-' && strings.HasPrefix(q[i:], "--"), c == '#':
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				end = len(q) - i
			}
			b.WriteString("--" + strings.TrimLeft(q[i:i+end], "-#"))
			i += end
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return "", fmt.Errorf("unclosed comment at [%d]", i)
			}
			b.WriteString(q[i : i+end+4])
			i += end + 4
		case c == '\'' || c == '"' || ((c == 'r' || c == 'R' || c == 'b' || c == 'B') && i+1 < len(q) && (q[i+1] == '\'' || q[i+1] == '"') && !identByte(prev(q, i))):
			lit, n, err := stringLiteral(q[i:])
			if err != nil {
				return "", fmt.Errorf("%w at [%d]", err, i)
			}
			b.WriteString("'" + strings.ReplaceAll(lit, "'", "''") + "'")
			i += n
		case c == '@' && i+1 < len(q) && identStart(q[i+1]):
			j := i + 1
			for j < len(q) && identByte(q[j]) {
				j++
			}
			b.WriteString("$" + q[i+1:j])
			i = j
		case c == '`' || identStart(c):
			parts, n, err := path(q[i:])
			if err != nil {
				return "", fmt.Errorf("%w at [%d]", err, i)
			}
			b.WriteString(s.mapPath(parts, c == '`' || len(parts) > 1))
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), nil
}

// mapPath renders a dotted name in DuckDB terms.
func (s *Server) mapPath(parts []string, isPath bool) string {
	if !isPath {
		return parts[0] // a plain word: keyword, column or function name
	}
	if len(parts) >= 3 && parts[0] == s.Project {
		parts = parts[1:]
	}
	for i, p := range parts {
		if strings.EqualFold(p, "INFORMATION_SCHEMA") && i > 0 && i < len(parts)-1 {
			view := strings.ToUpper(parts[i+1])
			return quoteIdent(parts[i-1]+".INFORMATION_SCHEMA") + "." + quoteIdent(view)
		}
	}
	quoted := make([]string, len(parts))
	for i, p := range parts {
		quoted[i] = quoteIdent(p)
	}
	return strings.Join(quoted, ".")
}

// path reads a dotted name made of bare words and `quoted` segments (a
// quoted segment may itself hold dots: `p.ds.t`). It returns the parts and
// the bytes read.
func path(q string) ([]string, int, error) {
	var parts []string
	i := 0
	for {
		switch {
		case i < len(q) && q[i] == '`':
			end := strings.IndexByte(q[i+1:], '`')
			if end < 0 {
				return nil, 0, fmt.Errorf("unclosed identifier quote")
			}
			parts = append(parts, strings.Split(q[i+1:i+1+end], ".")...)
			i += end + 2
		case i < len(q) && identStart(q[i]):
			j := i
			// BigQuery project ids may hold dashes inside a path (my-proj.ds.t).
			for j < len(q) && (identByte(q[j]) || (q[j] == '-' && len(parts) == 0 && j+1 < len(q) && identByte(q[j+1]) && strings.Contains(q[j:], "."))) {
				j++
			}
			parts = append(parts, q[i:j])
			i = j
		default:
			return nil, 0, fmt.Errorf("identifier expected")
		}
		if i+1 < len(q) && q[i] == '.' && (q[i+1] == '`' || identStart(q[i+1])) {
			i++
			continue
		}
		if dash := strings.IndexByte(parts[0], '-'); dash >= 0 && q[0] != '`' && len(parts) < 3 {
			// not project.dataset.table after all but an expression (a-b.c)
			return []string{parts[0][:dash]}, dash, nil
		}
		return parts, i, nil
	}
}

// stringLiteral reads a BigQuery string literal at the start of q and
// returns its value and length.
func stringLiteral(q string) (string, int, error) {
	i, raw := 0, false
	for i < len(q) && strings.ContainsRune("rRbB", rune(q[i])) {
		raw = raw || q[i] == 'r' || q[i] == 'R'
		i++
	}
	quote := q[i : i+1]
	if strings.HasPrefix(q[i:], strings.Repeat(quote, 3)) {
		quote = strings.Repeat(quote, 3)
	}
	i += len(quote)
	var b strings.Builder
	for i < len(q) {
		if strings.HasPrefix(q[i:], quote) {
			return b.String(), i + len(quote), nil
		}
		c := q[i]
		if c == '\\' && i+1 < len(q) {
			if raw {
				b.WriteString(q[i : i+2])
			} else {
				b.WriteString(unescape(q[i+1]))
			}
			i += 2
			continue
		}
		b.WriteByte(c)
		i++
	}
	return "", 0, fmt.Errorf("unclosed string literal")
}

func unescape(c byte) string {
	switch c {
	case 'n':
		return "\n"
	case 't':
		return "\t"
	case 'r':
		return "\r"
	case '0':
		return "\x00"
	}
	return string(c) // \\ \' \" \` and anything else: the character itself
}

func prev(q string, i int) byte {
	if i == 0 {
		return ' '
	}
	return q[i-1]
}

func identStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func identByte(c byte) bool { return identStart(c) || c >= '0' && c <= '9' }
