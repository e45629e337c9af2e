// Package config owns the sidecar's configuration: defaults, the YAML file,
// HYVVE_* environment variables and command-line flags, in that order of
// increasing precedence, and their validation. It is the only package that
// reads the environment; it never prints.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/hyvve/sidecar/internal/subscription"
)

// Config is the whole configuration of one sidecar process. Each field but
// Subscriptions is one setting: a flag, a HYVVE_* variable and a YAML key
// (see Usage). A Config returned by Load is valid and is not modified
// afterwards, so it is safe for concurrent reads.
//
// Config holds secrets (tokens, the Redis password): its String, GoString
// and LogValue forms, like Redacted, hide them.
type Config struct {
	Listen        string
	Socket        string
	RedisURL      string
	RedisPoolSize int
	RedisCluster  bool
	RedisCA       string // PEM file; "" = the system's roots
	RedisCert     string // PEM file of the client certificate, with RedisKey
	RedisKey      string // PEM file of its private key

	// RedisWaitReplicas > 0 makes a publish wait until that many replicas
	// have it (WAIT), at most RedisWaitTimeout.
	RedisWaitReplicas int
	RedisWaitTimeout  time.Duration

	NATSURL         string
	DataDir         string
	EmbeddedListen  string
	AppURL          string
	AppToken        string
	AppTimeout      time.Duration
	AppConcurrency  int
	Group           string
	Source          string
	Tenant          string
	Tenants         []string
	KeyPrefix       string
	RetrySchedule   []time.Duration
	Retention       time.Duration
	DLQRetention    time.Duration
	MaxEventBytes   int
	StrictTypes     bool
	PushFormat      string // "native" or "cloudevents"
	APIToken        string
	AdminToken      string
	ConfigFile      string
	LogLevel        slog.Level
	ShutdownTimeout time.Duration

	// Subscriptions come from the YAML file only (key "subscriptions").
	Subscriptions []subscription.Subscription
}

// Load builds the configuration from defaults, then the YAML file (--config
// or HYVVE_CONFIG), then HYVVE_* environment variables (getenv), then
// command-line flags (args, without the program name), and validates it.
// An empty environment variable counts as unset. Unless set, --source is
// the final --group; an http --app-url loses its trailing slash.
//
// For -h or --help Load returns flag.ErrHelp. Any other error is one line
// that names the setting and never holds a secret. Load prints nothing.
func Load(args []string, getenv func(string) string) (*Config, error) {
	settings := allSettings()
	flags, err := parseFlags(args, settings)
	if err != nil {
		return nil, err
	}

	c := &Config{}
	for _, s := range settings {
		if s.def == "" {
			continue
		}
		if err := s.parse(c, s.def); err != nil {
			return nil, fmt.Errorf("--%s: default %q: %w", s.name, s.def, err) // a bug in this package
		}
	}

	path := getenv(envName("config"))
	for _, f := range flags {
		if f.name == "config" {
			path = f.value
		}
	}
	if path != "" {
		if err := loadFile(c, path, settings); err != nil {
			return nil, err
		}
	}

	for _, s := range settings {
		name := envName(s.name)
		if v := getenv(name); v != "" {
			if err := s.parse(c, v); err != nil {
				return nil, fmt.Errorf("--%s (from %s): %w", s.name, name, err)
			}
		}
	}

	byName := make(map[string]setting, len(settings))
	for _, s := range settings {
		byName[s.name] = s
	}
	for _, f := range flags {
		if err := byName[f.name].parse(c, f.value); err != nil {
			return nil, fmt.Errorf("--%s: %w", f.name, err)
		}
	}

	c.ConfigFile = path
	if strings.HasPrefix(c.AppURL, "http://") {
		c.AppURL = strings.TrimSuffix(c.AppURL, "/") // the app's paths start with "/"
	}
	if c.Source == "" {
		c.Source = c.Group
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// assignment is one flag as given on the command line; its value is parsed
// only after the file and the environment, so a flag always wins.
type assignment struct{ name, value string }

// flagValue records assignments in command-line order; repeating a flag
// means the last one wins.
type flagValue struct {
	name   string
	isBool bool
	out    *[]assignment
}

func (v *flagValue) String() string   { return "" }
func (v *flagValue) IsBoolFlag() bool { return v.isBool }
func (v *flagValue) Set(s string) error {
	*v.out = append(*v.out, assignment{v.name, s})
	return nil
}

// parseFlags checks the command line and returns its assignments. It
// returns flag.ErrHelp for -h, -help and --help.
func parseFlags(args []string, settings []setting) ([]assignment, error) {
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var out []assignment
	for _, s := range settings {
		fs.Var(&flagValue{name: s.name, isBool: s.kind == kindBool, out: &out}, s.name, s.help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, flagError(err, settings)
	}
	if fs.NArg() > 0 {
		arg := fs.Arg(0)
		if i := len(args) - fs.NArg(); i > 0 {
			prev := strings.TrimLeft(args[i-1], "-")
			if f := fs.Lookup(prev); f != nil && f.Value.(*flagValue).isBool && args[i-1] != "--" {
				return nil, fmt.Errorf("--%s: takes no separate value: write --%s=%s", prev, prev, arg)
			}
		}
		return nil, fmt.Errorf("unexpected argument %q: the sidecar takes only flags (see --help)", arg)
	}
	return out, nil
}

// flagError rewrites the flag package's messages into "--name: problem".
func flagError(err error, settings []setting) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		name = strings.TrimLeft(name, "-")
		return fmt.Errorf("--%s: unknown flag%s (see --help)", name, didYouMean(name, settings, "--"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return fmt.Errorf("--%s: needs a value", strings.TrimLeft(name, "-"))
	}
	if arg, ok := strings.CutPrefix(msg, "bad flag syntax: "); ok {
		arg, _, _ = strings.Cut(arg, "=") // the value may be a secret
		return fmt.Errorf("%s: bad flag syntax (write --name=value)", arg)
	}
	return err
}

// didYouMean suggests the setting a mistyped name probably meant
// (redis_url, REDIS-URL → redis-url), or returns "".
func didYouMean(name string, settings []setting, prefix string) string {
	want := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
	for _, s := range settings {
		if s.name == want && s.name != name {
			return fmt.Sprintf(" (did you mean %q?)", prefix+s.name)
		}
	}
	return ""
}

// envName is the environment variable of a setting: redis-url → HYVVE_REDIS_URL.
func envName(name string) string {
	return "HYVVE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Redacted returns every setting by flag name, plus "subscriptions", for the
// daemon to log at start: tokens are "***" when set (empty when not) and
// the Redis URL has no password.
func (c Config) Redacted() map[string]any {
	m := make(map[string]any, len(allSettings())+1)
	for _, s := range allSettings() {
		m[s.name] = s.show(&c)
	}
	m["subscriptions"] = c.showSubscriptions()
	return m
}

// LogValue logs the configuration like Redacted, in --help order, so that
// logging a Config never leaks a secret.
func (c Config) LogValue() slog.Value {
	settings := allSettings()
	attrs := make([]slog.Attr, 0, len(settings)+1)
	for _, s := range settings {
		attrs = append(attrs, slog.Any(s.name, s.show(&c)))
	}
	attrs = append(attrs, slog.Any("subscriptions", c.showSubscriptions()))
	return slog.GroupValue(attrs...)
}

// String formats the configuration like Redacted, in --help order.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("config{")
	for i, s := range allSettings() {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", s.name, s.show(&c))
	}
	fmt.Fprintf(&b, " subscriptions=%v}", c.showSubscriptions())
	return b.String()
}

// GoString makes %#v as safe as %v.
func (c Config) GoString() string { return c.String() }

func (c *Config) showSubscriptions() []string {
	out := make([]string, len(c.Subscriptions))
	for i, s := range c.Subscriptions {
		out[i] = s.Pattern + " -> " + s.Path
	}
	return out
}
