package jira

import (
	"encoding/json"
	"strings"
)

// adfNode is a node of an Atlassian Document Format tree.
type adfNode struct {
	Type    string          `json:"type"`
	Text    *string         `json:"text"`
	Attrs   json.RawMessage `json:"attrs"`
	Marks   []adfMark       `json:"marks"`
	Content json.RawMessage `json:"content"`
}

type adfMark struct {
	Type  string `json:"type"`
	Attrs struct {
		Href string `json:"href"`
	} `json:"attrs"`
}

// ADFText flattens an ADF value to text as the Python system did
// (reference §7): per node, its card URL, its text (a link as
// "label (href)"), then its children, joined by single spaces with empty
// fragments dropped and only the edges trimmed; null is "", a string is
// itself, a list joins its elements. Credential values in emitted URLs
// are replaced with REDACTED.
func ADFText(raw json.RawMessage) string {
	var v any
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return adfValue(raw, v)
}

func adfValue(raw json.RawMessage, v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []any:
		var items []json.RawMessage
		_ = json.Unmarshal(raw, &items)
		parts := make([]string, 0, len(items))
		for i, it := range items {
			parts = append(parts, adfValue(it, x[i]))
		}
		return joinFragments(parts)
	case map[string]any:
		var n adfNode
		if json.Unmarshal(raw, &n) != nil {
			return ""
		}
		return n.render()
	}
	return ""
}

func (n adfNode) render() string {
	var parts []string
	if u := n.cardURL(); u != "" {
		parts = append(parts, redactURL(u))
	}
	if n.Text != nil {
		parts = append(parts, n.linkText(*n.Text))
	}
	if len(n.Content) > 0 {
		var children []json.RawMessage
		if json.Unmarshal(n.Content, &children) == nil {
			for _, c := range children {
				var v any
				_ = json.Unmarshal(c, &v)
				parts = append(parts, adfValue(c, v))
			}
		}
	}
	return joinFragments(parts)
}

// cardURL is the URL of an inlineCard/blockCard/embedCard: attrs.url,
// then attrs.data.url, then attrs.data["@id"].
func (n adfNode) cardURL() string {
	switch n.Type {
	case "inlineCard", "blockCard", "embedCard":
	default:
		return ""
	}
	var a struct {
		URL  string `json:"url"`
		Data struct {
			URL string `json:"url"`
			ID  string `json:"@id"`
		} `json:"data"`
	}
	_ = json.Unmarshal(n.Attrs, &a)
	for _, u := range []string{a.URL, a.Data.URL, a.Data.ID} {
		if u != "" {
			return u
		}
	}
	return ""
}

// linkText renders a text node: "label (href)" under a link mark, only
// the href when the label is the href (trailing slash aside), only the
// label when it is the href without its http(s):// scheme.
func (n adfNode) linkText(label string) string {
	href := ""
	for _, m := range n.Marks {
		if m.Type == "link" && m.Attrs.Href != "" {
			href = m.Attrs.Href
			break
		}
	}
	if href == "" {
		return label
	}
	l := strings.TrimSpace(label)
	switch {
	case strings.TrimSuffix(l, "/") == strings.TrimSuffix(href, "/"):
		return redactURL(href)
	case "https://"+l == href || "http://"+l == href ||
		strings.TrimSuffix("https://"+l, "/") == strings.TrimSuffix(href, "/") ||
		strings.TrimSuffix("http://"+l, "/") == strings.TrimSuffix(href, "/"):
		return redactURL(label)
	}
	return label + " (" + redactURL(href) + ")"
}

// joinFragments joins the non-empty trimmed fragments with single spaces.
func joinFragments(parts []string) string {
	kept := parts[:0:0]
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, " ")
}

// Parameter names whose values are credentials: substrings after removing
// "_-." and lowercasing, and exact names.
var (
	secretSubstrings = []string{"token", "jwt", "secret", "password", "passwd", "signature", "credential", "apikey"}
	secretExact      = map[string]bool{"tok": true, "sig": true, "key": true, "pin": true, "auth": true, "code": true, "sdata": true}
)

func secretName(name string) bool {
	n := strings.ToLower(strings.NewReplacer("_", "", "-", "", ".", "").Replace(name))
	if secretExact[n] {
		return true
	}
	for _, s := range secretSubstrings {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

// redactURL replaces credential values in a URL's query and fragment with
// REDACTED, leaving everything else byte for byte.
func redactURL(u string) string {
	base, frag, hasFrag := strings.Cut(u, "#")
	path, query, hasQuery := strings.Cut(base, "?")
	out := path
	if hasQuery {
		out += "?" + redactParams(query)
	}
	if hasFrag {
		out += "#" + redactParams(frag)
	}
	return out
}

func redactParams(s string) string {
	params := strings.Split(s, "&")
	for i, p := range params {
		name, _, ok := strings.Cut(p, "=")
		if ok && secretName(name) {
			params[i] = name + "=REDACTED"
		}
	}
	return strings.Join(params, "&")
}
