package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
)

// maxParamBytes bounds one query parameter value: identifiers are at most
// 1,024 bytes (what the stores index), and nothing a search takes is longer.
const maxParamBytes = 1024

// checkParams refuses a query string with a parameter the route does not
// know (a misspelt filter must not silently widen a search) or a value no
// store could hold: too long, with NUL, or not UTF-8. The error names the
// parameter.
func checkParams(q url.Values, known ...string) error {
	names := make([]string, 0, len(q))
	for name := range q {
		names = append(names, name)
	}
	sort.Strings(names) // the same error for the same request
	for _, name := range names {
		if !slices.Contains(known, name) && len(known) == 0 {
			return fmt.Errorf("%s: unknown parameter (the route takes none)", clip(name, 64))
		}
		if !slices.Contains(known, name) {
			return fmt.Errorf("%s: unknown parameter (known: %s)", clip(name, 64), strings.Join(known, ", "))
		}
		for _, v := range q[name] {
			if len(v) > maxParamBytes {
				return fmt.Errorf("%s: longer than %d bytes", name, maxParamBytes)
			}
			if err := checkText(name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// paramsOK answers 400 and returns false when the query string holds a
// parameter the route does not know, or a value no store could hold.
func paramsOK(w http.ResponseWriter, r *http.Request, known ...string) bool {
	if err := checkParams(r.URL.Query(), known...); err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return false
	}
	return true
}

// checkSingle refuses a parameter that may appear once given more often:
// reading only its first value would silently drop the others.
func checkSingle(q url.Values, names ...string) error {
	for _, name := range names {
		if _, err := singleParam(q, name); err != nil {
			return err
		}
	}
	return nil
}

// singleParam returns the one value of a parameter that may appear once.
func singleParam(q url.Values, name string) (string, error) {
	switch vs := q[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	default:
		return "", fmt.Errorf("%s: given %d times, at most once", name, len(vs))
	}
}

// checkText refuses what no store can keep or match: NUL characters
// (PostgreSQL text cannot hold them, SQLite would) and invalid UTF-8 (from a
// query string or path). Both stores then answer the same, with this message
// instead of the database's.
func checkText(name, v string) error {
	switch {
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s: must not contain NUL characters", name)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s: must be valid UTF-8", name)
	}
	return nil
}
