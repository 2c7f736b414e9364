package kubeapply

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kjson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// Decode reads a stream of YAML documents separated by "---" lines and
// returns one object per non-empty document, in order. A document whose kind
// is a list ("List", "DaemonSetList", ...) with items contributes its items.
//
// A document that does not parse, has a duplicate key, or lacks apiVersion,
// kind or metadata.name fails with an error of the form
// "source:line: message", where line is the line in the stream of the
// failing field when the YAML parser names it, else the first line of the
// document.
func Decode(r io.Reader, source string) ([]*unstructured.Unstructured, error) {
	docs, err := splitDocuments(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var objs []*unstructured.Unstructured
	for _, d := range docs {
		got, err := decodeDocument(d)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s", source, err.line, err.msg)
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// document is one YAML document of a stream; start is the stream line number
// (1-based) of its first line, first that of its first line with content.
type document struct {
	text  []byte
	start int
	first int
}

// splitDocuments splits a stream the way the Kubernetes YAML reader does: a
// line that starts with "---", followed by nothing but blanks or a comment,
// separates documents. Documents holding only blanks and comments are
// dropped.
func splitDocuments(r io.Reader) ([]document, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	var (
		docs []document
		cur  bytes.Buffer
		cs   = 1 // start line of the current document
		cf   = 0 // first content line of the current document
		n    = 0
	)
	flush := func() {
		if cf != 0 {
			docs = append(docs, document{text: append([]byte(nil), cur.Bytes()...), start: cs, first: cf})
		}
		cur.Reset()
		cf = 0
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "---"); ok {
			if t := strings.TrimSpace(rest); t == "" || strings.HasPrefix(t, "#") {
				flush()
				cs = n + 1
				continue
			}
		}
		if cf == 0 {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				cf = n
			}
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading line %d: %w", n+1, err)
	}
	flush()
	return docs, nil
}

type lineError struct {
	line int
	msg  string
}

// yamlLine finds the "line N" the YAML parser puts in its messages; N counts
// from the start of the document handed to it.
var yamlLine = regexp.MustCompile(`line (\d+): `)

func decodeDocument(d document) ([]*unstructured.Unstructured, *lineError) {
	js, err := yaml.YAMLToJSONStrict(d.text)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
		if m := yamlLine.FindStringSubmatchIndex(msg); m != nil {
			rel, _ := strconv.Atoi(msg[m[2]:m[3]])
			return nil, &lineError{line: d.start + rel - 1, msg: strings.Join(strings.Fields(msg[:m[0]]+msg[m[1]:]), " ")}
		}
		return nil, &lineError{line: d.first, msg: strings.Join(strings.Fields(msg), " ")}
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		return nil, nil
	}
	if len(js) == 0 || js[0] != '{' {
		return nil, &lineError{line: d.first, msg: "document is not a mapping (a Kubernetes object needs apiVersion, kind and metadata)"}
	}
	var m map[string]interface{}
	if err := kjson.Unmarshal(js, &m); err != nil {
		return nil, &lineError{line: d.first, msg: err.Error()}
	}
	obj := &unstructured.Unstructured{Object: m}
	if obj.IsList() {
		list, err := obj.ToList()
		if err != nil {
			return nil, &lineError{line: d.first, msg: err.Error()}
		}
		var out []*unstructured.Unstructured
		for i := range list.Items {
			item := &list.Items[i]
			if msg := missingFields(item); msg != "" {
				return nil, &lineError{line: d.first, msg: fmt.Sprintf("%s item %d: %s", obj.GetKind(), i, msg)}
			}
			out = append(out, item)
		}
		return out, nil
	}
	if msg := missingFields(obj); msg != "" {
		return nil, &lineError{line: d.first, msg: msg}
	}
	return []*unstructured.Unstructured{obj}, nil
}

func missingFields(obj *unstructured.Unstructured) string {
	switch {
	case obj.GetAPIVersion() == "":
		return fmt.Sprintf("object %q has no apiVersion", obj.GetName())
	case obj.GetKind() == "":
		return fmt.Sprintf("object %q has no kind", obj.GetName())
	case obj.GetName() == "":
		return fmt.Sprintf("%s has no metadata.name (generateName cannot be applied)", obj.GetKind())
	}
	return ""
}
