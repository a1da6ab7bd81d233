package ops

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Output is where a command reports: one line of text per item for a
// person, or, with JSON, one JSON object per line for a script.
type Output struct {
	W    io.Writer
	JSON bool
}

// emit writes v as a JSON line, or text as a line.
func (o Output) emit(v any, text string) error {
	if !o.JSON {
		_, err := io.WriteString(o.W, text+"\n")
		return err
	}
	// Subjects hold ">": no HTML escapes.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	_, err := o.W.Write(b.Bytes())
	return err
}

// note writes a line of text for a person; a script reading JSON lines
// gets nothing.
func (o Output) note(format string, args ...any) error {
	if o.JSON {
		return nil
	}
	_, err := fmt.Fprintf(o.W, format+"\n", args...)
	return err
}
