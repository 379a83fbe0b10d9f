package connectors

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/agnesdata/agnes/connectors/extract"
)

var tableIDRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,63}$`)

// TableID turns a table's display name into its registry id, the registry's
// slug rule: trim, lower-case, every space, '-' and '.' becomes '_'; the
// result must match ^[a-z_][a-z0-9_]{0,63}$ and must not be a name the
// extract contract reserves (_meta, _parts, _remote_attach, _agnes*). The
// id is also the table's name in its extract and its master view. Errors
// are *InputError.
func TableID(name string) (string, error) {
	id := strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || unicode.IsSpace(r) {
			return '_'
		}
		return r
	}, strings.ToLower(strings.TrimSpace(name)))
	switch {
	case id == "":
		return "", &InputError{Msg: "table name is empty"}
	case !tableIDRE.MatchString(id):
		return "", &InputError{Msg: fmt.Sprintf("table name %q gives the id %q: an id must start with a letter or _, "+
			"hold only a-z, 0-9 and _, and have at most 64 characters", name, id)}
	case extract.Reserved(id):
		return "", &InputError{Msg: fmt.Sprintf("table name %q gives the id %q, which is reserved", name, id)}
	}
	return id, nil
}
