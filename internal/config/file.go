package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/hyvve/sidecar/internal/subscription"
)

// maxFileBytes bounds the config file: real ones are a few KiB, and a path
// such as /dev/zero must not exhaust memory.
const maxFileBytes = 1 << 20

// loadFile applies the YAML file at path on top of c. The file is decoded
// strictly: an unknown or repeated key, or a value of the wrong type, is an
// error that gives the line.
func loadFile(c *Config, path string, settings []setting) error {
	data, err := readFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file
		}
		return fmt.Errorf("config file %s: %s", path, yamlMessage(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return fmt.Errorf("config file %s: %s", path, yamlMessage(err))
		}
		return fmt.Errorf("config file %s: line %d: holds a second YAML document; put every setting in one",
			path, extra.Line)
	}
	l := fileLoader{path: path, settings: settings}
	return l.load(c, &doc)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		if perr := (*fs.PathError)(nil); errors.As(err, &perr) {
			return nil, err // "read PATH: is a directory"
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxFileBytes)
	}
	return data, nil
}

// yamlMessage makes a YAML library error one line without the library's
// name or type: "line 3: mapping values are not allowed in this context".
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	return strings.Join(strings.Fields(msg), " ")
}

type fileLoader struct {
	path     string
	settings []setting
}

func (l *fileLoader) errorf(n *yaml.Node, format string, args ...any) error {
	return fmt.Errorf("config file %s: line %d: "+format, append([]any{l.path, n.Line}, args...)...)
}

func (l *fileLoader) load(c *Config, doc *yaml.Node) error {
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	root = deref(root)
	if isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		return l.errorf(root, "must be a mapping of settings, got %s", describe(root, false))
	}
	byName := make(map[string]setting, len(l.settings))
	for _, s := range l.settings {
		byName[s.name] = s
	}
	firstLine := make(map[string]int)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], deref(root.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return l.errorf(k, "keys must be setting names, got %s", describe(k, false))
		}
		key := k.Value
		if line, dup := firstLine[key]; dup {
			return l.errorf(k, "duplicate key %q (first at line %d)", key, line)
		}
		firstLine[key] = k.Line
		switch key {
		case "subscriptions":
			subs, err := l.subscriptions(v)
			if err != nil {
				return err
			}
			c.Subscriptions = subs
			continue
		case "config":
			return l.errorf(k, "key %q cannot be set in the config file itself", key)
		}
		s, ok := byName[key]
		if !ok {
			return l.errorf(k, "unknown key %q%s", key, didYouMean(key, l.settings, ""))
		}
		if err := l.apply(c, s, v); err != nil {
			return err
		}
	}
	return nil
}

// apply parses one value of the file into c after checking its YAML type.
func (l *fileLoader) apply(c *Config, s setting, v *yaml.Node) error {
	if s.kind == kindList && v.Kind == yaml.SequenceNode {
		items := make([]string, 0, len(v.Content))
		for _, it := range v.Content {
			it = deref(it)
			if it.Kind != yaml.ScalarNode || (it.ShortTag() != "!!str" && it.ShortTag() != "!!int") {
				return l.errorf(it, "%s: list items must be strings, got %s", s.name, describe(it, false))
			}
			items = append(items, it.Value)
		}
		if err := s.parseList(c, items); err != nil {
			return l.errorf(v, "%s: %w", s.name, err)
		}
		return nil
	}
	text, err := scalarText(s, v)
	if err != nil {
		return l.errorf(v, "%s: %w", s.name, err)
	}
	if err := s.parse(c, text); err != nil {
		return l.errorf(v, "%s: %w", s.name, err)
	}
	return nil
}

// scalarText returns a YAML scalar as the text the setting parses, or an
// error when its YAML type does not fit the setting: a quoted "16" is not
// an integer, and 10 is not a duration.
func scalarText(s setting, v *yaml.Node) (string, error) {
	tag := v.ShortTag()
	if v.Kind == yaml.ScalarNode {
		switch s.kind {
		case kindString, kindSecret, kindURL, kindList:
			switch tag {
			case "!!str", "!!int", "!!float":
				return v.Value, nil
			case "!!null":
				return "", nil
			}
		case kindInt:
			if tag == "!!int" {
				var n int
				if err := v.Decode(&n); err != nil {
					return "", fmt.Errorf("%s is out of range", v.Value)
				}
				return strconv.Itoa(n), nil
			}
		case kindSize:
			switch tag {
			case "!!str":
				return v.Value, nil
			case "!!int":
				var n int
				if err := v.Decode(&n); err != nil {
					return "", fmt.Errorf("%s is out of range", v.Value)
				}
				return strconv.Itoa(n), nil
			}
		case kindBool:
			if tag == "!!bool" {
				var b bool
				if err := v.Decode(&b); err != nil {
					return "", fmt.Errorf("expected true or false, got %q", v.Value)
				}
				return strconv.FormatBool(b), nil
			}
		case kindDuration, kindLevel:
			if tag == "!!str" {
				return v.Value, nil
			}
		}
	}
	secret := s.kind == kindSecret || s.kind == kindURL
	return "", fmt.Errorf("expected %s, got %s", wantedType(s.kind), describe(v, secret))
}

func wantedType(k kind) string {
	switch k {
	case kindInt:
		return "an integer"
	case kindBool:
		return "true or false"
	case kindDuration:
		return `a duration such as "10s" or "1h30m"`
	case kindSize:
		return "a size such as 1MiB or a number of bytes"
	case kindList:
		return "a list or a comma-separated string"
	case kindLevel:
		return "one of debug, info, warn, error"
	}
	return "a string"
}

// describe names a node's YAML type for an error message, with its value
// unless secret.
func describe(n *yaml.Node, secret bool) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
	default:
		return "a YAML node of another kind"
	}
	var what string
	switch n.ShortTag() {
	case "!!str":
		what = "a string"
	case "!!int":
		what = "an integer"
	case "!!float":
		what = "a number"
	case "!!bool":
		what = "a boolean"
	case "!!null":
		return "no value"
	default:
		what = "a value tagged " + n.ShortTag()
	}
	if secret {
		return what
	}
	return fmt.Sprintf("%s (%q)", what, n.Value)
}

// subscriptions reads the subscriptions key: a list of {pattern, path}.
// Patterns are checked by package subscription when the daemon builds its
// router; here only their presence is.
func (l *fileLoader) subscriptions(v *yaml.Node) ([]subscription.Subscription, error) {
	if isNull(v) {
		return nil, nil
	}
	if v.Kind != yaml.SequenceNode {
		return nil, l.errorf(v, "subscriptions: expected a list of {pattern, path}, got %s", describe(v, false))
	}
	out := make([]subscription.Subscription, 0, len(v.Content))
	for i, item := range v.Content {
		item = deref(item)
		where := fmt.Sprintf("subscriptions[%d]", i)
		if item.Kind != yaml.MappingNode {
			return nil, l.errorf(item, "%s: expected a mapping with pattern and path, got %s",
				where, describe(item, false))
		}
		var sub subscription.Subscription
		seen := make(map[string]bool, 2)
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, val := item.Content[j], deref(item.Content[j+1])
			var dst *string
			switch k.Value {
			case "pattern":
				dst = &sub.Pattern
			case "path":
				dst = &sub.Path
			default:
				return nil, l.errorf(k, "%s: unknown key %q (want pattern and path)", where, k.Value)
			}
			if seen[k.Value] {
				return nil, l.errorf(k, "%s: duplicate key %q", where, k.Value)
			}
			seen[k.Value] = true
			if val.Kind != yaml.ScalarNode || val.ShortTag() != "!!str" {
				return nil, l.errorf(val, "%s: %s must be a string, got %s", where, k.Value, describe(val, false))
			}
			*dst = val.Value
		}
		switch {
		case sub.Pattern == "":
			return nil, l.errorf(item, "%s: pattern is missing or empty", where)
		case sub.Path == "":
			return nil, l.errorf(item, "%s: path is missing or empty", where)
		case !strings.HasPrefix(sub.Path, "/"):
			return nil, l.errorf(item, "%s: path must start with \"/\", got %q", where, sub.Path)
		}
		out = append(out, sub)
	}
	return out, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}
