package main

import (
	"errors"
	"flag"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/hangup-dev/hangup/internal/worker"
)

// flagNames names the settings of worker.Config as the operator writes
// them: "--max-batch (HANGUP_MAX_BATCH)".
type flagNames struct {
	fs *flag.FlagSet
	// byField maps a field's path in worker.Config ("MaxBatch",
	// "Topology.Replicas") to the flag that sets it.
	byField map[string]string
}

// newFlagNames finds, for every flag of fs that writes into cfg, the field
// it writes to: the flag package's values of basic types are pointers to
// the variable given to fs.IntVar and the like, so the flag definitions
// are the only table.
func newFlagNames(fs *flag.FlagSet, cfg *worker.Config) flagNames {
	byAddr := map[uintptr]string{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f, path := v.Field(i), prefix+v.Type().Field(i).Name
			if f.Kind() == reflect.Struct {
				walk(f, path+".")
				continue
			}
			byAddr[f.Addr().Pointer()] = path
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	n := flagNames{fs: fs, byField: map[string]string{}}
	fs.VisitAll(func(f *flag.Flag) {
		if v := reflect.ValueOf(f.Value); v.Kind() == reflect.Pointer {
			if path, ok := byAddr[v.Pointer()]; ok {
				n.byField[path] = f.Name
			}
		}
	})
	return n
}

// ref is how an error names a flag.
func ref(flagName string) string {
	return "--" + flagName + " (" + envName(flagName) + ")"
}

// flagErrorf is an error about one flag.
func flagErrorf(flagName, format string, args ...any) error {
	return fmt.Errorf("%s: %s", ref(flagName), fmt.Sprintf(format, args...))
}

// zeroPassesOn are the numeric flags whose zero the command has always
// handed to the worker, which then uses the default: --linger 0 lingers
// 50ms.
var zeroPassesOn = map[string]bool{"linger": true}

// explicitZeros refuses a number flag set to 0 when its default is not 0.
// worker.Config reads a zero as "the default"; on the command line every
// flag already holds its default, so a zero is the operator's, who does
// not mean the default by it.
func (n flagNames) explicitZeros() []error {
	var errs []error
	n.fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok || zeroPassesOn[f.Name] {
			return
		}
		switch v := g.Get().(type) {
		case int, float64, time.Duration:
			if reflect.ValueOf(v).IsZero() && f.Value.String() != f.DefValue {
				errs = append(errs, flagErrorf(f.Name, "must not be %s; leave it unset for the default, %s", f.Value, f.DefValue))
			}
		}
	})
	return errs
}

// fieldName matches a field's path in worker.Config within a rule's text,
// such as "must be at least MaxInFlight (1000)".
var fieldName = regexp.MustCompile(`\b[A-Z][A-Za-z0-9]*(\.[A-Z][A-Za-z0-9]*)?\b`)

// rename names the settings of a *worker.SettingError, within its rule
// too, by their flags. Other errors are returned as they are.
func (n flagNames) rename(err error) error {
	var se *worker.SettingError
	if !errors.As(err, &se) {
		return err
	}
	// A rule may span settings that no flag sets; they hold their valid
	// defaults, so the flags among them are what the operator can change.
	var flags, others []string
	for _, path := range strings.Split(se.Field, ", ") {
		if name, ok := n.byField[path]; ok {
			flags = append(flags, ref(name))
		} else {
			others = append(others, path)
		}
	}
	if len(flags) == 0 {
		flags = others
	}
	rule := fieldName.ReplaceAllStringFunc(se.Err.Error(), func(word string) string {
		if name, ok := n.byField[word]; ok {
			return ref(name)
		}
		return word
	})
	return &renamedError{msg: strings.Join(flags, ", ") + ": " + rule, err: se}
}

// renamedError is a *worker.SettingError in the operator's words.
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// leaves are the errors joined in err, however deeply.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}
