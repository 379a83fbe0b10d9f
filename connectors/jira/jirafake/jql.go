package jirafake

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// query is the JQL subset the connector sends: clauses joined by AND over
// project, key, created, updated and statusCategory, and an ORDER BY.
type query struct {
	clauses []clause
	order   string
	desc    bool
}

type clause struct {
	field, op string
	values    []string
	at        time.Time // for created/updated
}

var (
	clauseRE = regexp.MustCompile(`(?i)^\s*(project|key|issuekey|created|updated|statusCategory)\s*(>=|<=|!=|=|>|<|not in|in)\s*(.+?)\s*$`)
	orderRE  = regexp.MustCompile(`(?i)\s*order\s+by\s+(created|updated|key)(\s+(asc|desc))?\s*$`)
	andRE    = regexp.MustCompile(`(?i)\s+and\s+`)
)

// parseJQL parses jql; dates are in the API user's zone loc, relative
// dates ("-5m", "-30d") count back from now. It answers Jira's errors:
// unbounded queries and unknown clauses are rejected.
func parseJQL(jql string, now time.Time, loc *time.Location) (query, error) {
	var q query
	rest := jql
	if m := orderRE.FindStringSubmatchIndex(rest); m != nil {
		sub := orderRE.FindStringSubmatch(rest)
		q.order, q.desc = strings.ToLower(sub[1]), strings.EqualFold(sub[3], "desc")
		rest = rest[:m[0]]
	}
	if strings.TrimSpace(rest) == "" {
		return q, fmt.Errorf("Unbounded JQL queries are not allowed here. Please add a search restriction to your query.")
	}
	for _, part := range andRE.Split(rest, -1) {
		m := clauseRE.FindStringSubmatch(part)
		if m == nil {
			return q, fmt.Errorf("Error in the JQL Query: the clause %q is not understood.", strings.TrimSpace(part))
		}
		c := clause{field: strings.ToLower(m[1]), op: strings.ToLower(m[2])}
		if c.field == "issuekey" {
			c.field = "key"
		}
		if c.op == "in" || c.op == "not in" {
			list := strings.TrimSpace(m[3])
			if !strings.HasPrefix(list, "(") || !strings.HasSuffix(list, ")") {
				return q, fmt.Errorf("Error in the JQL Query: expected a list after %s.", c.op)
			}
			for _, v := range strings.Split(list[1:len(list)-1], ",") {
				c.values = append(c.values, unquote(v))
			}
		} else {
			c.values = []string{unquote(m[3])}
		}
		if c.field == "created" || c.field == "updated" {
			at, err := jqlTime(c.values[0], now, loc)
			if err != nil {
				return q, err
			}
			c.at = at
		}
		q.clauses = append(q.clauses, c)
	}
	return q, nil
}

func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

var relRE = regexp.MustCompile(`^-(\d+)([mhdw])$`)

func jqlTime(v string, now time.Time, loc *time.Location) (time.Time, error) {
	if m := relRE.FindStringSubmatch(v); m != nil {
		n, _ := strconv.Atoi(m[1])
		unit := map[string]time.Duration{"m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
		return now.Add(-time.Duration(n) * unit), nil
	}
	for _, layout := range []string{"2006-01-02 15:04", "2006/01/02 15:04", "2006-01-02", "2006/01/02"} {
		if t, err := time.ParseInLocation(layout, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("Date value '%s' for field 'created' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.", v)
}

func (q query) match(is *issue) bool {
	for _, c := range q.clauses {
		if !c.match(is) {
			return false
		}
	}
	return true
}

func (c clause) match(is *issue) bool {
	var got string
	switch c.field {
	case "project":
		got = is.project
	case "key":
		got = is.key
	case "statusCategory":
		cat := is.fields["status"].(map[string]any)["statusCategory"].(map[string]any)
		got = cat["key"].(string)
	case "created", "updated":
		t, _ := time.Parse(TimeLayout, is.fields[c.field].(string))
		t = t.Truncate(time.Minute) // JQL compares at minute precision
		switch c.op {
		case ">=":
			return !t.Before(c.at)
		case "<=":
			return !t.After(c.at)
		case ">":
			return t.After(c.at)
		case "<":
			return t.Before(c.at)
		case "=":
			return t.Equal(c.at)
		case "!=":
			return !t.Equal(c.at)
		}
		return false
	}
	in := slices.ContainsFunc(c.values, func(v string) bool {
		return strings.EqualFold(v, got) || c.field == "statusCategory" && strings.EqualFold(v, "Done") && got == "done"
	})
	switch c.op {
	case "=", "in":
		return in
	case "!=", "not in":
		return !in
	}
	return false
}

func (q query) sort(list []*issue) {
	if q.order == "" {
		return // creation order
	}
	slices.SortStableFunc(list, func(a, b *issue) int {
		var r int
		switch q.order {
		case "key":
			r = strings.Compare(a.project, b.project)
			if r == 0 {
				an, _ := strconv.Atoi(strings.TrimPrefix(a.key, a.project+"-"))
				bn, _ := strconv.Atoi(strings.TrimPrefix(b.key, b.project+"-"))
				r = an - bn
			}
		default:
			at, _ := time.Parse(TimeLayout, a.fields[q.order].(string))
			bt, _ := time.Parse(TimeLayout, b.fields[q.order].(string))
			r = at.Compare(bt)
		}
		if q.desc {
			r = -r
		}
		return r
	})
}
