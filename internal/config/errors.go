package config

import (
	"fmt"
	"strings"
)

// SettingError is one problem with one setting. Its message is a single line
// that names the setting, the value it had and what would work instead:
//
//	KUBEVIRT_NUM_NODES="abc": not a number; set a whole number >= 1, e.g. 3
type SettingError struct {
	Name      string // the environment variable, e.g. KUBEVIRT_NUM_NODES
	Value     string // the value as given (or the default, see Defaulted)
	Defaulted bool   // Value is the default, the variable was not set
	Problem   string // what is wrong with it
	Hint      string // what would work
}

func (e *SettingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s=%q", e.Name, e.Value)
	if e.Defaulted {
		b.WriteString(" (the default)")
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	if e.Hint != "" {
		b.WriteString("; ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

// Errors holds every problem found by Load, in a fixed order. Its message has
// one line per problem.
type Errors []*SettingError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a single *SettingError in the list.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
