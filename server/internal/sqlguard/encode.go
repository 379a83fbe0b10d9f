package sqlguard

import (
	"encoding/json"
	"fmt"
)

// encodeJSON writes a decoded value back as JSON, members in their order.
func encodeJSON(buf []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...), nil
	case bool:
		if x {
			return append(buf, "true"...), nil
		}
		return append(buf, "false"...), nil
	case number:
		return append(buf, x...), nil
	case string:
		b, err := json.Marshal(x)
		return append(buf, b...), err
	case []any:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			var err error
			if buf, err = encodeJSON(buf, e); err != nil {
				return nil, err
			}
		}
		return append(buf, ']'), nil
	case object:
		buf = append(buf, '{')
		for i, m := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			k, _ := json.Marshal(m.key)
			buf = append(append(buf, k...), ':')
			var err error
			if buf, err = encodeJSON(buf, m.value); err != nil {
				return nil, err
			}
		}
		return append(buf, '}'), nil
	}
	return nil, fmt.Errorf("sqlguard: cannot encode %T", v)
}

// set replaces the value of an existing member (the object is shared with the
// tree, so the change is seen by whoever holds it).
func (o object) set(key string, v any) bool {
	for i := range o {
		if o[i].key == key {
			o[i].value = v
			return true
		}
	}
	return false
}
